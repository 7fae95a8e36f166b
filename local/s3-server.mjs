// Runs s3rver in its own process: it needs --openssl-legacy-provider (its list continuation tokens use DES,
// which current Node disables), and the flag must not weaken the archiver's own process.
// It exits when its parent goes away, so a killed local run never leaves a server behind.
import S3rver from 's3rver';

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});
const { port } = await server.run();
process.send?.({ port });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
