/**
 * What the gateway knows of every client socket, native or legacy, and the
 * node-local registry the private API uses to act on sockets by user or id.
 */
import type { AccessClaims } from './token.ts';

export type Protocol = 'native' | 'legacy';

export interface ClientConnection {
  readonly id: string;
  readonly protocol: Protocol;
  readonly claims: AccessClaims;
  /** Lets the socket subscribe to a topic the policy would otherwise refuse. */
  grant(topic: string): void;
  /** Server-side subscribe on behalf of a service (grants it too). */
  serverSubscribe(topic: string): Promise<void>;
  serverUnsubscribe(topic: string): Promise<void>;
  /** Tells the client to reconnect (after afterMs) and closes it; `policy` closes without that invitation. */
  disconnect(reason: 'drain' | 'policy' | 'auth-expired', afterMs?: number): void;
  /** Bytes queued to this client and not yet written. */
  bufferedBytes(): number;
}

export class ConnectionRegistry {
  private readonly byId = new Map<string, ClientConnection>();
  /** A user's connections: the connection itself while it is the only one (most users), a Set from the second on. */
  private readonly byUser = new Map<string, ClientConnection | Set<ClientConnection>>();

  /** Adds a connection; one whose user is not known yet (legacy, before its first request) is indexed by id only. */
  add(c: ClientConnection): void {
    this.byId.set(c.id, c);
    this.indexUser(c);
  }

  /** Indexes a connection under its user once it is known. */
  identify(c: ClientConnection): void {
    if (this.byId.get(c.id) !== c) return;
    this.indexUser(c);
  }

  private indexUser(c: ClientConnection): void {
    const user = c.claims.userId;
    if (!user) return;
    const held = this.byUser.get(user);
    if (held === undefined) this.byUser.set(user, c);
    else if (held instanceof Set) held.add(c);
    else if (held !== c) this.byUser.set(user, new Set([held, c]));
  }

  remove(c: ClientConnection): void {
    if (this.byId.get(c.id) !== c) return;
    this.byId.delete(c.id);
    const user = c.claims.userId;
    const held = this.byUser.get(user);
    if (held === c) this.byUser.delete(user);
    else if (held instanceof Set) {
      held.delete(c);
      if (held.size === 1) this.byUser.set(user, held.values().next().value!);
      else if (held.size === 0) this.byUser.delete(user);
    }
  }

  find(sel: { userId?: string; connectionId?: string }): ClientConnection[] {
    if (sel.connectionId) {
      const c = this.byId.get(sel.connectionId);
      return c && (!sel.userId || c.claims.userId === sel.userId) ? [c] : [];
    }
    if (sel.userId) {
      const held = this.byUser.get(sel.userId);
      return held === undefined ? [] : held instanceof Set ? [...held] : [held];
    }
    return [];
  }

  all(): IterableIterator<ClientConnection> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  count(protocol: Protocol): number {
    let n = 0;
    for (const c of this.byId.values()) if (c.protocol === protocol) n++;
    return n;
  }

  bufferedBytes(): number {
    let n = 0;
    for (const c of this.byId.values()) n += c.bufferedBytes();
    return n;
  }
}
