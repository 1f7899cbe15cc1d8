#!/usr/bin/env node
// Entry point of `npm run bench`: registers tsx (like bin/bifrost.mjs) and runs
// the benchmark harness. Options: see bench/README.md or `npm run bench -- --help`.
import { register } from 'tsx/esm/api';

register();
await import('../bench/run.ts');
