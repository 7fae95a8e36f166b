/**
 * The schedule's runs daylight saving time takes away: EventBridge Scheduler skips a cron run at a local time that
 * does not exist (the clocks put forward), so a day whose every run falls there has none, and the no-successful-run
 * alarm fires on the gap.
 */

const CRON = /^cron\((\S+(?:\s+\S+)*)\)$/;
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/** A cron day-of-week field as weekdays (0 is Sunday; the cron's 1 to 7 are SUN to SAT), or undefined. */
function weekdaysOf(field: string): Set<number> | undefined {
  const day = (token: string) => {
    const at = /^[1-7]$/.test(token) ? Number(token) - 1 : WEEKDAYS.indexOf(token.toUpperCase());
    return at < 0 ? undefined : at;
  };
  const days = new Set<number>();
  for (const token of field.split(',')) {
    const [from, to = from] = token.split('-').map(day);
    if (from === undefined || to === undefined || token.split('-').length > 2) return undefined;
    for (let d = from; d !== (to + 1) % 7; d = (d + 1) % 7) days.add(d);
  }
  return days;
}

/**
 * A cron that runs at fixed times on every day, or on given weekdays: its local times (minutes after midnight) and its
 * weekdays (undefined: every day). Undefined for any other cron (or a rate), which this check leaves alone.
 */
function fixedRuns(expression: string): { minutes: number[]; weekdays?: Set<number> } | undefined {
  const fields = CRON.exec(expression)?.[1]?.split(/\s+/);
  if (fields?.length !== 6) return undefined;
  const [minutes = '', hours = '', dayOfMonth = '', month = '', dayOfWeek = '', year = ''] = fields;
  const every = (field: string) => field === '*' || field === '?';
  if (!every(dayOfMonth) || !every(month) || !every(year)) return undefined;
  const weekdays = every(dayOfWeek) ? undefined : weekdaysOf(dayOfWeek);
  if (!every(dayOfWeek) && !weekdays) return undefined;
  const list = (field: string, max: number) =>
    /^\d{1,2}(,\d{1,2})*$/.test(field)
      ? field
          .split(',')
          .map(Number)
          .filter((n) => n <= max)
      : undefined;
  const atMinutes = list(minutes, 59);
  const atHours = list(hours, 23);
  if (!atMinutes?.length || !atHours?.length) return undefined;
  return { minutes: atHours.flatMap((hour) => atMinutes.map((minute) => hour * 60 + minute)), weekdays };
}

/**
 * The local times `zone` skips in the year from `from` (its clocks put forward): each skip's day and its span in
 * minutes after midnight. Offsets are read daily (no zone changes its clocks twice in a day), and a change is found
 * to the minute.
 */
function skippedTimes(zone: string, from: number): { day: string; start: number; end: number }[] {
  const format = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
  const offset = (at: number): number => {
    const name = format.formatToParts(at).find((part) => part.type === 'timeZoneName')?.value ?? '';
    const [, sign = '+', hh = '0', mm = '0'] = /^GMT([+-])(\d{2}):(\d{2})$/.exec(name) ?? [];
    return (sign === '-' ? -1 : 1) * (Number(hh) * 60 + Number(mm));
  };
  const skips: { day: string; start: number; end: number }[] = [];
  let before = offset(from);
  for (let at = from + DAY_MS; at <= from + 366 * DAY_MS; at += DAY_MS) {
    const after = offset(at);
    if (after > before) {
      let [older, newer] = [at - DAY_MS, at];
      while (newer - older > MINUTE_MS) {
        const middle = older + Math.floor((newer - older) / 2 / MINUTE_MS) * MINUTE_MS;
        if (offset(middle) === before) older = middle;
        else newer = middle;
      }
      // The wall clock reads `before` up to the change, then jumps: the times in between never occur.
      const wall = new Date(newer + before * MINUTE_MS);
      const start = wall.getUTCHours() * 60 + wall.getUTCMinutes();
      skips.push({ day: wall.toISOString().slice(0, 10), start, end: start + after - before });
    }
    before = after;
  }
  return skips;
}

const clock = (minutes: number) =>
  `${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;

/**
 * Why a schedule loses a day's runs to daylight saving time in the coming year from `now`, or undefined: every run
 * of a day it runs on falls in the times `timeZone` skips that day. Schedules with other runs that day, and crons of
 * other shapes, are not judged.
 */
export function skippedRun(expression: string, timeZone: string, now = Date.now()): string | undefined {
  const runs = fixedRuns(expression);
  if (!runs) return undefined;
  const skip = skippedTimes(timeZone, now).find(
    ({ day, start, end }) =>
      (runs.weekdays?.has(new Date(`${day}T00:00:00Z`).getUTCDay()) ?? true) &&
      runs.minutes.every((run) => run >= start && run < end),
  );
  if (!skip) return undefined;
  const weekday = WEEKDAYS[new Date(`${skip.day}T00:00:00Z`).getUTCDay()];
  return `runs only at ${runs.minutes.map(clock).join(', ')} in ${timeZone}, which daylight saving time skips on ${skip.day} (${weekday}, ${clock(skip.start)} to ${clock(skip.end)}): EventBridge Scheduler skips a run at a time that does not exist, so that day would have no run and the no-successful-run alarm would fire; choose a time outside that span`;
}
