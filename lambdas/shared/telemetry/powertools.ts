import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, type MetricName, SERVICE_NAME } from './metric-names.js';

/**
 * Module-scope singletons, as Powertools recommends: one per process. The namespace and service are the alarms'
 * contract (lib/monitoring.ts), so they are constants here, not environment variables a deployment could change.
 */
export const logger = new Logger({ serviceName: SERVICE_NAME });
export const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });

/** What the pure cores may report; handlers bind it to Powertools, tests to a recorder. Never row data. */
export interface Telemetry {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  /** A metric of `table`. */
  metric(
    name: MetricName,
    unit: 'Count' | 'Bytes' | 'Milliseconds' | 'Seconds',
    value: number,
    table: { database: string; table: string },
  ): void;
  /** A metric of a whole run. */
  runMetric(name: MetricName, unit: 'Count', value: number): void;
}

/**
 * Telemetry through Powertools. `deployment` (the lock table's name) is a dimension of every metric: every stack in
 * an account shares the namespace and service, and another deployment's successful runs must not keep this one's
 * no-successful-run alarm quiet, nor its failed verifications fire this one's alarms.
 */
export function powertoolsTelemetry(deployment: string): Telemetry {
  return {
    info: (message, fields) => logger.info(message, { ...fields }),
    warn: (message, fields) => logger.warn(message, { ...fields }),
    metric: (name, unit, value, table) => {
      // Per table (database, table dimensions) and in total (the deployment's), so dashboards get both.
      const perTable = metrics.singleMetric();
      perTable.addDimensions({ deployment, database: table.database, table: table.table });
      perTable.addMetric(name, MetricUnit[unit], value);
      const total = metrics.singleMetric();
      total.addDimensions({ deployment });
      total.addMetric(name, MetricUnit[unit], value);
    },
    runMetric: (name, unit, value) => {
      const ofRun = metrics.singleMetric();
      ofRun.addDimensions({ deployment });
      ofRun.addMetric(name, MetricUnit[unit], value);
    },
  };
}
