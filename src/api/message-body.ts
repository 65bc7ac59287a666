/**
 * The one body of GET /v1/messages/:id, whether the message is still in
 * Redis (its status record) or only in the archive (history): the same
 * fields, each derived the same way from the same timeline, so a caller
 * cannot tell (and need not care) where it came from.
 *
 *   channel         'sms' once an SMS was sent for it (a FALLBACK_SENT entry), else 'rcs'
 *   fallbackReason  why it fell back: the first FALLBACK_QUEUED entry's event, else the state it left
 *                   (as the archive derives it, src/history/fold.ts)
 *   attempts        the record's count in Redis; in the archive, counted from the timeline by the
 *                   rule the send handler counts by (each try that ended: SENT, NOT_RCS, or a failed
 *                   try, SENDING → SENDING | FAILED with an error)
 *
 * The archive's `text` (HISTORY_STORE_TEXT) is not answered: Redis never
 * answers it either.
 */
import type { HistoryMessage } from '../history/types.ts';
import type { MessageStatus, TimelineEntry } from '../status/store.ts';

export type MessageBody = Omit<MessageStatus, 'channel'> & { channel: 'rcs' | 'sms'; fallbackReason?: string };

function fallbackReasonOf(timeline: readonly TimelineEntry[]): string | undefined {
  const i = timeline.findIndex((e) => e.state === 'FALLBACK_QUEUED');
  if (i < 0) return undefined;
  return timeline[i]!.event ?? (i > 0 ? timeline[i - 1]!.state : undefined);
}

/** The tries the send handler counted: each SENT or NOT_RCS, and each try that failed (an error leaving SENDING). */
export function attemptsOf(timeline: readonly TimelineEntry[]): number {
  let n = 0;
  timeline.forEach((e, i) => {
    if (e.state === 'SENT' || e.state === 'NOT_RCS') n++;
    else if ((e.state === 'SENDING' || e.state === 'FAILED') && e.error && timeline[i - 1]?.state === 'SENDING') n++;
  });
  return n;
}

function derived(timeline: readonly TimelineEntry[]): Pick<MessageBody, 'channel' | 'fallbackReason'> {
  const reason = fallbackReasonOf(timeline);
  return {
    channel: timeline.some((e) => e.state === 'FALLBACK_SENT') ? 'sms' : 'rcs',
    ...(reason !== undefined ? { fallbackReason: reason } : {}),
  };
}

/** A status record's body. */
export function bodyOfStatus(s: MessageStatus): MessageBody {
  return { ...s, ...derived(s.timeline) };
}

/** An archived message's body. */
export function bodyOfArchived(m: HistoryMessage): MessageBody {
  const { text: _text, channel: _channel, fallbackReason: _reason, ...rest } = m;
  return { ...rest, attempts: attemptsOf(m.timeline), ...derived(m.timeline) };
}
