import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** Module-scope singletons, as Powertools recommends: one per process, configured from POWERTOOLS_* env vars. */
export const logger = new Logger({ serviceName: 'audit-archiver' });
export const metrics = new Metrics({ namespace: 'AuditArchiver', serviceName: 'audit-archiver' });

export type MetricName =
  | 'RowsArchived'
  | 'BytesArchived'
  | 'BatchesArchived'
  | 'ObjectsArchived'
  | 'RowsDeleted'
  | 'VerificationFailures'
  | 'RowsChanged'
  | 'ExportDuration'
  | 'UploadDuration'
  | 'VerifyDuration'
  | 'DeleteDuration'
  | 'TablesSkippedLocked'
  | 'TableRunsSucceeded'
  | 'TablesBudgetReached'
  | 'BacklogRows'
  | 'VacuumFailures'
  | 'ReplicaLagPauses'
  | 'BusySessions'
  | 'ThrottlePauseSeconds';

/** What the pure cores may report; handlers bind it to Powertools, tests to a recorder. Never row data. */
export interface Telemetry {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  metric(
    name: MetricName,
    unit: 'Count' | 'Bytes' | 'Milliseconds' | 'Seconds',
    value: number,
    table: { database: string; table: string },
  ): void;
}

export const powertoolsTelemetry: Telemetry = {
  info: (message, fields) => logger.info(message, { ...fields }),
  warn: (message, fields) => logger.warn(message, { ...fields }),
  metric: (name, unit, value, table) => {
    // Per table (database, table dimensions) and in total (service dimension only), so dashboards get both.
    const perTable = metrics.singleMetric();
    perTable.addDimensions({ database: table.database, table: table.table });
    perTable.addMetric(name, MetricUnit[unit], value);
    metrics.singleMetric().addMetric(name, MetricUnit[unit], value);
  },
};
