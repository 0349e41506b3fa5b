/**
 * The error the auth building blocks throw. Small on purpose: the HTTP layer's general AppError
 * will absorb it (same fields), and its one error middleware maps `status`/`code` to
 * `{error:{code, message}}` (DESIGN §6) and `retryAfter` to a `Retry-After` header.
 */
import { API_ERROR_CODES, type ApiErrorCode } from '@smart-passage/protocol';

export class AuthError extends Error {
  readonly status: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** Seconds until a retry can succeed (`rate-limited`). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'AuthError';
    this.status = API_ERROR_CODES[code];
  }
}
