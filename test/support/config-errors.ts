import { expect } from 'vitest';
import { parseConfig } from '../../lambdas/shared/config/config.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';

/**
 * The message of the ConfigError that `raw` is refused with; fails the test when the config is accepted. `parse`
 * is the runtime's parser unless a test checks the deployment schema.
 */
export function configErrorOf(raw: unknown, parse: (raw: unknown) => unknown = parseConfig): string {
  try {
    parse(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('config was accepted');
}
