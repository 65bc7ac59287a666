/**
 * Google API error bodies (google.rpc.Status mapped to HTTP, spec §4.1) as the
 * emulator answers them, so clients parse exactly what the real RBM API sends.
 */

export const RpcStatus = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  RESOURCE_EXHAUSTED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const;
export type RpcStatusName = keyof typeof RpcStatus;

export interface GoogleErrorBody {
  error: {
    code: number;
    message: string;
    status: RpcStatusName;
    errors?: { message: string; domain: string; reason: string }[];
  };
}

export function googleError(status: RpcStatusName, message: string): GoogleErrorBody {
  return { error: { code: RpcStatus[status], message, status } };
}

/** Wording of the real partner-model failure (spec §4.1), so clients that match on it behave as in production. */
const AGENT_LOOKUP_FAILED =
  "There was an error looking up the RBM agent that corresponds to the Google Cloud Platform (GCP) project you're " +
  'authenticating with. This may be a transient error, in which case a retry can help. Otherwise, please ensure you ' +
  'have previously registered an RBM agent that corresponds with the correct GCP project, and that you are properly ' +
  'authenticating with this project.';

export function agentLookupFailed(): GoogleErrorBody {
  const body = googleError('PERMISSION_DENIED', AGENT_LOOKUP_FAILED);
  body.error.errors = [{ message: AGENT_LOOKUP_FAILED, domain: 'global', reason: 'forbidden' }];
  return body;
}

export const Messages = {
  unauthenticated:
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid ' +
    'authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
  notReachable: 'The specified phone number cannot be reached by RBM at this time.',
  quota: 'Quota exceeded for quota metric of service rcsbusinessmessaging.googleapis.com for this agent.',
  unavailable: 'The service is currently unavailable.',
  internal: 'Internal error encountered.',
} as const;
