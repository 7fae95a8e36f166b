/** CloudWatch namespace of the functions' custom metrics, which the stack's alarms and dashboard watch. */
export const METRICS_NAMESPACE = 'AuditArchiver';
/** Value of the custom metrics' `service` dimension and of the logs' `service` key. */
export const SERVICE_NAME = 'audit-archiver';

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
  | 'RunsSucceeded'
  | 'TablesBudgetReached'
  | 'BacklogRows'
  | 'VacuumFailures'
  | 'ReplicaLagPauses'
  | 'BusySessions'
  | 'ThrottlePauseSeconds';
