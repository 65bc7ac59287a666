/** The partitioned keyspace's pure parts (src/queue/keyspace.ts): lane tags, lane choice, routing. */
import { describe, expect, it } from 'vitest';
import { Keyspace, laneTags, MAX_LANES, pickLane, slotOf } from '../src/queue/keyspace.ts';

describe('lane tags', () => {
  it("lane 0 is the prefix itself (the layout before lanes); a braced prefix's lane n has its slot in the nth share of the slots", () => {
    for (const count of [1, 2, 3, 16, 48, MAX_LANES]) {
      const tags = laneTags('{rbm}', count);
      expect(tags).toHaveLength(count);
      expect(tags[0]).toBe('{rbm}');
      expect(new Set(tags).size).toBe(count);
      for (let lane = 1; lane < count; lane++) {
        const slot = slotOf(`${tags[lane]}:status:a:b`);
        expect(slot).toBeGreaterThanOrEqual(Math.floor((lane * 16384) / count));
        expect(slot).toBeLessThan(Math.floor(((lane + 1) * 16384) / count));
        expect(tags[lane]).toMatch(new RegExp(`^\\{rbm:L${lane}\\.\\d+\\}$`));
      }
    }
  });

  it('an unbraced prefix (one node) names its lanes plainly, under the prefix', () => {
    expect(laneTags('rbm', 3)).toEqual(['rbm', 'rbm:L1', 'rbm:L2']);
  });

  it('the same prefix and count give the same tags in every process', () => {
    expect(laneTags('{x-y}', 16)).toEqual(laneTags('{x-y}', 16));
  });
});

describe('pickLane', () => {
  it('fills the node with the fewest agents first, then its emptiest lane', () => {
    const nodes = ['a', 'a', 'b', 'b', 'c', 'c'];
    const perLane = [0, 0, 0, 0, 0, 0];
    const picked: number[] = [];
    for (let i = 0; i < 30; i++) {
      const lane = pickLane(perLane, nodes);
      perLane[lane]!++;
      picked.push(lane);
    }
    const perNode = (n: string) => perLane.filter((_, i) => nodes[i] === n).reduce((a, b) => a + b, 0);
    expect([perNode('a'), perNode('b'), perNode('c')]).toEqual([10, 10, 10]);
    expect(perLane).toEqual([5, 5, 5, 5, 5, 5]);
    expect(picked.slice(0, 3)).toEqual([0, 2, 4]);
  });

  it('evens out a node that already carries more: new agents go elsewhere until it is level', () => {
    expect(pickLane([9, 0, 0], ['a', 'b', 'b'])).toBe(1);
    expect(pickLane([3, 2, 2], ['a', 'b', 'c'])).toBe(1);
  });

  it('on one node, the emptiest lane, lowest first', () => {
    expect(pickLane([2, 1, 1, 3], ['', '', '', ''])).toBe(1);
  });
});

describe('Keyspace', () => {
  it("routes an agent to its record's lane, an unknown agent (or one written before lanes) to lane 0", () => {
    const lanes = new Map([
      ['a', 2],
      ['b', 0],
    ]);
    const ks = new Keyspace('{p}', 4, (id) => lanes.get(id));
    expect(ks.of('a')).toBe(ks.tags[2]);
    expect(ks.of('b')).toBe('{p}');
    expect(ks.of('nobody')).toBe('{p}');
    const grouped = ks.byLane([{ agentId: 'a' }, { agentId: 'b' }, { agentId: 'a' }]);
    expect([...grouped.values()].map((g) => g.length)).toEqual([2, 1]);
  });
});
