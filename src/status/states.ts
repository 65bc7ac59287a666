/**
 * The message state machine (DESIGN.md "Status lives outside the job").
 * Only edges listed here can happen; the store enforces them atomically.
 *
 *   QUEUED ──► SENDING ──► SENT
 *                 │ ├────► NOT_RCS   (404: not reachable over RCS)
 *                 │ └────► FAILED    (400/403, attempts exhausted)
 *                 └──► SENDING       (another attempt of the same job)
 *   QUEUED ──► FAILED                (expired or unusable before any send)
 */
export const MessageStates = {
  QUEUED: 'QUEUED',
  SENDING: 'SENDING',
  SENT: 'SENT',
  NOT_RCS: 'NOT_RCS',
  FAILED: 'FAILED',
} as const;
export type MessageState = (typeof MessageStates)[keyof typeof MessageStates];

const EDGES: Readonly<Record<MessageState, readonly MessageState[]>> = {
  QUEUED: ['SENDING', 'FAILED'],
  SENDING: ['SENDING', 'SENT', 'NOT_RCS', 'FAILED'],
  SENT: [],
  NOT_RCS: [],
  FAILED: [],
};

/** The states from which `to` may be entered. */
export function statesLeadingTo(to: MessageState): MessageState[] {
  return (Object.keys(EDGES) as MessageState[]).filter((from) => EDGES[from].includes(to));
}

export function canMove(from: MessageState, to: MessageState): boolean {
  return EDGES[from].includes(to);
}

export function isFinal(state: MessageState): boolean {
  return EDGES[state].length === 0;
}
