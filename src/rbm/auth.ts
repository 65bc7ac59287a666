/**
 * OAuth for the RBM API through google-auth-library, the only module that
 * imports it. One JWT client per process: it caches the access token and
 * refreshes it 5 minutes before expiry, so the hot path costs a promise.
 */
import { readFile } from 'node:fs/promises';
import { JWT, gaxios } from 'google-auth-library';
import { RbmAuthError, RbmNetworkError } from '../errors.ts';

export const RBM_SCOPE = 'https://www.googleapis.com/auth/rcsbusinessmessaging';
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

export interface ServiceAccountKey {
  type: string;
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
  project_id?: string;
}

export interface TokenSource {
  /** A valid access token, cached until shortly before it expires. */
  getToken(): Promise<string>;
  /** Forget the cached token (after a 401), so the next call fetches a fresh one. */
  invalidate(): void;
}

export async function loadServiceAccountKey(path: string): Promise<ServiceAccountKey> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new RbmAuthError(`cannot read service-account key file ${path}: ${(cause as Error).message}`, { cause });
  }
  const key = parsed as Partial<ServiceAccountKey>;
  if (!key || key.type !== 'service_account' || !key.client_email || !key.private_key) {
    throw new RbmAuthError(`${path} is not a service-account key: expected type "service_account", client_email and private_key`);
  }
  return key as ServiceAccountKey;
}

/**
 * google-auth-library ignores the key's token_uri and always posts to Google's
 * fixed URL (spec §7.5). Rewriting that URL on the client's own transporter
 * makes the real library path run against any token endpoint, the emulator's included.
 */
function transporterFor(tokenUri: string | undefined): InstanceType<typeof gaxios.Gaxios> {
  const transporter = new gaxios.Gaxios();
  if (tokenUri && tokenUri !== GOOGLE_TOKEN_URL) {
    transporter.interceptors.request.add({
      resolved: async (options) => {
        if (String(options.url) === GOOGLE_TOKEN_URL) options.url = new URL(tokenUri);
        return options;
      },
    });
  }
  return transporter;
}

export function createTokenSource(key: ServiceAccountKey): TokenSource {
  const jwt = new JWT({
    email: key.client_email,
    key: key.private_key,
    keyId: key.private_key_id,
    scopes: [RBM_SCOPE],
    transporter: transporterFor(key.token_uri),
  });
  return {
    async getToken() {
      try {
        const { token } = await jwt.getAccessToken();
        if (!token) throw new RbmAuthError('the token endpoint answered without an access token');
        return token;
      } catch (err) {
        if (err instanceof RbmAuthError) throw err;
        const status = (err as { response?: { status?: number } }).response?.status;
        // 4xx from the token endpoint: the key is wrong or revoked, no retry helps.
        if (status && status >= 400 && status < 500) {
          throw new RbmAuthError(`token endpoint refused the service account ${key.client_email} (${status})`, { cause: err });
        }
        throw new RbmNetworkError(`token endpoint unreachable: ${(err as Error).message}`, { cause: err });
      }
    },
    invalidate() {
      jwt.credentials = {};
    },
  };
}
