import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RestoreRequestSchema } from '../../lambdas/shared/restore/restore-task.js';

/** The operating guide's restore execution inputs: the ```json blocks of its section on the console's "Start execution". */
function restoreInputs(): string[] {
  const readme = readFileSync(new URL('../../docs/operating.md', import.meta.url), 'utf8');
  const start = readme.indexOf('The execution input: paste one of these');
  const section = readme.slice(start, readme.indexOf('| field |', start));
  return [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
}

describe('the operating guide', () => {
  it('gives restore execution inputs that paste into the console as they are: plain JSON the restore accepts', () => {
    // Prepare
    const inputs = restoreInputs();

    // Act / Assess: no comments or ellipses, so JSON.parse takes each, and the restore's own schema accepts it.
    expect(inputs.length).toBeGreaterThanOrEqual(4);
    for (const input of inputs) {
      const parsed: unknown = JSON.parse(input);
      expect(RestoreRequestSchema.safeParse(parsed).error).toBeUndefined();
    }
  });
});
