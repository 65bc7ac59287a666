/**
 * The message state machine (src/status/states.ts), over every pair of
 * states: the edge table written out here independently, then the properties
 * it must keep (one SMS at most, truth wins late, nothing leaves READ, every
 * message can still learn it was read). Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { canMove, isFinal, isWaiting, type MessageState, MessageStates, statesLeadingTo, WAITING_STATES } from '../src/status/states.ts';

const STATES = Object.values(MessageStates);
const LATE = ['DELIVERED', 'READ'] as const;

/** Allowed moves, as DESIGN.md and the header of states.ts describe them. */
const ALLOWED: Record<MessageState, readonly MessageState[]> = {
  QUEUED: ['SENDING', 'FAILED', 'REVOKED', 'EXPIRED'],
  SENDING: ['SENDING', 'SENT', 'NOT_RCS', 'FAILED', 'EXPIRED'],
  SENT: ['DELIVERED', 'READ', 'FALLBACK_QUEUED', 'EXPIRED', 'REVOKED'],
  DELIVERED: ['READ'],
  READ: [],
  NOT_RCS: ['FALLBACK_QUEUED'],
  FAILED: ['QUEUED', ...LATE],
  EXPIRED: ['FALLBACK_QUEUED', ...LATE],
  REVOKED: ['FALLBACK_QUEUED', ...LATE],
  FALLBACK_QUEUED: ['FALLBACK_SENDING', ...LATE],
  FALLBACK_SENDING: ['FALLBACK_SENDING', 'FALLBACK_SENT', 'FALLBACK_FAILED'],
  FALLBACK_SENT: [...LATE],
  FALLBACK_FAILED: ['FALLBACK_QUEUED', 'FALLBACK_SENT', ...LATE],
};

const pairs = STATES.flatMap((from) => STATES.map((to) => [from, to] as const));
/** Where a message can get to from `from`, in any number of moves (not counting staying put). */
function reachable(from: MessageState): Set<MessageState> {
  const seen = new Set<MessageState>();
  const todo = [from];
  while (todo.length > 0) {
    const s = todo.pop()!;
    for (const to of STATES) {
      if (canMove(s, to) && !seen.has(to)) {
        seen.add(to);
        todo.push(to);
      }
    }
  }
  return seen;
}

describe('the edge table', () => {
  it('has the 13 states, each named as itself', () => {
    expect(STATES).toHaveLength(13);
    for (const [k, v] of Object.entries(MessageStates)) expect(k).toBe(v);
  });

  it('allows exactly the listed moves and refuses the other pairs', () => {
    expect(Object.keys(ALLOWED).sort()).toEqual([...STATES].sort());
    const wrong = pairs.filter(([from, to]) => canMove(from, to) !== ALLOWED[from].includes(to)).map(([f, t]) => `${f} → ${t}`);
    expect(wrong).toEqual([]);
    expect(pairs.filter(([f, t]) => canMove(f, t))).toHaveLength(Object.values(ALLOWED).flat().length);
  });

  it('statesLeadingTo(to) is every state canMove(·, to) allows, for every state', () => {
    for (const to of STATES) expect(statesLeadingTo(to).sort(), to).toEqual(STATES.filter((from) => canMove(from, to)).sort());
  });

  it('READ is the one final state; EXPIRED and the fallback outcomes can still learn of a delivery', () => {
    expect(STATES.filter(isFinal)).toEqual(['READ']);
    for (const s of STATES) expect(isFinal(s), s).toBe(STATES.every((to) => !canMove(s, to)));
    for (const s of ['EXPIRED', 'FALLBACK_SENT', 'FALLBACK_FAILED'] as const) expect(isFinal(s)).toBe(false);
  });
});

