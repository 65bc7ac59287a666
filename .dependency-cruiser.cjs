/**
 * npm run deps: the direction of dependencies and no cycles (dependency-cruiser 16).
 * Layers: workers/ → src/ → jobs/. jobs/ (payload schemas) imports nothing of ours
 * outside jobs/; src/ imports nothing from workers/ (the entry points). test/ and
 * bench/ may import anything. Type-only imports count (tsPreCompilationDeps).
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'src/, jobs/ and workers/ have no import cycles, type-only imports included: a shared type goes in its own module.',
      from: { path: '^(src|jobs|workers)/' },
      to: { circular: true },
    },
    {
      name: 'jobs-imports-only-jobs',
      severity: 'error',
      comment: 'jobs/ is the bottom layer (job payloads and their schemas): it imports nothing from src/, workers/, test/ or bench/.',
      from: { path: '^jobs/' },
      to: { path: '^(src|workers|test|bench)/' },
    },
    {
      name: 'src-not-workers',
      severity: 'error',
      comment: 'src/ is the library; workers/ are its entry points: src/ imports nothing from workers/, test/ or bench/.',
      from: { path: '^src/' },
      to: { path: '^(workers|test|bench)/' },
    },
    {
      name: 'workers-not-tests',
      severity: 'error',
      comment: 'workers/ are shipped entry points: they import nothing from test/ or bench/.',
      from: { path: '^workers/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves (a typo in a relative path, or a package missing from node_modules).',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|bench/results|test/chaos/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
