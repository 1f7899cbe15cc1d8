/**
 * Who may subscribe to what. Default policy: a user may subscribe to
 * `user:<own id>`, `team:<own team>`, and any topic a service granted to the
 * connection (through `x-bifrost-subscribe` or the private API).
 */
import type { AccessClaims } from './token.ts';

export type TopicPolicy = (claims: AccessClaims, topic: string, granted: ReadonlySet<string>) => boolean;

export const defaultTopicPolicy: TopicPolicy = (claims, topic, granted) =>
  topic === `user:${claims.userId}` || topic === `team:${claims.teamId}` || granted.has(topic);
