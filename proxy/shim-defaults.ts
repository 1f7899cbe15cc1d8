/**
 * The shim's defaults that other parts (CLI, tests) need without loading the
 * shim itself (the LaunchDarkly SDK, http-proxy-3, Fastify).
 */
export const DEV_ADMIN_TOKEN = 'bifrost-dev-admin-token';
export const DEFAULT_SHIM_PORT = 3000;
export const DEFAULT_ADMIN_PORT = 9090;
