/**
 * The gateway's one error type (STYLE: "Errors, logs, config"). Deep code throws an `AppError`
 * with a stable code from `protocol/` (so the UI can switch on it); the HTTP layer's single error
 * middleware and the socket.io auth hook translate it at the boundary into
 * `{error:{code, message, details?}}` (DESIGN §6) with the status the code implies.
 */
import { API_ERROR_CODES, type ApiErrorCode } from '@smart-passage/protocol';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Where a request field lives; `path` is a JSON pointer inside that part ('' = the whole part). */
export type RequestPart = 'params' | 'query' | 'body' | 'headers';

/** One failing field of a `validation-failed` error. */
export interface FieldIssue {
  in: RequestPart;
  path: string;
  message: string;
}

/** The body of every error response (DESIGN §6). */
export interface ErrorBody {
  error: { code: ApiErrorCode; message: string; details?: JsonValue };
}

export interface AppErrorOptions {
  details?: JsonValue;
  /** Seconds; sent as `Retry-After` on 429 and 503. */
  retryAfter?: number;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly details: JsonValue | undefined;
  readonly retryAfter: number | undefined;

  /** `message` is shown to the client: never put secrets, tokens or internal state in it. */
  constructor(code: ApiErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = API_ERROR_CODES[code];
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }

  toJSON(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }

  /** 400 for a request that failed validation, one issue per failing field. */
  static validation(issues: readonly FieldIssue[], message = 'request failed validation'): AppError {
    return new AppError('validation-failed', message, { details: issues.map((i) => ({ in: i.in, path: i.path, message: i.message })) });
  }

  /** 400 for one field, e.g. `AppError.badRequest('/notAfter', 'must be after notBefore')`. */
  static badRequest(path: string, message: string, part: RequestPart = 'body'): AppError {
    return AppError.validation([{ in: part, path, message }], message);
  }

  static unauthenticated(message = 'authentication required'): AppError {
    return new AppError('unauthenticated', message);
  }

  static tokenExpired(): AppError {
    return new AppError('token-expired', 'access token expired');
  }

  static forbidden(message = 'not allowed for this role'): AppError {
    return new AppError('forbidden', message);
  }

  /** 404; `what` names the kind of thing, e.g. `notFound('door')`. Never echo the id's owner. */
  static notFound(what = 'resource'): AppError {
    return new AppError('not-found', `${what} not found`);
  }

  static conflict(message = 'conflicts with the current state'): AppError {
    return new AppError('conflict', message);
  }

  /** 422: well-formed but refused by an owner's or the operator's policy. */
  static policy(message: string, details?: JsonValue): AppError {
    return new AppError('policy-violation', message, details === undefined ? {} : { details });
  }

  static rateLimited(retryAfter: number): AppError {
    return new AppError('rate-limited', 'too many requests', { retryAfter });
  }

  static payloadTooLarge(limit?: string): AppError {
    return new AppError('payload-too-large', limit ? `request body exceeds ${limit}` : 'request body too large');
  }

  static unavailable(message = 'service unavailable', retryAfter?: number): AppError {
    return new AppError('unavailable', message, retryAfter === undefined ? {} : { retryAfter });
  }

  static internal(): AppError {
    return new AppError('internal', 'internal error');
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
