/** Classification of AWS SDK failures shared by the store adapters. */

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
]);
const NETWORK_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "NetworkingError", "AbortError"]);

/** True for failures to reach the service at all (refused, reset, DNS, timeout). */
export function isNetworkError(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const err = e as { code?: unknown; name?: unknown; errors?: unknown; cause?: unknown; $metadata?: { httpStatusCode?: number } };
  if (typeof err.code === "string" && NETWORK_CODES.has(err.code)) return true;
  if (typeof err.name === "string" && NETWORK_NAMES.has(err.name) && err.$metadata?.httpStatusCode === undefined) return true;
  if (Array.isArray(err.errors) && err.errors.some(isNetworkError)) return true; // AggregateError (happy eyeballs)
  if (err.cause !== undefined && err.cause !== e) return isNetworkError(err.cause);
  return false;
}
