/**
 * Finding a message by the ID in a request's path, for the caller's key.
 */
import type { FastifyRequest } from 'fastify';
import type { Producer } from '../queue/producer.ts';
import type { MessageRef } from '../status/store.ts';
import { allowedAgentsOf } from './auth.ts';

/**
 * The one message an ID names for this caller: IDs live per agent, so only
 * the agents its key may use are looked at (?agentId= picks one when the ID
 * exists for several). Someone else's message answers like an unknown one.
 */
export function messageOf(request: FastifyRequest, producer: Pick<Producer, 'locateOne'>): Promise<MessageRef | null> {
  const { id } = request.params as { id: string };
  const { agentId } = request.query as { agentId?: string };
  return producer.locateOne(id, { agents: allowedAgentsOf(request), agentId });
}
