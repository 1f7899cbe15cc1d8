/**
 * The deployment files are parsed and checked against the code they deploy:
 * ports, probe paths, the drain window against the grace period, the metric
 * the autoscaler reads, and the commands the image runs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { resolveGatewayOptions } from '../../gateway/config.ts';
import { GatewayMetrics } from '../../gateway/metrics.ts';
import { parseDurationMs } from '../../cli/graceful.ts';
import { DEFAULT_ADMIN_PORT, DEFAULT_SHIM_PORT } from '../../proxy/shim.ts';
import { checkAdminUrl } from '../../cli/rollout/shim-admin-client.ts';
import { shimOptionsFromCli } from '../../cli/commands/shim.ts';
import { ROOT } from '../support/gateway.ts';

type Doc = Record<string, any>;
function load(file: string): Doc[] {
  return parseAllDocuments(readFileSync(path.join(ROOT, 'deploy/k8s', file), 'utf8')).map((d) => d.toJS() as Doc);
}
function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(name + '='))?.slice(name.length + 1);
}

describe('deploy/k8s/gateway.yaml', () => {
  const docs = load('gateway.yaml');
  const deployment = docs.find((d) => d.kind === 'Deployment')!;
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const defaults = resolveGatewayOptions({ tokenSecret: 'x', serviceToken: 'y' });

  it('exposes the gateway and private ports the code listens on', () => {
    const ports = Object.fromEntries(container.ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(ports).toEqual({ public: Number(argValue(container.args, '--port')), private: Number(argValue(container.args, '--private-port')) });
    expect(ports.public).toBe(defaults.port);
    expect(ports.private).toBe(defaults.privatePort);
    expect(container.args[0]).toBe('gateway');
  });

  it('probes /readyz for readiness and /healthz for liveness on the public port', () => {
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: defaults.port });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: defaults.port });
  });

  it('gives the pod more time than the drain window plus the preStop pause', () => {
    const drainMs = parseDurationMs(argValue(container.args, '--drain-window')!, '--drain-window');
    expect(drainMs).toBe(defaults.drainWindowMs);
    const preStopSec = Number(container.lifecycle.preStop.exec.command.at(-1));
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(drainMs + preStopSec * 1000);
  });

  it('keeps at most one node down at a time and selects the gateway pods', () => {
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget')!;
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it('autoscales on a metric the gateway really exports', async () => {
    const hpa = docs.find((d) => d.kind === 'HorizontalPodAutoscaler')!;
    const name = hpa.spec.metrics[0].pods.metric.name;
    const exported = await new GatewayMetrics('n').registry.getMetricsAsJSON();
    expect(exported.map((m) => m.name)).toContain(name);
    expect(hpa.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
  });

  it('reads Redis Sentinel settings from the shared ConfigMap', () => {
    const cm = load('redis-sentinel.yaml').find((d) => d.kind === 'ConfigMap')!;
    expect(container.envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    expect(Object.keys(cm.data)).toEqual(expect.arrayContaining(['REDIS_SENTINELS', 'REDIS_SENTINEL_NAME']));
    for (const hp of cm.data.REDIS_SENTINELS.split(',')) expect(hp).toMatch(/^[^:]+:\d+$/);
  });
});

describe('deploy/k8s/shim.yaml', () => {
  const docs = load('shim.yaml');
  const pod = docs.find((d) => d.kind === 'Deployment')!.spec.template.spec;
  const c = pod.containers[0];

  it('runs the shim on the contract ports; ready and alive on /healthz (unloaded flags route to Sync: still serving)', () => {
    expect(c.args[0]).toBe('shim');
    expect(Number(argValue(c.args, '--port'))).toBe(DEFAULT_SHIM_PORT);
    expect(Number(argValue(c.args, '--admin-port'))).toBe(DEFAULT_ADMIN_PORT);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/healthz', port: DEFAULT_ADMIN_PORT });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: DEFAULT_ADMIN_PORT });
    expect(argValue(c.args, '--admin-host')).toBe('0.0.0.0');
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(argValue(c.args, '--shutdown-window')));
  });

  it('lists every shim pod for the rollout commands: a headless admin Service on the admin port, which --admin-url dns+http:// accepts', () => {
    const admin = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'bifrost-shim-admin')!;
    expect(admin, 'a Service named bifrost-shim-admin in shim.yaml').toBeDefined();
    expect(admin.spec.clusterIP).toBe('None');
    expect(admin.spec.type ?? 'ClusterIP').toBe('ClusterIP');
    expect(admin.spec.selector).toEqual(docs.find((d) => d.kind === 'Deployment')!.spec.template.metadata.labels);
    const containerPort = c.ports.find((p: Doc) => p.name === 'admin').containerPort;
    expect(containerPort).toBe(DEFAULT_ADMIN_PORT);
    expect(admin.spec.ports).toEqual([{ name: 'admin', port: containerPort, targetPort: 'admin' }]);
    expect(checkAdminUrl('--admin-url', `dns+http://bifrost-shim-admin.default.svc.cluster.local.:${containerPort}`)).toContain('dns+http://');
    // The public Service must not expose the admin port.
    const pub = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'bifrost-shim')!;
    expect(pub.spec.ports.map((p: Doc) => p.port)).not.toContain(containerPort);
  });

  it('tells clients a URL they can reach: proxied mode on 0.0.0.0 carries --public-url (the shim refuses to start without it)', () => {
    const opts = shimOptionsFromCli({
      godserver: argValue(c.args, '--godserver')!,
      sync: argValue(c.args, '--sync')!,
      bifrost: argValue(c.args, '--bifrost')!,
      port: argValue(c.args, '--port'),
      adminPort: argValue(c.args, '--admin-port'),
      host: argValue(c.args, '--host'),
      adminHost: argValue(c.args, '--admin-host'),
      mode: argValue(c.args, '--mode') ?? 'proxied',
      publicUrl: argValue(c.args, '--public-url'),
      fallback: argValue(c.args, '--fallback') ?? 'sync',
      rebalanceRate: argValue(c.args, '--rebalance-rate') ?? '100',
      drain: argValue(c.args, '--drain') ?? 'close',
      shutdownWindow: argValue(c.args, '--shutdown-window')!,
    });
    expect(opts.publicUrl).toMatch(/^https?:\/\/[^/]+/);
  });

  it('discovers every gateway pod through the headless Service (not the load-balanced one) on the gateway public port', () => {
    const bifrost = argValue(c.args, '--bifrost')!;
    const u = new URL(bifrost.replace(/^dns\+/, ''));
    expect(bifrost.startsWith('dns+http://')).toBe(true);
    // A fully qualified name: one DNS query per round, no walk through the pod's search domains.
    expect(u.hostname).toMatch(/\.svc\.cluster\.local\.$/);
    const gw = load('gateway.yaml');
    const gwPod = gw.find((d) => d.kind === 'Deployment')!.spec.template;
    const headless = gw.find((d) => d.kind === 'Service' && d.metadata.name === u.hostname.split('.')[0])!;
    expect(headless, `a Service named ${u.hostname.split('.')[0]} in gateway.yaml`).toBeDefined();
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.selector).toEqual(gwPod.metadata.labels);
    const publicPort = gwPod.spec.containers[0].ports.find((p: Doc) => p.name === 'public').containerPort;
    // A headless Service's records are pod addresses: the shim dials the container port itself.
    expect(Number(u.port)).toBe(publicPort);
    expect(headless.spec.ports.find((p: Doc) => p.name === 'public').port).toBe(publicPort);
  });
});

describe('deploy/Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
  it('runs bin/bifrost.mjs, gateway by default, on Node 20, with the contract ports', () => {
    expect(text).toMatch(/^FROM node:20/m);
    expect(text).toContain('ENTRYPOINT ["node", "bin/bifrost.mjs"]');
    expect(text).toContain('CMD ["gateway"]');
    for (const p of [8080, 8081, 3000, 9090]) expect(text).toMatch(new RegExp(`EXPOSE[^\\n]*\\b${p}\\b`));
    for (const dir of ['bin', 'cli', 'gateway', 'proxy', 'legacy']) expect(text).toContain(`COPY ${dir} ./${dir}`);
  });
});
