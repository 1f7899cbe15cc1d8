import { describe, expect, it } from 'vitest';
import { DEFAULT_SAILS_SDK_PARAMS, rewriteSocketUrl } from '../../proxy/socket-router.ts';

const params = { ...DEFAULT_SAILS_SDK_PARAMS };

describe('socket request URL forwarded to a backend', () => {
  it('drops bf_route and restores the Sails SDK params the URL query replaced (sails.io.js on socket.io-client 2)', () => {
    const out = new URL(rewriteSocketUrl('/socket.io/?bf_route=v1.a.b.1.c&EIO=3&transport=websocket', 'sync', params, 'sync'), 'http://x');
    expect(out.pathname).toBe('/socket.io/');
    expect(out.searchParams.get('bf_route')).toBeNull();
    expect(Object.fromEntries(out.searchParams)).toEqual({ EIO: '3', transport: 'websocket', ...DEFAULT_SAILS_SDK_PARAMS });
  });

  it('keeps SDK params the client did send, untouched', () => {
    const url = '/socket.io/?__sails_io_sdk_version=1.2.1&__sails_io_sdk_platform=node&__sails_io_sdk_language=javascript&EIO=3&transport=websocket&bf_route=x';
    const out = new URL(rewriteSocketUrl(url, 'sync', params, 'sync'), 'http://x');
    expect(out.searchParams.get('__sails_io_sdk_platform')).toBe('node');
    expect(out.searchParams.getAll('__sails_io_sdk_version')).toEqual(['1.2.1']);
  });

  it('towards Bifrost: only bf_route is removed when restoring is limited to Sync; params added when "all"', () => {
    expect(rewriteSocketUrl('/socket.io/?EIO=4&bf_route=x&transport=polling&sid=abc', 'bifrost', params, 'sync')).toBe('/socket.io/?EIO=4&transport=polling&sid=abc');
    const all = new URL(rewriteSocketUrl('/socket.io/?EIO=4&bf_route=x', 'bifrost', params, 'all'), 'http://x');
    expect(all.searchParams.get('__sails_io_sdk_version')).toBe('1.2.1');
    expect(all.searchParams.has('bf_route')).toBe(false);
  });

  it('uses configured defaults', () => {
    const out = new URL(rewriteSocketUrl('/socket.io/?EIO=3', 'sync', { __sails_io_sdk_version: '0.13.8', __sails_io_sdk_platform: 'windows' }, 'sync'), 'http://x');
    expect(out.searchParams.get('__sails_io_sdk_version')).toBe('0.13.8');
    expect(out.searchParams.get('__sails_io_sdk_platform')).toBe('windows');
  });
});
