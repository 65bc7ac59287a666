import { describe, expect, it } from 'vitest';
import { settlesWithin } from '../src/queue/settles-within.ts';

describe('settlesWithin (bounded shutdown waits)', () => {
  it('is true when the work settles in time, false when it does not; a failure of the work is passed on', async () => {
    expect(await settlesWithin(Promise.resolve(), 1000)).toBe(true);
    expect(await settlesWithin(new Promise(() => {}), 20)).toBe(false);
    await expect(settlesWithin(Promise.reject(new Error('closed')), 1000)).rejects.toThrow('closed');
  });
});
