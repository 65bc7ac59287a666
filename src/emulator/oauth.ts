/**
 * The emulator's OAuth side: service-account keys it issues, the JWT-bearer
 * token endpoint (POST /token) that google-auth-library reaches once the key's
 * token_uri is honoured (spec §7.5), its injected faults, and the access
 * tokens the RBM paths accept.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, verify, type KeyObject } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { credentialsOf } from '../authorization.ts';
import type { TokenFaults } from './token-faults.ts';

export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
export const RBM_SCOPE = 'https://www.googleapis.com/auth/rcsbusinessmessaging';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_TTL_SEC = 3600;
/** Clock skew tolerated on `iat`, as Google does for slightly fast client clocks. */
const IAT_SKEW_SEC = 300;

/** The standard Google service-account key file. */
export interface ServiceAccountKey {
  type: 'service_account';
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  auth_uri: string;
  token_uri: string;
  auth_provider_x509_cert_url: string;
  client_x509_cert_url: string;
  universe_domain: string;
}

interface IssuedKey {
  kid: string;
  clientEmail: string;
  publicKey: KeyObject;
}

type Verdict = { ok: true; clientEmail: string } | { ok: false; error: string; description: string };

const generateKeyPairAsync = promisify(generateKeyPair);

export class OAuthIssuer {
  private readonly keysById = new Map<string, IssuedKey>();
  // Several keys may share one service account, like rotated keys at Google.
  private readonly keysByEmail = new Map<string, IssuedKey[]>();
  private readonly tokens = new Map<string, { clientEmail: string; expiresAt: number }>();
  private keyCount = 0;

  /** A fresh RSA 2048 key whose token_uri points at `${baseUrl}/token`. */
  async createKey(baseUrl: string, clientEmail?: string): Promise<ServiceAccountKey> {
    const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
    const kid = randomBytes(20).toString('hex');
    this.keyCount += 1;
    const email = clientEmail ?? `rbm-emulator-${this.keyCount}@rbm-emulator.iam.gserviceaccount.com`;
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.addPublicKey(kid, email, createPublicKey(privateKey));
    return {
      type: 'service_account',
      project_id: 'rbm-emulator',
      private_key_id: kid,
      private_key: pem,
      client_email: email,
      client_id: BigInt(`0x${randomBytes(8).toString('hex')}`)
        .toString()
        .padStart(21, '1'),
      auth_uri: 'https://accounts.google.com/o/oauth2/auth',
      token_uri: `${baseUrl}/token`,
      auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
      client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(email)}`,
      universe_domain: 'googleapis.com',
    };
  }

  /** Trusts a key created elsewhere (e.g. a key file kept across emulator restarts). */
  trustKey(key: Pick<ServiceAccountKey, 'private_key_id' | 'private_key' | 'client_email'>): void {
    this.addPublicKey(key.private_key_id, key.client_email, createPublicKey(createPrivateKey(key.private_key)));
  }

  private addPublicKey(kid: string, clientEmail: string, publicKey: KeyObject): void {
    const entry = { kid, clientEmail, publicKey };
    this.keysById.set(kid, entry);
    const list = this.keysByEmail.get(clientEmail) ?? [];
    list.push(entry);
    this.keysByEmail.set(clientEmail, list);
  }

  /** Checks a JWT-bearer assertion: RS256 by an issued key, iss, aud, exp, iat and scope. */
  verifyAssertion(assertion: string, audiences: readonly string[], nowSec = Date.now() / 1000): Verdict {
    const fail = (description: string): Verdict => ({ ok: false, error: 'invalid_grant', description });
    const parts = assertion.split('.');
    if (parts.length !== 3) return fail('Invalid JWT: expected three dot-separated parts.');
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: unknown; kid?: unknown };
    let claims: { iss?: unknown; aud?: unknown; exp?: unknown; iat?: unknown; scope?: unknown };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    } catch {
      return fail('Invalid JWT: header or claims are not base64url JSON.');
    }
    if (header.alg !== 'RS256') return fail(`Invalid JWT: alg must be RS256, got ${JSON.stringify(header.alg)}.`);
    if (typeof claims.iss !== 'string') return fail('Invalid JWT: missing iss.');
    // google-auth-library's gtoken sends no `kid`, so the issuer's keys are the fallback.
    const candidates =
      typeof header.kid === 'string'
        ? [this.keysById.get(header.kid)].filter((k) => k !== undefined)
        : (this.keysByEmail.get(claims.iss) ?? []);
    if (candidates.length === 0) return fail('Invalid JWT Signature.');
    const signed = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const key = candidates.find((k) => verify('sha256', signed, k.publicKey, signature));
    if (!key) return fail('Invalid JWT Signature.');
    if (claims.iss !== key.clientEmail) return fail('Invalid JWT: iss does not match the signing key.');
    if (typeof claims.aud !== 'string' || !audiences.includes(claims.aud)) {
      return fail(`Invalid JWT: aud must be one of ${audiences.join(', ')}, got ${JSON.stringify(claims.aud)}.`);
    }
    if (typeof claims.exp !== 'number' || claims.exp <= nowSec)
      return fail('Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.');
    if (typeof claims.iat === 'number' && claims.iat > nowSec + IAT_SKEW_SEC) return fail('Invalid JWT: iat is in the future.');
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!scopes.includes(RBM_SCOPE)) return fail(`Invalid JWT: scope must include ${RBM_SCOPE}.`);
    return { ok: true, clientEmail: key.clientEmail };
  }

  /** Mints an access token; also used directly by benchmarks that skip the JWT round trip. */
  issueToken(clientEmail = 'direct@rbm-emulator.iam.gserviceaccount.com', now = Date.now()): string {
    const token = `emu-${randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, { clientEmail, expiresAt: now + TOKEN_TTL_SEC * 1000 });
    return token;
  }

