import { afterEach, describe, expect, it, vi } from 'vitest';

type PowertoolsModule = typeof import('../../../../lambdas/shared/telemetry/powertools.js');
/** An EMF document: what CloudWatch reads a metric's namespace, dimensions and value from. */
type Emf = {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
} & Record<string, unknown>;

/** The EMF documents Powertools writes while `act` runs, with metrics enabled (the suite disables them). */
async function emitted(act: (module: PowertoolsModule) => void): Promise<Emf[]> {
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
  vi.resetModules();
  const module: PowertoolsModule = await import('../../../../lambdas/shared/telemetry/powertools.js');
  const chunks: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    act(module);
  } finally {
    write.mockRestore();
  }
  return chunks
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Emf);
}

/** Each document's namespace, dimension names and values, and the metric with its value. */
const series = (documents: Emf[]) =>
  documents.flatMap((document) =>
    document._aws.CloudWatchMetrics.flatMap(({ Namespace, Dimensions, Metrics }) =>
      Metrics.map(({ Name }) => ({
        namespace: Namespace,
        dimensions: Object.fromEntries((Dimensions[0] ?? []).map((name) => [name, document[name]])),
        metric: Name,
        value: document[Name],
      })),
    ),
  );

afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
});

describe('Powertools telemetry', () => {
  it('emits a run metric with its deployment, so another stack in the account cannot stand in for this one', async () => {
    // Act
    const documents = await emitted(({ powertoolsTelemetry }) =>
      powertoolsTelemetry('locks-of-prod').runMetric('RunsSucceeded', 'Count', 1),
    );

    // Assess: what lib/monitoring.ts's NoSuccessfulRun watches (test/lib/monitoring.test.ts)
    expect(series(documents)).toEqual([
      {
        namespace: 'AuditArchiver',
        dimensions: { service: 'audit-archiver', deployment: 'locks-of-prod' },
        metric: 'RunsSucceeded',
        value: 1,
      },
    ]);
  });

  it('emits a table’s metric per table and in total, of its deployment', async () => {
    // Act
    const documents = await emitted(({ powertoolsTelemetry }) =>
      powertoolsTelemetry('locks-of-prod').metric('RowsArchived', 'Count', 250, {
        database: 'billing',
        table: 'public.audit_logs',
      }),
    );

    // Assess
    expect(series(documents)).toEqual([
      {
        namespace: 'AuditArchiver',
        dimensions: {
          service: 'audit-archiver',
          deployment: 'locks-of-prod',
          database: 'billing',
          table: 'public.audit_logs',
        },
        metric: 'RowsArchived',
        value: 250,
      },
      {
        namespace: 'AuditArchiver',
        dimensions: { service: 'audit-archiver', deployment: 'locks-of-prod' },
        metric: 'RowsArchived',
        value: 250,
      },
    ]);
  });
});
