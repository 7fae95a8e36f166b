import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stage } from 'aws-cdk-lib';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { DeploymentConfig } from '../lambdas/shared/config/deployment-schema.js';

/** A file copied into a function bundle's root after esbuild. */
export interface BundleFile {
  /** Absolute path of the file on the synthesizing machine. */
  readonly sourceFile: string;
  /** Its name in the bundle (Lambda unpacks bundles into /var/task). */
  readonly fileName: string;
}

/** esbuild command hooks that copy `files` into the bundle's root after bundling. */
export function copyIntoBundle(files: readonly BundleFile[]): nodejs.ICommandHooks {
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_inputDir: string, outputDir: string) =>
      files.map(({ sourceFile, fileName }) =>
        process.platform === 'win32'
          ? `copy /Y "${sourceFile}" "${join(outputDir, fileName)}"`
          : `cp "${sourceFile}" "${outputDir}/${fileName}"`,
      ),
  };
}

export interface BundledConfigProps {
  /** The validated config; shipped as JSON, which the functions' YAML loader reads as it is. */
  readonly config: DeploymentConfig;
}

/**
 * The validated config as a JSON file that every function bundle carries at its root, so a function reads exactly
 * the config its deployment was checked against. The file is written into the cloud assembly, named by its
 * content hash; the bundles copy it after esbuild, and the output-hashed assets change whenever it does.
 */
export class BundledConfig extends Construct implements BundleFile {
  /** Name of the file inside each bundle. */
  public static readonly FILE_NAME = 'archiver.config.json';
  /** Where the functions find it: Lambda unpacks the bundle into /var/task (`ARCHIVER_CONFIG_PATH`). */
  public static readonly RUNTIME_PATH = `/var/task/${BundledConfig.FILE_NAME}`;

  /** Absolute path of the JSON file in the cloud assembly directory. */
  public readonly sourceFile: string;
  public readonly fileName = BundledConfig.FILE_NAME;

  constructor(scope: Construct, id: string, props: BundledConfigProps) {
    super(scope, id);
    const outdir = Stage.of(this)?.outdir;
    if (!outdir) throw new Error(`${this.node.path}: BundledConfig must be created inside an App or Stage`);
    const json = `${JSON.stringify(props.config, null, 2)}\n`;
    const hash = createHash('sha256').update(json).digest('hex').slice(0, 16);
    mkdirSync(outdir, { recursive: true });
    this.sourceFile = join(outdir, `archiver-config.${hash}.json`);
    writeFileSync(this.sourceFile, json);
  }
}