  /** Hot path: one Map lookup per RBM call. */
  acceptsBearer(authorization: string | undefined, now = Date.now()): boolean {
    const token = credentialsOf(authorization, 'Bearer');
    if (token === undefined) return false;
    const t = this.tokens.get(token);
    return t !== undefined && t.expiresAt > now;
  }
}

/** What became of one token request: a token, a refused assertion, or an injected fault (token-faults.ts). */
export type TokenOutcome = 'issued' | 'refused' | 'fault';

/** POST /token, form-encoded JWT-bearer grant, after any injected fault; `onRequest` feeds the counters. */
export function registerTokenRoute(
  app: FastifyInstance,
  issuer: OAuthIssuer,
  faults: TokenFaults,
  ownTokenUrl: () => string | undefined,
  onRequest: (outcome: TokenOutcome) => void,
): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    scope.post('/token', async (request, reply) => {
      if (faults.latencyMs > 0) await delay(faults.latencyMs);
      const fault = faults.pick();
      if (fault !== undefined) {
        onRequest('fault');
        if (fault === 'reset') {
          reply.hijack();
          request.raw.socket.destroy();
          return reply;
        }
        // Google's answer to a deleted or disabled key.
        if (fault === '400') return reply.code(400).send({ error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
        return reply
          .code(Number(fault))
          .send({ error: 'internal_failure', error_description: 'The token service is unavailable; try again later.' });
      }
      const form = new URLSearchParams(typeof request.body === 'string' ? request.body : '');
      const grantType = form.get('grant_type');
      if (grantType !== JWT_BEARER) {
        onRequest('refused');
        return reply.code(400).send({ error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${grantType ?? ''}` });
      }
      const audiences = [GOOGLE_TOKEN_URL, `${request.protocol}://${request.host}/token`];
      const own = ownTokenUrl();
      if (own !== undefined) audiences.push(own);
      const verdict = issuer.verifyAssertion(form.get('assertion') ?? '', audiences);
      onRequest(verdict.ok ? 'issued' : 'refused');
      if (!verdict.ok) return reply.code(400).send({ error: verdict.error, error_description: verdict.description });
      return { access_token: issuer.issueToken(verdict.clientEmail), expires_in: TOKEN_TTL_SEC, token_type: 'Bearer' };
    });
  });
}
