/**
 * `bifrost migrate …`: per-squad migration checklists. Squads describe their
 * feature in `migrations/<squad>.yaml`, follow a playbook from `playbooks/`,
 * and record progress (automated checks against the live stack, manual
 * completions with evidence, reopenings with a reason) in the state store.
 * This file declares the command line; what each command does is in
 * cli/migration/migrate-actions.ts, loaded only when a migrate command runs.
 */
import { Command, Option } from 'commander';
import { CliError, EXIT_USAGE, collect } from '../output.ts';
import type { CommonOptions, StackOptions } from '../migration/migrate-actions.ts';
import { DEFAULT_STATE_FILE } from '../migration/state-store.ts';

const env = process.env;
const actions = () => import('../migration/migrate-actions.ts');

function common(cmd: Command): Command {
  return cmd
    .option('--migrations-dir <dir>', 'where the squad manifests are', 'migrations')
    .option('--playbooks-dir <dir>', 'where the playbooks are', 'playbooks')
    .option('--state-file <file>', 'state file when REDIS_URL is not set', DEFAULT_STATE_FILE)
    .option('--state-prefix <prefix>', 'Redis key prefix when REDIS_URL is set (default: BIFROST_STATE_PREFIX or bifrost:migrations:)')
    .option('--json', 'print the result as JSON');
}

/** A whole number within [min, max]; `what` says what it counts, for the error message. */
function intOption(name: string, what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : `an integer from ${min} to ${max}`;
      throw new CliError(`${name} must be ${range} (${what}), got "${v}"`, EXIT_USAGE);
    }
    return n;
  };
}

/** Same bounds as the checks' parameter schemas (step-check.ts commonParams, the eventTimeoutMs of dual-publish and subscribe-headers). */
const TIMEOUT_MS = { min: 100, max: 600_000 };
const EVENT_TIMEOUT_MS = { min: 100, max: 120_000 };

function stackOptions(cmd: Command): Command {
  return cmd
    .option('--private-url <url>', 'Bifrost private API', `http://127.0.0.1:${env.BIFROST_PRIVATE_PORT || 8081}`)
    .option('--gateway-url <url>', 'Bifrost public gateway (native protocol on /ws)', `http://127.0.0.1:${env.BIFROST_GATEWAY_PORT || 8080}`)
    .option('--sync-url <url>', 'the legacy Sync app', `http://127.0.0.1:${env.SYNC_PORT || 1337}`)
    .option('--admin-url <url>', `the shim admin API; repeat it for every shim replica, or give dns+http://NAME:PORT for every address of a name (canary and cutover read them all; default http://127.0.0.1:${env.BIFROST_ADMIN_PORT || 9090})`, collect)
    .option('--timeout-ms <ms>', 'timeout of each HTTP call and frame, 100..600000 (overrides the playbook)', intOption('--timeout-ms', 'milliseconds', TIMEOUT_MS.min, TIMEOUT_MS.max))
    .option('--event-timeout-ms <ms>', 'how long probes wait for an event, 100..120000 (overrides the playbook)', intOption('--event-timeout-ms', 'milliseconds', EVENT_TIMEOUT_MS.min, EVENT_TIMEOUT_MS.max));
}

/** Exit status of `list` and `report`: an invalid manifest is shown, not fatal (docs/cli.md, "Options every migrate command takes"). */
const OVERVIEW_EXIT =
  '\nExit status: 0 ok, 1 a squad manifest is invalid (its row says "invalid manifest", the problems go to stderr, the other squads are shown), 2 bad usage or configuration (a broken playbook, an unreadable migrations directory, a corrupt state file).\n';

function examples(lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

export function register(program: Command): void {
  const migrate = program
    .command('migrate')
    .description('Per-squad migration checklists: playbook steps, automated checks against the live stack, and an audit trail')
    .addHelpText('after', examples(['bifrost migrate list', 'bifrost migrate check collections', 'bifrost migrate report --format html > report.html']));

  common(migrate.command('list'))
    .description('Every squad: progress, next step, owner and target date (overdue in red)')
    .addHelpText('after', examples(['bifrost migrate list', 'NO_COLOR=1 bifrost migrate list --migrations-dir ./migrations', 'bifrost migrate list --json | jq ".squads[] | {squad, done, total}"']) + OVERVIEW_EXIT)
    .action(async (o: CommonOptions) => (await actions()).listAction(o));

  common(migrate.command('show').argument('<squad>', 'squad name (from migrations/<squad>.yaml)'))
    .description("One squad's checklist: each step's state, who, when, evidence, and the last check result with its output")
    .option('--history <n>', 'also print the last n audit entries', intOption('--history', 'a number of audit entries', 1))
    .addHelpText('after', examples(['bifrost migrate show collections', 'bifrost migrate show collections --history 20', 'bifrost migrate show collections --json']))
    .action(async (squad: string, o: CommonOptions & { history?: number }) => (await actions()).showAction(squad, o));

  stackOptions(common(migrate.command('check').argument('<squad>', 'squad name').argument('[step]', 'one step id (default: every automated step not done yet)')))
    .description('Run the automated checks against the live stack and record the results; a pass completes the step when its dependencies are done')
    .addHelpText(
      'after',
      examples([
        'bifrost migrate check collections',
        'bifrost migrate check collections dual-publish --event-timeout-ms 10000',
        'bifrost migrate check collections route-parity --private-url http://127.0.0.1:8081 --sync-url http://127.0.0.1:1337',
      ]) + '\nExit status: 0 every check run passed, 1 a check failed, 2 bad usage or configuration.\n',
    )
    .action(async (squad: string, stepId: string | undefined, o: CommonOptions & StackOptions) => (await actions()).checkAction(squad, stepId, o));

  common(migrate.command('complete').argument('<squad>', 'squad name').argument('<step>', 'step id'))
    .description('Record a step as done by a person (manual steps, or an automated step verified another way: then --evidence is required)')
    .requiredOption('--by <who>', 'who completes it (name or email)')
    .option('--evidence <text|url>', 'proof: a link to the merged change, a dashboard, a ticket (required by some steps, and for every automated step)')
    .addHelpText('after', examples(['bifrost migrate complete collections decommission --by ada@example.com --evidence https://git.example.com/sync/pull/812']))
    .action(async (squad: string, stepId: string, o: CommonOptions & { by: string; evidence?: string }) => (await actions()).completeAction(squad, stepId, o));

  common(migrate.command('reopen').argument('<squad>', 'squad name').argument('<step>', 'step id'))
    .description('Put a done step back to pending, with a reason (kept in the audit trail)')
    .requiredOption('--by <who>', 'who reopens it')
    .requiredOption('--reason <text>', 'why the step is not done after all')
    .addHelpText('after', examples(['bifrost migrate reopen collections route-parity --by grace@example.com --reason "PATCH /collection/:id differs since v2.3"']))
    .action(async (squad: string, stepId: string, o: CommonOptions & { by: string; reason: string }) => (await actions()).reopenAction(squad, stepId, o));

  common(migrate.command('report'))
    .description('Every squad\'s progress as a table, Markdown, JSON, or one self-contained HTML page')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'md', 'json', 'html']).default('table'))
    .addHelpText('after', examples(['bifrost migrate report', 'bifrost migrate report --format md > MIGRATION.md', 'bifrost migrate report --format html > migration-report.html']) + OVERVIEW_EXIT)
    .action(async (o: CommonOptions & { format: 'table' | 'md' | 'json' | 'html' }) => (await actions()).reportAction(o));
}
