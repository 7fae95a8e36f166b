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
 * from two years before this one to the end of the next, not in January and July alone (Cairo starts summer time four
 * weeks after Athens). Both zones' offsets are read on the session's own clock, set to each for the while: AT TIME ZONE
 * reads a POSIX string otherwise (`UTC+3` is three hours west for a session), and under such a session zone takes `UTC`
 * for that zone's own abbreviation. A zone name is taken as it is
 * (CET as the region PostgreSQL reads it as, zoneForPostgres); a POSIX setting such as `<-05>+5` names no zone, and
 * stands for the Etc/GMT zone of its offset when that offset is whole hours and never changes.
 */
export async function sessionZone(client: pg.ClientBase, compared = 'UTC'): Promise<SessionZone> {
  const setting = await client.query<{ setting: string; named: string | null; own: string }>(
    `SELECT s.reset_val AS setting, pg_catalog.current_setting('TimeZone') AS own,
            (SELECT z.name FROM pg_catalog.pg_timezone_names AS z WHERE z.name = s.reset_val) AS named
       FROM pg_catalog.pg_settings AS s
      WHERE s.name = 'TimeZone'`,
  );
  const { setting: sessions = 'UTC', named = null, own = 'UTC' } = setting.rows[0] ?? {};
  const offsets = async (zone: string): Promise<number[]> => {
    await client.query(`SELECT pg_catalog.set_config('TimeZone', $1, false)`, [zone]);
    const hours = await client.query<{ offsets: number[] }>(
      `SELECT pg_catalog.array_agg(pg_catalog.date_part('timezone', v.t)::int ORDER BY v.t) AS offsets
         FROM pg_catalog.generate_series(
                pg_catalog.date_trunc('year', pg_catalog.now()) - interval '2 years',
                pg_catalog.date_trunc('year', pg_catalog.now()) + interval '2 years' - interval '1 hour',
                interval '1 hour') AS v(t)`,
    );
    return hours.rows[0]?.offsets ?? [];
  };
  let ofSessions: number[];
  let ofCompared: number[];
  try {
    ofSessions = await offsets(sessions);
    ofCompared = await offsets(compared);
  } finally {
    await client.query(`SELECT pg_catalog.set_config('TimeZone', $1, false)`, [own]);
  }
  const same = ofSessions.length > 0 && ofSessions.every((offset, at) => offset === ofCompared[at]);
  if (named) return { setting: sessions, zone: zoneForPostgres(named), same };
  // Etc/GMT zones run from UTC-12 to UTC+14, their signs reversed (POSIX): UTC-5 is Etc/GMT+5.
  const offset = ofSessions.every((seconds) => seconds === ofSessions[0]) ? ofSessions[0] : undefined;
  const hours = offset === undefined || offset % 3600 !== 0 ? undefined : offset / 3600;
  if (hours === undefined || hours < -12 || hours > 14) return { setting: sessions, same };
  return {
    setting: sessions,
    zone: hours === 0 ? 'UTC' : `Etc/GMT${hours > 0 ? '-' : '+'}${Math.abs(hours)}`,
    same,
  };
}
