/**
 * The message state machine (DESIGN.md "Status lives outside the job").
 * Only edges listed here can happen; the store enforces them atomically, so
 * DELIVERED racing TTL_EXPIRATION_REVOKED resolves one way and the SMS
 * fallback is claimed at most once.
 *
 *   QUEUED ─► SENDING ─► SENT ─► DELIVERED ─► READ
 *     │          │ │       ├─► FALLBACK_QUEUED ─► FALLBACK_SENDING ─► FALLBACK_SENT | FALLBACK_FAILED
 *     │          │ │       ├─► EXPIRED          (TTL passed, no fallback configured)
 *     │          │ │       └─► REVOKED ─► FALLBACK_QUEUED   (producer revoke, DELETE 200)
 *     │          │ └─► NOT_RCS ─► FALLBACK_QUEUED   (404 at send)
 *     │          └─► FAILED | EXPIRED   (400/403, attempts exhausted | TTL passed in our queue)
 *     │                FAILED ─► DELIVERED | READ   (RBM got it after all)
 *     └─► REVOKED | FAILED | EXPIRED     (before any send)
 *   EXPIRED ─► FALLBACK_QUEUED when the message has SMS settings
 *   FAILED ─► QUEUED, FALLBACK_FAILED ─► FALLBACK_QUEUED: re-driven by an operator
 *
 * Events arrive late, twice and out of order. READ implies delivery, so SENT
 * may go straight to READ. A DELIVERED or READ that comes after the message
 * was given up on (FAILED, EXPIRED, REVOKED, any FALLBACK_*) is the truth winning
 * late: the RCS message did reach the phone, so the record moves there; from
 * FALLBACK_QUEUED that also cancels the SMS, whose worker must first claim
 * FALLBACK_SENDING. While an SMS is in flight (FALLBACK_SENDING) the record
 * waits for its outcome before taking a late delivery. An SMS whose outcome
 * was unknown (FALLBACK_FAILED, SMS_OUTCOME_UNKNOWN) becomes FALLBACK_SENT if
 * the try that handed it over answers after all.
 *
 * An event that meets its message in a WAITING state (our own step is still
 * under way) is parked on the record and applied in the same atomic step that
 * settles the message, however long that takes: a retry budget never drops a
 * fact RBM told us (DESIGN.md "Truth never expires").
 */
export const MessageStates = {
  QUEUED: 'QUEUED',
  SENDING: 'SENDING',
  SENT: 'SENT',
  DELIVERED: 'DELIVERED',
  READ: 'READ',
  NOT_RCS: 'NOT_RCS',
  FAILED: 'FAILED',
  EXPIRED: 'EXPIRED',
  REVOKED: 'REVOKED',
  FALLBACK_QUEUED: 'FALLBACK_QUEUED',
  FALLBACK_SENDING: 'FALLBACK_SENDING',
  FALLBACK_SENT: 'FALLBACK_SENT',
  FALLBACK_FAILED: 'FALLBACK_FAILED',
} as const;
export type MessageState = (typeof MessageStates)[keyof typeof MessageStates];

const LATE_DELIVERY = ['DELIVERED', 'READ'] as const;

const EDGES: Readonly<Record<MessageState, readonly MessageState[]>> = {
  QUEUED: ['SENDING', 'FAILED', 'REVOKED', 'EXPIRED'],
  SENDING: ['SENDING', 'SENT', 'NOT_RCS', 'FAILED', 'EXPIRED'],
  SENT: ['DELIVERED', 'READ', 'FALLBACK_QUEUED', 'EXPIRED', 'REVOKED'],
  DELIVERED: ['READ'],
  READ: [],
  NOT_RCS: ['FALLBACK_QUEUED'],
  // An operator's re-drive (POST /v1/failures:retry) puts a failed message back in line. A send we gave
  // up on (attempts exhausted on 5xx or resets) may still have reached RBM: its DELIVERED is the truth.
  FAILED: ['QUEUED', ...LATE_DELIVERY],
  EXPIRED: ['FALLBACK_QUEUED', ...LATE_DELIVERY],
  REVOKED: ['FALLBACK_QUEUED', ...LATE_DELIVERY],
  FALLBACK_QUEUED: ['FALLBACK_SENDING', ...LATE_DELIVERY],
  FALLBACK_SENDING: ['FALLBACK_SENDING', 'FALLBACK_SENT', 'FALLBACK_FAILED'],
  FALLBACK_SENT: [...LATE_DELIVERY],
  // FALLBACK_SENT: a try the record had given up on (its outcome unknown: a second run of the job found it in
  // flight and would not send again) answers after all that its SMS was sent. No SMS is sent by this move.
  FALLBACK_FAILED: ['FALLBACK_QUEUED', 'FALLBACK_SENT', ...LATE_DELIVERY],
};

/** Our own step (the send, the SMS) is under way: an event about the message waits for it to settle. */
export const WAITING_STATES: readonly MessageState[] = ['QUEUED', 'SENDING', 'FALLBACK_SENDING'];

export function isWaiting(state: MessageState | null): boolean {
  return state !== null && WAITING_STATES.includes(state);
}

/** The states from which `to` may be entered. */
export function statesLeadingTo(to: MessageState): MessageState[] {
  return (Object.keys(EDGES) as MessageState[]).filter((from) => EDGES[from].includes(to));
}

export function canMove(from: MessageState, to: MessageState): boolean {
  return EDGES[from].includes(to);
}

/** No edge leaves it. (EXPIRED and the fallback outcomes can still learn of a late delivery.) */
export function isFinal(state: MessageState): boolean {
  return EDGES[state].length === 0;
}

/**
 * Nothing of ours will move it again; only RBM's late news can (a late DELIVERED
 * or READ). After STATUS_HOT_MS such a record leaves Redis for a tombstone
 * (tombstones.ts), once the archive holds its history (history/evictor.ts).
 */
export const SETTLED_STATES: readonly MessageState[] = [
  'DELIVERED',
  'READ',
  'FAILED',
  'EXPIRED',
  'REVOKED',
  'FALLBACK_SENT',
  'FALLBACK_FAILED',
];

export function isSettled(state: MessageState): boolean {
  return SETTLED_STATES.includes(state);
}
