import { describe, expect, it } from 'vitest';
import { parseCostOptions, parseSize, workloadFromOptions } from '../../../cli/commands/cost.js';
import { archiveObjects } from '../../../cli/cost-model.js';

const GIB = 1024 ** 3;

describe('cost: inputs', () => {
  it('reads sizes in the binary units S3 bills in, and names the field of bad input', () => {
    // Act / Assess
    expect(parseSize('120GB')).toBe(120 * GIB);
    expect(parseSize('1.5 TiB')).toBe(1.5 * 1024 * GIB);
    expect(() => parseSize('lots')).toThrow(/--size: "lots" is not a size/);
    expect(() => parseCostOptions({ size: '1GB', rows: '5' })).toThrow(/size: give either --size or --rows/);
    expect(() => parseCostOptions({ rows: '5', compressionRatio: '0.5' })).toThrow(
      /compressionRatio: must be at least 1/,
    );
  });

  it('refuses figures past 1 EiB of archives, which would price as $∞, naming the option', () => {
    // Act / Assess
    expect(() =>
      workloadFromOptions(
        parseCostOptions({ rows: '9007199254740991', avgRowBytes: '1e300', days: '1' }),
        50_000,
      ),
    ).toThrow(/^--rows × --avg-row-bytes: an endless size of archives is more than 1 EiB/);
    expect(() =>
      workloadFromOptions(parseCostOptions({ size: `${'9'.repeat(400)}TB`, days: '1' }), 50_000),
    ).toThrow(/^--size: an endless size/);
    expect(() =>
      workloadFromOptions(
        parseCostOptions({ rows: '1', avgRowBytes: '1e9', monthlyRows: '9007199254740991', days: '1' }),
        50_000,
      ),
    ).toThrow(/^--monthly-rows: [\d,.]+ GiB of archives is more than 1 EiB/);
  });

  it('derives rows and archives from a size, and from rows and their raw width', () => {
    // Act
    const sized = workloadFromOptions(
      parseCostOptions({ size: '720MB', compressionRatio: '2', days: '1' }),
      50_000,
    );
    const rowed = workloadFromOptions(
      parseCostOptions({ rows: '1000000', avgRowBytes: '240', days: '1' }),
      50_000,
    );

    // Assess
    expect(sized.backlog.bytes).toBe(360 * 1024 ** 2);
    expect(sized.backlog.objects).toBe(Math.ceil(sized.backlog.rows / 50_000));
    expect(rowed.backlog.bytes).toBe(1_000_000 * 100);
    expect(archiveObjects(10, 50_000, 30)).toBe(10);
    expect(archiveObjects(100_000, 50_000, 30)).toBe(30);
  });

  it('counts at least one archive per UTC day (or month) the backlog spans, as a run writes them', () => {
    // Prepare: a million rows, 20 batches of 50,000, over a year of days.
    const year = { rows: '1000000', days: '365' };

    // Act
    const days = workloadFromOptions(parseCostOptions(year), 50_000);
    const months = workloadFromOptions(parseCostOptions({ ...year, objectSpan: 'month' }), 50_000);
    // Without --days the span follows from the monthly inflow: 100,000 rows a month make a million in 300 days.
    const inflow = workloadFromOptions(parseCostOptions({ rows: '1000000', monthlyRows: '100000' }), 50_000);
    const sized = workloadFromOptions(parseCostOptions({ size: '75GB', days: '730' }), 50_000_000);

    // Assess
    expect(days.backlog.objects).toBe(365);
    expect(months.backlog.objects).toBe(20);
    expect(
      workloadFromOptions(parseCostOptions({ ...year, objectSpan: 'month' }), 500_000).backlog.objects,
    ).toBe(13);
    expect(inflow.backlog.objects).toBe(300);
    expect(inflow.monthly.objects).toBe(30);
    expect(
      workloadFromOptions(parseCostOptions({ rows: '0', monthlyRows: '100000', objectSpan: 'month' }), 50_000)
        .monthly.objects,
    ).toBe(2);
    expect(sized.backlog.objects).toBe(730);
    expect(days.basis).toMatch(/over 365 days/);
    expect(inflow.basis).toMatch(/over 300 days \(from --monthly-rows\)/);
  });

  it('refuses a zero --size or --rows, which would report zero figures, unless --monthly-rows gives rows afterwards', () => {
    // Act / Assess
    expect(() => parseCostOptions({ rows: '0', days: '1' })).toThrow(/rows: must be positive/);
    expect(() => parseCostOptions({ size: '0GB', days: '1' })).toThrow(/size: must be positive/);
    expect(() => parseCostOptions({ size: '0', days: '1', monthlyRows: '0' })).toThrow(
      /size: must be positive/,
    );
    expect(parseCostOptions({ rows: '0', monthlyRows: '100000' }).rows).toBe(0);
    expect(parseCostOptions({ size: '0.5GB', days: '1' }).size).toBe('0.5GB');
  });

  it('refuses rows or a size it cannot spread over days, naming --days', () => {
    // Act / Assess
    expect(() => workloadFromOptions(parseCostOptions({ rows: '1000000' }), 50_000)).toThrow(
      /--days: .*the UTC days the rows span/,
    );
    expect(() => workloadFromOptions(parseCostOptions({ size: '1GB' }), 50_000)).toThrow(/--days/);
    expect(() => parseCostOptions({ rows: '5', days: '0' })).toThrow(/days:/);
    expect(() => parseCostOptions({ rows: '5', days: '1', objectSpan: 'week' })).toThrow(/objectSpan:/);
  });

  it('refuses --days or --object-span without --size or --rows, where measured tables would ignore them', () => {
    // Act / Assess: with a config or --demo the tables are measured, each over its own days and objectSpan.
    expect(() => parseCostOptions({ days: '730' })).toThrow(/days: needs --size or --rows/);
    expect(() => parseCostOptions({ objectSpan: 'month' })).toThrow(/objectSpan: needs --size or --rows/);
    expect(parseCostOptions({ monthlyRows: '0' }).objectSpan).toBeUndefined();
  });

  it('refuses --monthly-rows or --compression-ratio without the figures they apply to, where measured tables would ignore them', () => {
    // Act / Assess: measured tables take their rows a month from the statistics and their bytes per row from their
    // archives or row width, so either figure was dropped without a word, and the estimate read as if it counted.
    expect(() => parseCostOptions({ monthlyRows: '5000000' })).toThrow(/monthlyRows: needs --size or --rows/);
    expect(() => parseCostOptions({ compressionRatio: '4' })).toThrow(
      /compressionRatio: needs --size or --avg-row-bytes/,
    );
    expect(() => parseCostOptions({ rows: '5', days: '1', compressionRatio: '4' })).toThrow(
      /compressionRatio: needs --size or --avg-row-bytes/,
    );
    expect(
      parseCostOptions({ rows: '5', avgRowBytes: '100', days: '1', compressionRatio: '4' }).compressionRatio,
    ).toBe(4);
  });
});
