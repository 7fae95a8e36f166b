import { describe, expect, it } from 'vitest';
import { roleSql } from '../../cli/role-sql.js';
import { parseConfig } from '../../lambdas/shared/config/config.js';

const config = parseConfig(
  {
    s3: { bucket: 'audit-archive' },
    databases: ['billing', 'crm'].map((name) => ({
      name,
      credentials: { urlEnv: `${name.toUpperCase()}_URL` },
      tables: [{ name: 'events', timestampColumn: 'at' }],
    })),
  },
  'test',
);

describe('role-sql', () => {
  it('prints one database at a time: its SQL runs in that database, and the role is created once for all', () => {
    // Act
    const both = () => roleSql(config, { role: 'audit_archiver' });
    const crm = roleSql(config, { role: 'audit_archiver', database: 'crm' });

    // Assess
    expect(both).toThrow('the config has 2 databases: give --database (billing, crm)');
    expect(crm).toMatch(/^-- audit-archiver role for database crm \(public\.events\)/);
    expect(crm).toContain(
      "IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audit_archiver')",
    );
    expect(crm).not.toContain('billing');
  });

  it('refuses a role name PostgreSQL reserves or knows not, rather than print SQL that fails or grants to a predefined role', () => {
    // Act & Assess: "" is no identifier; public, none and pg_* are reserved. pg_monitor exists, so CREATE ROLE was
    // skipped and SELECT, DELETE on the audit tables granted to it, and so to every monitoring login that is its member.
    for (const role of ['', 'public', 'none', 'pg_archiver', 'pg_monitor'])
      expect(() => roleSql(config, { role, database: 'crm' }), role).toThrow(/^--role: /);
    expect(roleSql(config, { role: 'Archiver "ops"', database: 'crm' })).toContain(
      'CREATE ROLE "Archiver ""ops"""',
    );
  });
});
