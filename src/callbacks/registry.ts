/**
 * The callback URL registered per API key scope (PUT /v1/callback), in one
 * Redis hash. Messages sent with the key and no callbackUrl of their own get
 * it. Lookups are cached for a second: every send asks, and a change made
 * through another API process is seen within that second.
 */
import type { Redis } from 'ioredis';

const CACHE_MS = 1000;

export class CallbackRegistry {
  private readonly cache = new Map<string, { url: string | null; until: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private get key(): string {
    return `${this.prefix}:callback-urls`;
  }

  async get(scope: string): Promise<string | null> {
    const hit = this.cache.get(scope);
    if (hit && hit.until > Date.now()) return hit.url;
    const url = await this.redis.hget(this.key, scope);
    this.cache.set(scope, { url, until: Date.now() + CACHE_MS });
    return url;
  }

  async set(scope: string, url: string): Promise<void> {
    await this.redis.hset(this.key, scope, url);
    this.cache.delete(scope);
  }

  /** True when there was one. */
  async remove(scope: string): Promise<boolean> {
    this.cache.delete(scope);
    return (await this.redis.hdel(this.key, scope)) === 1;
  }
}