describe('waiting states', () => {
  it('are the states of our own step under way: QUEUED, SENDING, FALLBACK_SENDING', () => {
    expect([...WAITING_STATES].sort()).toEqual(['FALLBACK_SENDING', 'QUEUED', 'SENDING']);
    for (const s of STATES) expect(isWaiting(s), s).toBe(WAITING_STATES.includes(s));
    expect(isWaiting(null)).toBe(false);
  });

  it('take no DELIVERED or READ: those are parked until the step settles', () => {
    for (const s of WAITING_STATES) for (const late of LATE) expect(canMove(s, late), `${s} → ${late}`).toBe(false);
  });

  it('are the only states a move may repeat (a retry of the step), except QUEUED, which a job leaves at once', () => {
    expect(STATES.filter((s) => canMove(s, s))).toEqual(['SENDING', 'FALLBACK_SENDING']);
  });
});

describe('late delivery: the truth wins', () => {
  const givenUp: MessageState[] = ['FAILED', 'EXPIRED', 'REVOKED', 'FALLBACK_QUEUED', 'FALLBACK_SENT', 'FALLBACK_FAILED'];

  it('every state we gave up on, or fell back from, takes a late DELIVERED or READ', () => {
    for (const s of givenUp) for (const late of LATE) expect(canMove(s, late), `${s} → ${late}`).toBe(true);
  });

  it('the states that take a DELIVERED are SENT and those; READ also DELIVERED', () => {
    expect(statesLeadingTo('DELIVERED').sort()).toEqual(['SENT', ...givenUp].sort());
    expect(statesLeadingTo('READ').sort()).toEqual(['DELIVERED', 'SENT', ...givenUp].sort());
  });

  it('NOT_RCS takes none: RBM said the phone cannot get RCS', () => {
    for (const late of LATE) expect(canMove('NOT_RCS', late)).toBe(false);
  });

  it('every state but READ can still reach READ', () => {
    for (const s of STATES) expect(reachable(s).has('READ'), s).toBe(s !== 'READ');
  });
});

describe('one SMS at most', () => {
  it('an SMS is only sent after FALLBACK_QUEUED → FALLBACK_SENDING, and only FALLBACK_SENDING ends in an SMS outcome', () => {
    expect(statesLeadingTo('FALLBACK_SENDING').sort()).toEqual(['FALLBACK_QUEUED', 'FALLBACK_SENDING']);
    // From FALLBACK_FAILED: the late answer of a try whose outcome was unknown (no SMS is sent by the move).
    expect(statesLeadingTo('FALLBACK_SENT').sort()).toEqual(['FALLBACK_FAILED', 'FALLBACK_SENDING']);
    expect(statesLeadingTo('FALLBACK_FAILED')).toEqual(['FALLBACK_SENDING']);
  });

  it('a delivered or read message never falls back, and a sent SMS is never queued again', () => {
    for (const s of ['DELIVERED', 'READ', 'FALLBACK_SENT'] as const) {
      expect(
        [...reachable(s)].filter((to) => to.startsWith('FALLBACK_')),
        s,
      ).toEqual([]);
    }
  });

  it('falling back is entered only from SENT, NOT_RCS, EXPIRED, REVOKED, or an operator’s re-drive of FALLBACK_FAILED', () => {
    expect(statesLeadingTo('FALLBACK_QUEUED').sort()).toEqual(['EXPIRED', 'FALLBACK_FAILED', 'NOT_RCS', 'REVOKED', 'SENT']);
  });
});

describe('the rest of the machine', () => {
  it('only an operator’s re-drive of FAILED goes back to QUEUED; nothing goes back to SENDING from past it', () => {
    expect(statesLeadingTo('QUEUED')).toEqual(['FAILED']);
    expect(statesLeadingTo('SENDING').sort()).toEqual(['QUEUED', 'SENDING']);
  });

  it('every state is reachable from QUEUED', () => {
    expect([...reachable('QUEUED')].sort()).toEqual([...STATES].sort());
  });

  it('revoke is possible only before RBM has it, or while it is SENT', () => {
    expect(statesLeadingTo('REVOKED').sort()).toEqual(['QUEUED', 'SENT']);
  });
});
