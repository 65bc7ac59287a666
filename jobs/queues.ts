/**
 * The service's BullMQ queues. Outbound queues are per agent (an agent's RBM
 * quota is one BullMQ limiter over its messages and events); the others are
 * shared by every agent. Each job contract names its queue's kind here.
 */

export const INBOUND_QUEUE = 'rbm-inbound';
export const SMS_QUEUE = 'sms-outbound';
export const CALLBACK_QUEUE = 'status-callbacks';

/** Messages and events of one agent share its queue, so the agent's RBM quota is one BullMQ limiter. */
export function outboundQueueName(agentId: string): string {
  return `rbm-outbound.${agentId}`;
}

export const queueKinds = ['outbound', 'inbound', 'sms', 'callbacks'] as const;
export type QueueKind = (typeof queueKinds)[number];

const SHARED: { readonly [K in Exclude<QueueKind, 'outbound'>]: string } = {
  inbound: INBOUND_QUEUE,
  sms: SMS_QUEUE,
  callbacks: CALLBACK_QUEUE,
};

/** A queue's name: an outbound queue is its agent's, and needs one. */
export function queueName(kind: QueueKind, agentId?: string): string {
  if (kind !== 'outbound') return SHARED[kind];
  if (agentId === undefined) throw new Error('an outbound queue belongs to one agent: agentId is required');
  return outboundQueueName(agentId);
}
