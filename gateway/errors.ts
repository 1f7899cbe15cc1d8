/** The error codes clients and services see, and their HTTP status. */
export type ErrorCode = 'invalidServiceError' | 'invalidPathError' | 'forbiddenError' | 'throttleError' | 'badRequest' | 'serverError' | 'unauthorized' | 'unavailable' | 'notFound';

const STATUS: Record<ErrorCode, number> = {
  invalidServiceError: 404,
  invalidPathError: 400,
  forbiddenError: 403,
  throttleError: 429,
  badRequest: 400,
  serverError: 502,
  unauthorized: 401,
  unavailable: 503,
  notFound: 404,
};

export class GatewayError extends Error {
  readonly status: number;
  /** The routed service, when the error happened after routing (for metric labels; never client input). */
  service?: string;
  constructor(
    readonly code: ErrorCode,
    message: string,
    status?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.status = status ?? STATUS[code];
  }
}
