import { expect } from 'vitest';
import { parseConfig } from '../../lambdas/shared/config/config.js';
import { ConfigError } from '../../lambdas/shared/errors/step-errors.js';

/** The message of the ConfigError that `raw` is refused with; fails the test when the config is accepted. */
export function configErrorOf(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('config was accepted');
}
