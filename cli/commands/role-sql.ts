import type { Command } from 'commander';
import { loadDeploymentConfigFile } from '../../lambdas/shared/config/deployment-schema.js';
import { print } from '../output.js';
import { roleSql } from '../role-sql.js';
import { CONFIG_OR_DEMO_OPTIONS, configPathOf, STATE_DIR_OPTION } from './common.js';

/** `role-sql`: the SQL that creates the archiver's database role with the grants its config needs. */
export function registerRoleSql(program: Command): void {
  program
    .command('role-sql')
    .description(
      'Print the SQL that creates the archiver’s database role with exactly the grants the config’s tables need (run it in each database as a superuser or the tables’ owner).',
    )
    .option(...CONFIG_OR_DEMO_OPTIONS.config)
    .option(...CONFIG_OR_DEMO_OPTIONS.demo)
    .option(...STATE_DIR_OPTION)
    .option('-d, --database <name>', 'only this database of the config')
    .option('--role <name>', 'the login role', 'audit_archiver')
    .option('--no-restore', 'leave out what restores need (INSERT, UPDATE, sequences, restore targets)')
    .action(
      async (options: {
        config?: string;
        demo?: boolean;
        stateDir: string;
        database?: string;
        role: string;
        restore: boolean;
      }) => {
        const config = loadDeploymentConfigFile(await configPathOf(options, 'role-sql'));
        print(
          roleSql(config, { role: options.role, database: options.database, noRestore: !options.restore }),
        );
      },
    );
}
