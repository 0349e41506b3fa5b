/**
 * The error the auth building blocks throw: an AppError (one error middleware maps it to
 * `{error:{code, message}}`, DESIGN §6, and `retryAfter` to a `Retry-After` header), kept as its
 * own class so callers and tests can tell auth failures apart.
 */
import type { ApiErrorCode } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';

export class AuthError extends AppError {
  constructor(code: ApiErrorCode, message: string, retryAfter?: number) {
    super(code, message, retryAfter === undefined ? {} : { retryAfter });
    this.name = 'AuthError';
  }
}
