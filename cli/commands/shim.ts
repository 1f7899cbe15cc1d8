/**
 * `bifrost shim`: the compatibility shim alone, pointed at a Godserver, a Sync
 * and one or more Bifrost nodes (what production runs where clients connect).
 * See docs/shim.md.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { CliError, printJson } from '../output.ts';
import { DEFAULT_ADMIN_PORT, DEFAULT_SHIM_PORT, publicUrlProblem, resolveShimOptions, startShim, type ShimOptions } from '../../proxy/shim.ts';

interface ShimCliOptions {
  godserver: string;
  sync: string;
  bifrost: string;
  port?: string;
  adminPort?: string;
  host?: string;
  adminHost?: string;
  mode: string;
  publicUrl?: string;
  flagsFile?: string;
  fallback: string;
  rebalanceRate: string;
  drain: string;
  shutdownWindow: string;
  json?: boolean;
}

function parsePortOption(name: string, value: string | undefined, envName: string, fallback: number): number {
  const raw = value ?? process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) > 65535) {
    throw new CliError(`invalid ${name} "${raw}"${value === undefined ? ` (from ${envName})` : ''}: expected an integer from 0 to 65535`);
  }
  return Number(raw);
}

/** Turns the command line into ShimOptions; throws CliError (exit 2) on bad usage. */
export function shimOptionsFromCli(o: ShimCliOptions): ShimOptions {
  const bifrostUrls = o.bifrost
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (bifrostUrls.length === 0) throw new CliError('--bifrost needs at least one URL (comma separated)');
  if (o.mode !== 'proxied' && o.mode !== 'direct') throw new CliError(`--mode must be "proxied" or "direct", got "${o.mode}"`);
  if (o.fallback !== 'sync' && o.fallback !== 'error') throw new CliError(`--fallback must be "sync" or "error", got "${o.fallback}"`);
  if (o.drain !== 'close' && o.drain !== 'keep') throw new CliError(`--drain must be "close" or "keep", got "${o.drain}"`);
  const rate = Number(o.rebalanceRate);
  if (!Number.isFinite(rate) || rate <= 0) throw new CliError(`--rebalance-rate must be a positive number, got "${o.rebalanceRate}"`);
  const opts: ShimOptions = {
    port: parsePortOption('--port', o.port, 'BIFROST_SHIM_PORT', DEFAULT_SHIM_PORT),
    adminPort: parsePortOption('--admin-port', o.adminPort, 'BIFROST_ADMIN_PORT', DEFAULT_ADMIN_PORT),
    host: o.host,
    adminHost: o.adminHost,
    godserverUrl: o.godserver,
    syncUrl: o.sync,
    bifrostUrls,
    mode: o.mode,
    publicUrl: o.publicUrl,
    flagsFile: o.flagsFile,
    fallback: o.fallback,
    rebalanceRate: rate,
    drain: o.drain,
  };
  try {
    // Checks URLs and the rest once, with precise messages, before anything starts.
    resolveShimOptions({ ...opts, log: pino({ level: 'silent' }) });
  } catch (err) {
    // Name the command-line flag, not the programmatic option.
    const message = (err as Error).message
      .replace(/^godserverUrl /, '--godserver ')
      .replace(/^syncUrl /, '--sync ')
      .replace(/^bifrostUrls\[\d+\] /, '--bifrost ')
      .replace(/^bifrostUrls /, '--bifrost ')
      .replace(/^publicUrl /, '--public-url ');
    throw new CliError(message);
  }
  const problem = publicUrlProblem(opts, { publicUrl: '--public-url', host: '--host' });
  if (problem) throw new CliError(problem);
  return opts;
}

export function register(program: Command): void {
  program
    .command('shim')
    .description('Run the compatibility shim alone: Godserver intercept, per-user routing to Sync or Bifrost by flag, socket proxying, admin API')
    .requiredOption('--godserver <url>', 'the Godserver (GET /godserver/init is forwarded there)')
    .requiredOption('--sync <url>', 'the legacy Sync (Sails) app')
    .requiredOption(
      '--bifrost <urls>',
      'Bifrost gateway node URLs, comma separated, one per node; or dns+http://NAME:PORT for every address of a DNS name (a Kubernetes headless Service), re-resolved every second (proxied mode)',
    )
    .option('--port <port>', `public port (env BIFROST_SHIM_PORT, default ${DEFAULT_SHIM_PORT})`)
    .option('--admin-port <port>', `admin port (env BIFROST_ADMIN_PORT, default ${DEFAULT_ADMIN_PORT})`)
    .option('--host <addr>', 'public bind address (default 0.0.0.0)')
    .option('--admin-host <addr>', 'admin bind address (default 127.0.0.1)')
    .option('--mode <mode>', 'proxied (sockets come back through the shim) or direct (clients go to the backend)', 'proxied')
    .option('--public-url <url>', "the shim's URL as clients reach it, handed out as syncserver_url in proxied mode (required in proxied mode when --host is 0.0.0.0 or ::, the default)")
    .option('--flags-file <path>', 'local flags file (env BIFROST_FLAGS_FILE, default .bifrost/flags.json); LD_SDK_KEY switches to live LaunchDarkly')
    .option('--fallback <what>', 'when no Bifrost node is usable: sync or error (503)', 'sync')
    .option('--rebalance-rate <n>', 'connections closed per second when the flag changes', '100')
    .option('--drain <policy>', 'on a flag change: close (move live sockets) or keep', 'close')
    .option('--shutdown-window <ms>', 'on SIGTERM/SIGINT, live sockets are closed spread over this window (a second signal stops at once)', '10000')
    .option('--json', 'print {url, adminUrl} as JSON once listening')
    .addHelpText(
      'after',
      [
        '',
        'Example:',
        '  $ BIFROST_ADMIN_TOKEN=s3cret bifrost shim --godserver http://127.0.0.1:1337 --sync http://127.0.0.1:1337 \\',
        '      --bifrost http://10.0.0.5:8080,http://10.0.0.6:8080 --port 3000 --admin-port 9090 \\',
        '      --public-url https://sync.example.com',
        '  $ bifrost shim ... --bifrost dns+http://bifrost-gateway-nodes.default.svc.cluster.local.:8080   # every gateway pod (headless Service; trailing dot: no search-domain lookups)',
        '  $ curl -s http://127.0.0.1:9090/api/rollout',
        '  $ curl -X PUT -H "Authorization: Bearer s3cret" -H "content-type: application/json" \\',
        '      -d \'{"percent": 25}\' http://127.0.0.1:9090/api/rollout',
      ].join('\n'),
    )
    .action(async (o: ShimCliOptions) => {
      const opts = shimOptionsFromCli(o);
      const windowMs = Number(o.shutdownWindow);
      if (!Number.isInteger(windowMs) || windowMs < 0) throw new CliError(`--shutdown-window must be a number of milliseconds, got "${o.shutdownWindow}"`);
      let shim: Awaited<ReturnType<typeof startShim>>;
      try {
        shim = await startShim(opts);
      } catch (err) {
        throw new CliError(`shim failed to start: ${(err as Error).message}`);
      }
      if (o.json) printJson({ url: shim.url, adminUrl: shim.adminUrl });
      else process.stderr.write(`bifrost shim: clients → ${shim.url}   admin → ${shim.adminUrl}\n`);
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (): void => {
          signals += 1;
          if (signals === 1) {
            process.stderr.write(`bifrost shim: draining (up to ${windowMs} ms; signal again to stop at once)\n`);
            void shim.drain(windowMs).then(resolve, resolve);
          } else {
            void shim.close().then(resolve, resolve);
          }
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
