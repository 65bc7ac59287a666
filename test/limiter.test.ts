import { describe, expect, it } from 'vitest';
import { limiterFor } from '../src/queue/limiter.ts';

describe('limiterFor', () => {
  it('spreads a rate over 100 ms windows', () => {
    expect(limiterFor(500, 100)).toEqual({ max: 50, duration: 100 });
    expect(limiterFor(1000, 100)).toEqual({ max: 100, duration: 100 });
  });

  it('grows the window until the share is whole, keeping the exact rate', () => {
    for (const rate of [1, 7, 25, 33, 50, 99, 123, 4999]) {
      const { max, duration } = limiterFor(rate, 100);
      expect(Number.isInteger(max)).toBe(true);
      expect(duration).toBeGreaterThanOrEqual(100);
      expect((max * 1000) / duration).toBeCloseTo(rate, 9);
    }
    expect(limiterFor(25, 100)).toEqual({ max: 3, duration: 120 });
  });

  it('refuses a rate that is not a whole positive number', () => {
    expect(() => limiterFor(0, 100)).toThrow(RangeError);
    expect(() => limiterFor(2.5, 100)).toThrow('expected a whole rate');
  });
});
