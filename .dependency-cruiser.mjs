// The import graph's floors (design.md "Layout and owners"), checked by test/floor/import-graph.test.ts in `npm test`:
//   0 contracts/                     zod and Node built-ins only
//   1 native/ts/                     contracts
//   2 services/{config,client,telemetry,dev}   contracts, native/ts, each other as below
//   3 services/{gateway,sdk,worker,scheduler,status}   the floors below
//   4 entry points: services/cli/, services/index.ts (package API), bin/, scripts/, bench/, and benchmarks not yet
//     moved under bench/ (services/bench/, native/bench/, services/*/bench.ts)
// Nothing imports up a floor, nothing is circular, production code never imports test code, and the OpenTelemetry
// SDK and exporters load from entry points alone (instrumentation uses @opentelemetry/api only).

const ENTRY = '^(services/cli/|services/index\\.ts$|bin/|scripts/|bench/|services/bench/|native/bench/|services/[^/]+/bench\\.ts$)';
const TEST = '^test/';
/** The telemetry SDK side: set-up, exporters, the /metrics page; and the barrel that re-exports it. */
const TELEMETRY_SDK = '^services/telemetry/(sdk|prometheus|openmetrics|request-attributes|index)\\.ts$';
const OTEL_SDK_PACKAGES = 'node_modules/@opentelemetry/(sdk-|exporter-|resources/|core/|otlp-)';

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'contracts-bottom',
      comment: 'contracts/ is the bottom floor: it imports zod, Node built-ins and itself, nothing else',
      severity: 'error',
      from: { path: '^contracts/' },
      to: { pathNot: ['^contracts/', 'node_modules/zod/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'native-ts-on-contracts',
      comment: 'native/ts imports contracts/ (and npm packages), never services, tests, benchmarks or entry points',
      severity: 'error',
      from: { path: '^native/ts/' },
      to: { path: '^(services|test|bench|bin|scripts|native/bench)/' },
    },
    {
      name: 'no-import-of-entry-points',
      comment: 'entry points (CLI, bin, scripts, benchmarks, the package barrel) are the top floor: nothing below imports them',
      severity: 'error',
      from: { path: '^(contracts|native/ts|services)/', pathNot: ENTRY },
      to: { path: ENTRY },
    },
    {
      name: 'floor-2-below-floor-3',
      comment: 'config, client, telemetry and dev tools sit below gateway, sdk, worker, scheduler and status',
      severity: 'error',
      from: { path: '^services/(config|client|telemetry|dev|health)/', pathNot: ENTRY },
      to: { path: '^services/(gateway|sdk|worker|scheduler|status|simulator|fleet)/' },
    },
    {
      name: 'health-on-contracts-and-config',
      comment: 'services/health (health endpoints, process lifecycle) imports contracts/ and services/config (the logger) only',
      severity: 'error',
      from: { path: '^services/health/' },
      to: { path: '^(services|native)/', pathNot: '^services/(health|config)/' },
    },
    {
      name: 'offline-tools-above-the-serving-path',
      comment: 'the simulator and the fleet planner replay the pure policy offline: serving code (floors 0-3) never imports them',
      severity: 'error',
      from: { path: '^(contracts|native/ts|services/(config|client|telemetry|dev|health|gateway|sdk|worker|scheduler|status))/', pathNot: ENTRY },
      to: { path: '^services/(simulator|fleet)/' },
    },
    {
      name: 'client-telemetry-on-contracts',
      comment: 'services/client and telemetry instrumentation import contracts/ only (client/queues.ts takes BullMQ telemetry from its caller)',
      severity: 'error',
      from: { path: '^services/(client|telemetry)/', pathNot: ENTRY },
      to: { path: '^(services|native)/', pathNot: '^services/(client|telemetry)/' },
    },
    {
      name: 'config-on-contracts-and-native',
      comment: 'services/config reads the file and validates it against contracts/ and native/ts option schemas (engine tuning)',
      severity: 'error',
      from: { path: '^services/config/' },
      to: { path: '^services/', pathNot: '^services/config/' },
    },
    {
      name: 'client-not-telemetry',
      comment: 'the Redis / BullMQ plumbing does not import telemetry',
      severity: 'error',
      from: { path: '^services/(client|config)/' },
      to: { path: '^services/telemetry/' },
    },
    {
      name: 'data-path-gateway-sdk',
      comment: 'gateway and SDK reach a worker only through the queue and the stream (services/client), never its code or native/',
      severity: 'error',
      from: { path: '^services/(gateway|sdk)/' },
      to: { path: '^(native/|services/(worker|scheduler)/)' },
    },
    {
      name: 'data-path-worker',
      comment: 'a worker answers through the stream (services/client), never by calling the gateway, SDK, scheduler or status code',
      severity: 'error',
      from: { path: '^services/worker/' },
      to: { path: '^services/(gateway|sdk|scheduler|status)/' },
    },
    {
      name: 'data-path-scheduler',
      comment: 'the scheduler talks to workers over Redis (contracts/cluster.ts), never their code or native/',
      severity: 'error',
      from: { path: '^services/scheduler/', pathNot: ENTRY },
      to: { path: '^(native/|services/(gateway|sdk|worker|status)/)' },
    },
    {
      name: 'telemetry-sdk-at-entry-points',
      comment: 'the OpenTelemetry SDK, exporters and /metrics page are loaded by entry points (and tests) alone',
      severity: 'error',
      from: { pathNot: [ENTRY, TEST, TELEMETRY_SDK] },
      to: { path: [TELEMETRY_SDK, OTEL_SDK_PACKAGES] },
    },
    {
      name: 'no-test-code-in-production',
      comment: 'production code never imports test helpers or the native testing hooks',
      severity: 'error',
      from: { pathNot: [ENTRY, TEST] },
      to: { path: ['^test/', '^native/ts/testing\\.ts$'] },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles (type-only imports included)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|native/build|bench/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
