/**
 * The unchanged legacy clients (sails.io.js 1.2.1 on socket.io-client 2, and
 * plain socket.io-client 4) live in cli/simulate/legacy-clients.ts, because
 * `bifrost simulate` drives the same clients; tests import them from here.
 */
export * from '../../cli/simulate/legacy-clients.ts';
