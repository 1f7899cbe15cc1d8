/** The node-local connection registry (gateway/client-connection.ts): lookups by id and by user. */
import { describe, expect, it } from 'vitest';
import { ConnectionRegistry, type ClientConnection } from '../../gateway/client-connection.ts';

function conn(id: string, userId: string): ClientConnection {
  const noop = async () => {};
  return {
    id,
    protocol: 'native',
    claims: { userId, teamId: 't', exp: 0 },
    grant: () => {},
    serverSubscribe: noop,
    serverUnsubscribe: noop,
    disconnect: () => {},
    bufferedBytes: () => 0,
  };
}

describe('ConnectionRegistry', () => {
  it('finds a user’s connections whether they have one or several, and forgets them as they close', () => {
    const r = new ConnectionRegistry();
    const a1 = conn('a1', 'alice');
    const a2 = conn('a2', 'alice');
    const a3 = conn('a3', 'alice');
    const b1 = conn('b1', 'bob');
    r.add(a1);
    r.add(b1);
    expect(r.find({ userId: 'alice' })).toEqual([a1]);
    r.add(a2);
    r.add(a3);
    expect(r.find({ userId: 'alice' }).map((c) => c.id).sort()).toEqual(['a1', 'a2', 'a3']);
    r.remove(a1);
    r.remove(a3);
    expect(r.find({ userId: 'alice' })).toEqual([a2]);
    r.add(a1);
    expect(r.find({ userId: 'alice' }).map((c) => c.id).sort()).toEqual(['a1', 'a2']);
    r.remove(a1);
    r.remove(a2);
    expect(r.find({ userId: 'alice' })).toEqual([]);
    expect(r.find({ userId: 'bob' })).toEqual([b1]);
    expect(r.size).toBe(1);
  });

  it('finds by connection id, checked against the user when both are given', () => {
    const r = new ConnectionRegistry();
    const a1 = conn('a1', 'alice');
    r.add(a1);
    expect(r.find({ connectionId: 'a1' })).toEqual([a1]);
    expect(r.find({ connectionId: 'a1', userId: 'bob' })).toEqual([]);
    expect(r.find({ connectionId: 'nope' })).toEqual([]);
    r.add(a1); // adding twice does not double it
    expect(r.find({ userId: 'alice' })).toEqual([a1]);
  });

  it('indexes a legacy connection under its user once identified', () => {
    const r = new ConnectionRegistry();
    const c = conn('l1', '');
    r.add(c);
    expect(r.find({ userId: 'carol' })).toEqual([]);
    (c.claims as { userId: string }).userId = 'carol';
    r.identify(c);
    r.identify(c);
    expect(r.find({ userId: 'carol' })).toEqual([c]);
    r.remove(c);
    expect(r.find({ userId: 'carol' })).toEqual([]);
    expect(r.size).toBe(0);
  });
});
