import { describe, expect, it } from 'vitest';
import { concurrencyFor, loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

function problemsOf(env: Record<string, string>): Array<{ path: string; problem: string }> {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected loadConfig to refuse this env');
}

describe('loadConfig', () => {
  it('defaults to the emulator with one demo agent, and freezes the result', () => {
    const config = loadConfig({});
    expect(config.rbmEndpoint).toEqual({ kind: 'emulator' });
    expect(config.agents).toEqual([{ agentId: 'demo-agent', ratePerSec: 50 }]);
    expect(config.port).toBe(3000);
    expect(config.queuePrefix).toBe('rbm');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.dispatch)).toBe(true);
  });

  it('reads the fixed variable names', () => {
    const config = loadConfig({
      PORT: '8080',
      REDIS_URL: 'rediss://cache:6380',
      QUEUE_PREFIX: '{rbm}',
      RBM_AGENTS: 'agent-a:50,agent-b:20',
      RBM_ENDPOINT: 'europe',
      GOOGLE_APPLICATION_CREDENTIALS: '/keys/sa.json',
      RBM_WEBHOOK_CLIENT_TOKENS: 'agent-a:T1,agent-b:T2',
      SMS_PROVIDER: 'twilio',
      SMS_TWILIO_ACCOUNT_SID: 'AC123',
      SMS_TWILIO_AUTH_TOKEN: 'tok',
      SMS_FROM: '+15550001111',
      API_KEYS: 'k-0123456789abcdef:agent-a+agent-b',
      DISPATCH_CONCURRENCY: '300',
      TYPING_MAX_AGE_MS: '5000',
    });
    expect(config.port).toBe(8080);
    expect(config.redisUrl).toBe('rediss://cache:6380');
    expect(config.queuePrefix).toBe('{rbm}');
    expect(config.agents).toEqual([
      { agentId: 'agent-a', ratePerSec: 50 },
      { agentId: 'agent-b', ratePerSec: 20 },
    ]);
    expect(config.rbmEndpoint).toEqual({ kind: 'url', url: 'https://europe-rcsbusinessmessaging.googleapis.com' });
    expect(config.webhookClientTokens).toEqual({ 'agent-a': 'T1', 'agent-b': 'T2' });
    expect(config.sms).toMatchObject({
      provider: 'twilio',
      from: '+15550001111',
      twilio: { accountSid: 'AC123', baseUrl: 'https://api.twilio.com' },
    });
    expect(config.apiKeys).toEqual([{ key: 'k-0123456789abcdef', agents: ['agent-a', 'agent-b'] }]);
    expect(config.dispatch.concurrency).toBe(300);
    expect(config.dispatch.typingMaxAgeMs).toBe(5000);
  });

  it('SMS goes to the emulator sink in emulator mode and to the log otherwise, unless set', () => {
    expect(loadConfig({}).sms.provider).toBe('emulator');
    expect(loadConfig({ RBM_ENDPOINT: 'us', GOOGLE_APPLICATION_CREDENTIALS: '/k.json', RBM_AGENTS: 'a:1' }).sms.provider).toBe('log');
    expect(loadConfig({}).fallback).toEqual({ graceMs: 15_000, immediateOnRevokeFailed: ['AUTHENTICATION'] });
    expect(loadConfig({ FALLBACK_ON_REVOKE_FAILED: 'AUTHENTICATION,TRANSACTION' }).fallback.immediateOnRevokeFailed).toEqual([
      'AUTHENTICATION',
      'TRANSACTION',
    ]);
  });

  it('names the settings a chosen SMS provider needs', () => {
    expect(
      problemsOf({ SMS_PROVIDER: 'twilio' })
        .map((p) => p.path)
        .sort(),
    ).toEqual(['SMS_TWILIO_ACCOUNT_SID', 'SMS_TWILIO_AUTH_TOKEN']);
    expect(
      problemsOf({ SMS_PROVIDER: 'webhook', SMS_WEBHOOK_URL: 'ftp://x' })
        .map((p) => p.path)
        .sort(),
    ).toEqual(['SMS_WEBHOOK_SECRET', 'SMS_WEBHOOK_URL', 'SMS_WEBHOOK_URL']);
    expect(
      problemsOf({ FALLBACK_ON_REVOKE_FAILED: 'OTP', INBOUND_AUTO_READ: 'yes' })
        .map((p) => `${p.path}: ${p.problem}`)
        .sort(),
    ).toEqual([
      "FALLBACK_ON_REVOKE_FAILED: expected traffic types from AUTHENTICATION, TRANSACTION, PROMOTION, SERVICEREQUEST, ACKNOWLEDGEMENT, UNSPECIFIED, or none, got 'OTP'",
      "INBOUND_AUTO_READ: expected true or false, got 'yes'",
    ]);
  });

  it('status callbacks: off without CALLBACK_SECRET; a secret must be whsec_ and 24 to 64 bytes, and is never echoed', () => {
    expect(loadConfig({}).callbacks).toEqual({
      secret: undefined,
      timeoutMs: 10_000,
      retryBaseMs: 5000,
      retryMaxDelayMs: 3_600_000,
      retryForMs: 86_400_000,
      concurrency: 50,
      maxInFlightPerReceiver: 10,
      breakerThreshold: 5,
      breakerCooldownMs: 5000,
      breakerMaxCooldownMs: 300_000,
    });
    const good = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(loadConfig({ CALLBACK_SECRET: good }).callbacks.secret).toBe(good);
    for (const bad of [
      Buffer.alloc(32, 7).toString('base64'),
      `whsec_${Buffer.alloc(16, 7).toString('base64')}`,
      `whsec_${Buffer.alloc(65, 7).toString('base64')}`,
      'whsec_not*base64!!',
    ]) {
      const problems = problemsOf({ CALLBACK_SECRET: bad });
      expect(problems.map((p) => p.path)).toEqual(['CALLBACK_SECRET']);
      expect(problems[0]!.problem).toMatch(/^expected 'whsec_' and 24 to 64 bytes in base64/);
      expect(problems[0]!.problem).not.toContain(bad);
    }
    expect(
      problemsOf({ CALLBACK_RETRY_FOR_MS: '-1', CALLBACK_TIMEOUT_MS: '10' })
        .map((p) => p.path)
        .sort(),
    ).toEqual(['CALLBACK_RETRY_FOR_MS', 'CALLBACK_TIMEOUT_MS']);
  });

  it("callback receivers: the in-flight cap and the breaker's settings are checked, the longest cooldown no shorter than the first", () => {
    const c = loadConfig({
      CALLBACK_MAX_IN_FLIGHT_PER_RECEIVER: '25',
      CALLBACK_BREAKER_THRESHOLD: '3',
      CALLBACK_BREAKER_COOLDOWN_MS: '1000',
      CALLBACK_BREAKER_MAX_COOLDOWN_MS: '60000',
    }).callbacks;
    expect(c).toMatchObject({ maxInFlightPerReceiver: 25, breakerThreshold: 3, breakerCooldownMs: 1000, breakerMaxCooldownMs: 60_000 });
    expect(
      problemsOf({ CALLBACK_MAX_IN_FLIGHT_PER_RECEIVER: '0', CALLBACK_BREAKER_THRESHOLD: 'many' })
        .map((p) => p.path)
        .sort(),
    ).toEqual(['CALLBACK_BREAKER_THRESHOLD', 'CALLBACK_MAX_IN_FLIGHT_PER_RECEIVER']);
    const [short] = problemsOf({ CALLBACK_BREAKER_COOLDOWN_MS: '10000', CALLBACK_BREAKER_MAX_COOLDOWN_MS: '5000' });
    expect(short).toEqual({
      path: 'CALLBACK_BREAKER_MAX_COOLDOWN_MS',
      problem: 'expected at least CALLBACK_BREAKER_COOLDOWN_MS (10000), got 5000',
    });
  });

  it("DISPATCH_CONCURRENCY takes 'auto' or a number, and says so", () => {
    expect(loadConfig({ DISPATCH_CONCURRENCY: 'auto' }).dispatch.concurrency).toBe('auto');
    expect(problemsOf({ DISPATCH_CONCURRENCY: 'many' })).toEqual([
      { path: 'DISPATCH_CONCURRENCY', problem: "expected 'auto' or a whole number from 1 to 5000, got 'many'" },
    ]);
    expect(problemsOf({ DISPATCH_CONCURRENCY: '0' })[0]!.path).toBe('DISPATCH_CONCURRENCY');
  });

  it('REDIS_START_TIMEOUT_MS bounds the start-up check of Redis: 5 s unless set, 100 ms to 2 min', () => {
    expect(loadConfig({}).redisStartTimeoutMs).toBe(5000);
    expect(loadConfig({ REDIS_START_TIMEOUT_MS: '1500' }).redisStartTimeoutMs).toBe(1500);
    expect(problemsOf({ REDIS_START_TIMEOUT_MS: '50' })).toEqual([
      { path: 'REDIS_START_TIMEOUT_MS', problem: "expected a whole number from 100 to 120000, got '50'" },
    ]);
  });

  it('the adaptive rate: a decrease below 1 and an increase share, with defaults', () => {
    expect(loadConfig({}).dispatch.rateAdapt).toEqual({ decrease: 0.9, increasePerSec: 0.02 });
    expect(loadConfig({ RATE_ADAPT_DECREASE: '0.8', RATE_ADAPT_INCREASE_PER_SEC: '0.05' }).dispatch.rateAdapt).toEqual({
      decrease: 0.8,
      increasePerSec: 0.05,
    });
    expect(problemsOf({ RATE_ADAPT_DECREASE: '1', RATE_ADAPT_INCREASE_PER_SEC: 'fast' })).toEqual([
      { path: 'RATE_ADAPT_DECREASE', problem: "expected a number from 0.1 to 0.99, got '1'" },
      { path: 'RATE_ADAPT_INCREASE_PER_SEC', problem: "expected a number from 0.001 to 1, got 'fast'" },
    ]);
  });

  it('history: the embedded archive unless DATABASE_URL, 90 days kept; a bad URL or short key is named, never echoed', () => {
    const config = loadConfig({});
    expect(config.history).toEqual({
      databaseUrl: undefined,
      dataDir: '.data/history',
      retentionDays: 90,
      storeText: false,
      phoneKey: undefined,
    });
    const set = loadConfig({
      DATABASE_URL: 'postgresql://app:pw@db:5432/rbm',
      HISTORY_RETENTION_DAYS: '30',
      HISTORY_STORE_TEXT: 'true',
      HISTORY_PHONE_KEY: 'k'.repeat(32),
    }).history;
    expect(set).toMatchObject({ databaseUrl: 'postgresql://app:pw@db:5432/rbm', retentionDays: 30, storeText: true });
    const problems = problemsOf({
      DATABASE_URL: 'mysql://app:hunter2@db/rbm',
      HISTORY_PHONE_KEY: 'shortsecret',
      HISTORY_RETENTION_DAYS: '0',
    });
    expect(problems.map((p) => p.path).sort()).toEqual(['DATABASE_URL', 'HISTORY_PHONE_KEY', 'HISTORY_RETENTION_DAYS']);
    const text = JSON.stringify(problems);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('shortsecret');
    expect(problems.find((p) => p.path === 'DATABASE_URL')!.problem).toBe("expected a postgres:// or postgresql:// URL, got 'mysql://…'");
  });

  it('the hot window: a day by default, webhook dedupe as long unless set, never longer than STATUS_TTL_MS', () => {
    const c = loadConfig({});
    expect(c.statusHotMs).toBe(86_400_000);
    expect(c.inbound.dedupeTtlMs).toBe(86_400_000);
    const short = loadConfig({ STATUS_HOT_MS: '2000' });
    expect(short.inbound.dedupeTtlMs).toBe(2000);
    expect(loadConfig({ STATUS_HOT_MS: '2000', WEBHOOK_DEDUPE_TTL_MS: '60000' }).inbound.dedupeTtlMs).toBe(60_000);
    expect(problemsOf({ STATUS_HOT_MS: '600000', STATUS_TTL_MS: '60000' })).toEqual([
      { path: 'STATUS_HOT_MS', problem: 'expected at most STATUS_TTL_MS (60000), got 600000' },
    ]);
    expect(problemsOf({ STATUS_HOT_MS: '10' })[0]?.path).toBe('STATUS_HOT_MS');
  });

  it('one bare webhook token serves every agent', () => {
    expect(loadConfig({ RBM_WEBHOOK_CLIENT_TOKENS: 'SECRET' }).webhookClientTokens).toEqual({ '*': 'SECRET' });
  });

  it('reports every bad variable at once, each with its name, what was expected and what came', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      REDIS_URL: 'http://x',
      QUEUE_PREFIX: 'a b',
      RBM_AGENTS: 'agent-a:fast',
      RBM_ENDPOINT: 'mars',
      SMS_PROVIDER: 'pigeon',
      DISPATCH_ATTEMPTS: '0',
      DISPATCH_BACKOFF_JITTER: '2',
      LOG_LEVEL: 'loud',
    });
    const byVar = Object.fromEntries(problems.map((p) => [p.path, p.problem]));
    expect(byVar.PORT).toBe("expected a whole number from 0 to 65535, got 'eighty'");
    expect(byVar.REDIS_URL).toBe("expected a redis:// or rediss:// URL, got 'http://x'");
    expect(byVar.QUEUE_PREFIX).toContain("got 'a b'");
    expect(byVar.RBM_AGENTS).toBe("expected a rate per second from 1 to 100000 for agent agent-a, got 'fast'");
    expect(byVar.RBM_ENDPOINT).toContain("got 'mars'");
    expect(byVar.SMS_PROVIDER).toBe("expected one of twilio, webhook, log, emulator, got 'pigeon'");
    expect(byVar.DISPATCH_ATTEMPTS).toContain("got '0'");
    expect(byVar.DISPATCH_BACKOFF_JITTER).toBe("expected a number from 0 to 1, got '2'");
    expect(byVar.LOG_LEVEL).toContain("got 'loud'");
    expect(problems).toHaveLength(9);
  });

  it('refuses malformed agent lists and duplicate agents', () => {
    expect(problemsOf({ RBM_AGENTS: 'agent-a' })[0]).toEqual({
      path: 'RBM_AGENTS',
      problem: "expected comma-separated NAME:VALUE pairs like 'agent-a:50,agent-b:20', got 'agent-a'",
    });
    expect(problemsOf({ RBM_AGENTS: 'a:1,a:2' })[0]!.problem).toBe("expected each agent once, got 'a'");
    expect(problemsOf({ RBM_AGENTS: 'bad:agent:5' })[0]!.path).toBe('RBM_AGENTS');
  });

  it('a real endpoint needs a key file and agents, and says so by name', () => {
    const problems = problemsOf({ RBM_ENDPOINT: 'us' });
    expect(problems.map((p) => p.path).sort()).toEqual(['GOOGLE_APPLICATION_CREDENTIALS', 'RBM_AGENTS']);
  });

  it('API keys must name agents (or * for all) and be long enough, and are never echoed whole', () => {
    const problems = problemsOf({ API_KEYS: 'short:demo-agent,k-0123456789abcdef:gh@st' });
    expect(problems).toHaveLength(2);
    expect(problems.every((p) => p.path === 'API_KEYS')).toBe(true);
    expect(problems.map((p) => p.problem).join(' ')).not.toContain('short');
    expect(problems[1]!.problem).toContain("got 'gh@st'");
    // An agent not in RBM_AGENTS may be added at run time (the agent directory); * grants every agent.
    const config = loadConfig({ API_KEYS: 'k-0123456789abcdef:later-agent,k-fedcba9876543210:*' });
    expect(config.apiKeys.map((k) => k.agents)).toEqual([['later-agent'], ['*']]);
  });

  it('auto concurrency covers rate × round trip, within bounds', () => {
    const config = loadConfig({ RBM_AGENTS: 'slow:10,fast:1000,huge:5000' });
    expect(concurrencyFor(config, config.agents[0]!)).toBe(8);
    expect(concurrencyFor(config, config.agents[1]!)).toBe(200);
    // Capped: a thousand locks in one process are lost together when it falls behind.
    expect(concurrencyFor(config, config.agents[2]!)).toBe(500);
  });
});
