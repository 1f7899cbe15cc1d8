/** The fanout systems, in the order they run. Add a system here after writing its file. */
import { bifrost, bifrostHttp } from './bifrost.ts';
import { socketio } from './socketio.ts';
import { bareWs } from './ws.ts';
import type { BenchSystem } from './system.ts';

export const ALL_FANOUT_SYSTEMS: BenchSystem[] = [bifrost, socketio, bareWs, bifrostHttp];
