/**
 * The import rules `npm test` checks (`npm run deps`). lambdas/shared/ is layered: each folder may import the
 * folders listed before it and never one after it, so the runtime wiring sits on top and the archive format at
 * the bottom. See ARCHITECTURE.md for what each folder holds.
 */
const LAYERS = [
  'errors',
  'archive',
  'config',
  'telemetry',
  'database',
  'lock-table',
  'step',
  'batch',
  'restore',
  'runtime',
];
const shared = (layer) => `^lambdas/shared/${layer}/`;

const layerRules = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `layer-${layer}`,
  comment: `lambdas/shared/${layer} may import only ${LAYERS.slice(0, index).join(', ') || 'no other shared folder'}`,
  severity: 'error',
  from: { path: shared(layer) },
  to: { path: `^lambdas/shared/(${LAYERS.slice(index + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle makes a module half-initialised when either side loads first.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'shared-stays-below-the-functions',
      comment:
        'Shared code never imports a function folder, the CLI, local mode, the CDK app, the bench or tests.',
      severity: 'error',
      from: { path: '^lambdas/shared/' },
      to: { path: '^(lambdas/(?!shared/)[^/]+/|cli/|local/|lib/|bin/|bench/|test/)' },
    },
    {
      name: 'functions-stay-apart',
      comment:
        'A function folder imports shared code, never another function folder or anything outside lambdas/.',
      severity: 'error',
      from: { path: '^lambdas/(?!shared/)([^/]+)/' },
      to: { path: '^(lambdas/(?!shared/|$1/)[^/]+/|cli/|local/|lib/|bin/|bench/|test/)' },
    },
    {
      name: 'functions-never-bundle-the-deployment-schema',
      comment:
        'The aws: section schema is for the CDK app, the CLI and local mode; the functions carry the config as ' +
        'the deployment validated it and never load that schema.',
      severity: 'error',
      from: { path: '^lambdas/' },
      to: { path: '^lambdas/shared/config/deployment-schema\\.ts$' },
    },
    {
      name: 'cdk-app-reads-only-the-contracts',
      comment:
        'The CDK app (lib/, bin/) reads the configuration, the archive layout, the error names and the metric names; ' +
        'it never loads step code, the database layer or the CLI.',
      severity: 'error',
      from: { path: '^(lib/|bin/app.ts)' },
      to: { path: '^(lambdas/(?!shared/(errors|archive|config|telemetry)/)|cli/|local/|bench/|test/)' },
    },
    {
      name: 'product-never-imports-tests',
      severity: 'error',
      from: { path: '^(lambdas|cli|local|lib|bin|bench)/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|cdk\\.out)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
