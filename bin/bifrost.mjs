#!/usr/bin/env node
// Entry point of the `bifrost` command. The project is TypeScript run directly
// through tsx's loader, so there is no build step between editing and running.
import { register } from 'tsx/esm/api';

register();
await import('../cli/bifrost.ts');
