import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type ICruiseResult, type IForbiddenRuleType } from 'dependency-cruiser';
import { afterAll, describe, expect, it } from 'vitest';

// The rules `npm run deps` applies to the real tree; here they meet a small tree built to break each one, so a rule
// that stopped matching (a renamed folder, a wrong regular expression) fails this test instead of passing silently.
const { forbidden } = createRequire(import.meta.url)('../../.dependency-cruiser.cjs') as {
  forbidden: IForbiddenRuleType[];
};

const scratch = mkdtempSync(join(tmpdir(), 'import-rules-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(scratch, 'tree-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

async function violations(root: string): Promise<string[]> {
  const tops = ['lambdas', 'cli', 'lib'].filter((top) => existsSync(join(root, top)));
  const { output } = await cruise(tops, { ruleSet: { forbidden }, validate: true, baseDir: root });
  return (output as ICruiseResult).summary.violations.map(({ rule, from }) => `${rule.name} ${from}`).sort();
}

describe('the import rules', () => {
  it('accept imports that point down the layers', async () => {
    // Prepare: runtime imports batch, batch imports archive, a function imports shared code, the CLI imports a function.
    const root = tree({
      'lambdas/shared/archive/format.ts': 'export const a = 1;\n',
      'lambdas/shared/batch/batch.ts': "import { a } from '../archive/format.ts';\nexport const b = a;\n",
      'lambdas/shared/runtime/deps.ts': "import { b } from '../batch/batch.ts';\nexport const c = b;\n",
      'lambdas/export/core.ts': "import { c } from '../shared/runtime/deps.ts';\nexport const d = c;\n",
      'cli/main.ts': "import { d } from '../lambdas/export/core.ts';\nexport const e = d;\n",
    });

    // Act and assess
    expect(await violations(root)).toEqual([]);
  });

  it('refuse a cycle, an import up the layers, and shared or CDK code reaching a function', async () => {
    // Prepare
    const root = tree({
      'lambdas/shared/config/config.ts': "import { g } from './governance.ts';\nexport const c = g;\n",
      'lambdas/shared/config/governance.ts': "import { c } from './config.ts';\nexport const g = () => c;\n",
      'lambdas/shared/archive/format.ts': "import { b } from '../batch/batch.ts';\nexport const a = b;\n",
      'lambdas/shared/batch/batch.ts': "import { x } from '../../export/core.ts';\nexport const b = x;\n",
      'lambdas/export/core.ts': "import { y } from '../upload/core.ts';\nexport const x = y;\n",
      'lambdas/upload/core.ts': 'export const y = 1;\n',
      'lib/stack.ts': "import { b } from '../lambdas/shared/batch/batch.ts';\nexport const s = b;\n",
    });

    // Act
    const found = await violations(root);

    // Assess: each broken rule is reported at the importing module.
    expect(found).toEqual(
      expect.arrayContaining([
        'no-circular lambdas/shared/config/config.ts',
        'layer-archive lambdas/shared/archive/format.ts',
        'shared-stays-below-the-functions lambdas/shared/batch/batch.ts',
        'functions-stay-apart lambdas/export/core.ts',
        'cdk-app-reads-only-the-contracts lib/stack.ts',
      ]),
    );
  });
});
