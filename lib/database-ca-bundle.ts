import type { BundleFile } from './bundled-config.js';

/**
 * What the database functions trust when they check a server certificate (`tls: verify-full`). Node.js reads extra
 * CA certificates from `NODE_EXTRA_CA_CERTS` once at start-up, in addition to its own roots.
 *
 * - With a PEM file (`aws.databaseCaBundlePath`, e.g. the RDS global bundle downloaded from AWS): the file ships in
 *   each database function's bundle and the variable points at it.
 * - Without one: the variable points at the Amazon CA file every Lambda Node.js runtime carries, which includes the
 *   RDS certificate authorities (since Node.js 20 the runtime no longer loads it unless asked).
 *
 * `tls: require` and `tls: disable` do not check certificates and must be written in the config explicitly.
 */
export class DatabaseCaBundle {
  /** Name of the shipped file inside each bundle. */
  public static readonly FILE_NAME = 'database-ca.pem';
  /** The Amazon CA certificates of the Lambda Node.js runtime (RDS included). */
  public static readonly LAMBDA_RUNTIME_CA_FILE = '/var/runtime/ca-cert.pem';

  /** Files to copy into the bundle: the PEM file when one is configured. */
  public readonly files: readonly BundleFile[];
  /** `NODE_EXTRA_CA_CERTS`, for the database functions. */
  public readonly environment: Readonly<Record<string, string>>;

  /** @param sourceFile absolute path of a PEM file with the CA certificates; omitted: the runtime's Amazon CAs */
  constructor(sourceFile?: string) {
    this.files = sourceFile ? [{ sourceFile, fileName: DatabaseCaBundle.FILE_NAME }] : [];
    this.environment = {
      NODE_EXTRA_CA_CERTS: sourceFile
        ? `/var/task/${DatabaseCaBundle.FILE_NAME}`
        : DatabaseCaBundle.LAMBDA_RUNTIME_CA_FILE,
    };
  }
}
