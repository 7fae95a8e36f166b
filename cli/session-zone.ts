import type pg from 'pg';
import { zoneForPostgres } from '../lambdas/shared/config/schema.js';

/** The zone a database's sessions start in, as `sessionZone` reads it. */
export interface SessionZone {
  /** The TimeZone setting sessions start in (the server's, the database's or the role's): reset_val. */
  setting: string;
  /** The zone the config takes for it; undefined when none reads local times as the sessions write them. */
  zone?: string;
  /** Whether the zone compared with gives the sessions' offset at every hour of the four years. */
  same: boolean;
}

/**
 * The zone a database's sessions start in, which `now()` and LOCALTIMESTAMP write a `timestamp` column's local times in,
 * and whether `compared` (a config's timestampTimeZone) reads them as written: the offsets are compared at every hour
 * from `yearsBack` years before this one (the rows a run archives are as old as the retention) to the end of the next,
 * not in January and July alone (Cairo starts summer time four weeks after Athens). An offset is read as the epoch of
 * `t AT TIME ZONE zone` less t's: no `UTC` literal, which a session in a POSIX zone such as `UTC+3` takes for that
 * zone's own abbreviation, and no change to the session's TimeZone, which a transaction pooler could hand another
 * connection. A zone name is read as sessions read it (CET as the region, zoneForPostgres: AT TIME ZONE would take the
 * abbreviation's fixed offset); a POSIX setting such as `<-05>+5` names no zone, and stands for the Etc/GMT zone of its
 * offset when that offset is whole hours and never changes.
 */
export async function sessionZone(
  client: pg.ClientBase,
  compared = 'UTC',
  yearsBack = 2,
): Promise<SessionZone> {
  const setting = await client.query<{ setting: string; named: string | null }>(
    `SELECT s.reset_val AS setting,
            (SELECT z.name FROM pg_catalog.pg_timezone_names AS z WHERE z.name = s.reset_val) AS named
       FROM pg_catalog.pg_settings AS s
      WHERE s.name = 'TimeZone'`,
  );
  const { setting: sessions = 'UTC', named = null } = setting.rows[0] ?? {};
  const offset = (zone: string) =>
    `pg_catalog.date_part('epoch', v.t AT TIME ZONE ${zone}) - pg_catalog.date_part('epoch', v.t)`;
  const offsets = await client.query<{ offset: number | null; same: boolean }>(
    `SELECT CASE WHEN pg_catalog.count(DISTINCT o.session) = 1 THEN pg_catalog.min(o.session)::int END AS "offset",
            pg_catalog.bool_and(o.session = o.compared) AS same
       FROM (SELECT ${offset('$1')} AS session, ${offset('$2')} AS compared
               FROM pg_catalog.generate_series(
                      pg_catalog.date_trunc('year', pg_catalog.now()) - pg_catalog.make_interval(years => $3),
                      pg_catalog.date_trunc('year', pg_catalog.now()) + interval '2 years' - interval '1 hour',
                      interval '1 hour') AS v(t)) AS o`,
    [named ? zoneForPostgres(named) : sessions, compared, yearsBack],
  );
  const { offset: fixed = null, same = false } = offsets.rows[0] ?? {};
  if (named) return { setting: sessions, zone: zoneForPostgres(named), same };
  // Etc/GMT zones run from UTC-12 to UTC+14, their signs reversed (POSIX): UTC-5 is Etc/GMT+5.
  const hours = fixed === null || fixed % 3600 !== 0 ? undefined : fixed / 3600;
  if (hours === undefined || hours < -12 || hours > 14) return { setting: sessions, same };
  return {
    setting: sessions,
    zone: hours === 0 ? 'UTC' : `Etc/GMT${hours > 0 ? '-' : '+'}${Math.abs(hours)}`,
    same,
  };
}
