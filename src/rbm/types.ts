/**
 * RBM wire types for what the client sends and reads back. Request bodies are
 * validated by the job contracts in jobs/; here they are only shapes.
 */

/** An AgentMessage as sent (spec §2): contentMessage plus traffic type and expiry. */
export interface AgentMessageBody {
  contentMessage: Record<string, unknown>;
  messageTrafficType?: string;
  ttl?: string;
  expireTime?: string;
}

/** What agentMessages.create answers (spec §1.4.1). */
export interface AgentMessageResource extends AgentMessageBody {
  name: string;
  sendTime?: string;
}

export interface AgentEventBody {
  eventType: 'READ' | 'IS_TYPING';
  messageId?: string;
}

export interface AgentEventResource extends AgentEventBody {
  name: string;
  sendTime?: string;
}

export interface Capabilities {
  features: string[];
}
