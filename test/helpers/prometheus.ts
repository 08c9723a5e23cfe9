// A strict parser of the Prometheus text exposition format 0.0.4, as promtool and the Prometheus
// scraper read it: HELP/TYPE lines, samples `name{label="value",...} value [timestamp]`, label
// value escaping, every sample in a declared family, families contiguous, no duplicate series,
// histograms with cumulative buckets ending in +Inf that agree with _count, and a _sum.
// It throws on the first problem, naming the line.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const typed = new Set<string>(); // families with a TYPE line
  const seenSeries = new Set<string>();
  const closed = new Set<string>(); // families whose samples ended: they may not come back
  let current: Family | undefined;
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const lines = text.split('\n');
  lines.pop();

  lines.forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line.slice(0, 120))})`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest = ''] = m as unknown as [string, 'HELP' | 'TYPE', string, string | undefined];
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      const family = familyFor(name, where);
      if (kind === 'HELP') {
        if (family.help !== undefined) throw new Error(`${where}: a second HELP for ${name}`);
        family.help = unescapeHelp(rest, where);
      } else {
        if (!TYPES.includes(rest as MetricType)) throw new Error(`${where}: unknown type ${rest}`);
        if (family.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`);
        if (family.type !== 'untyped' || typed.has(name)) throw new Error(`${where}: a second TYPE for ${name}`);
        typed.add(name);
        family.type = rest as MetricType;
      }
      return;
    }
    const sample = parseSample(line, where);
    const owner = ownerOf(sample.name);
    if (!owner) throw new Error(`${where}: sample ${sample.name} belongs to no declared family (no TYPE line)`);
    if (current && current !== owner) closed.add(current.name);
    if (closed.has(owner.name)) throw new Error(`${where}: samples of ${owner.name} are not together`);
    current = owner;
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seenSeries.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    seenSeries.add(key);
    if (owner.type === 'counter' && !(sample.value >= 0)) throw new Error(`${where}: a counter must be >= 0`);
    owner.samples.push(sample);
  });

  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;

  function familyFor(name: string, where: string): Family {
    let family = families.get(name);
    if (!family) {
      family = { name, type: 'untyped', help: undefined, samples: [] };
      families.set(name, family);
    } else if (family.samples.length > 0) {
      throw new Error(`${where}: metadata of ${name} after its samples`);
    }
    return family;
  }

  /** The family a sample name belongs to: itself, or a histogram's/summary's _bucket, _sum, _count. */
  function ownerOf(name: string): Family | undefined {
    const direct = families.get(name);
    if (direct && typed.has(name)) return direct.type === 'histogram' ? undefined : direct;
    const m = /^(.*)_(bucket|sum|count)$/.exec(name);
    if (!m) return undefined;
    const base = families.get(m[1]!);
    if (!base) return undefined;
    if (base.type === 'histogram') return base;
    if (base.type === 'summary' && m[2] !== 'bucket') return base;
    return undefined;
  }
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  if (!nameMatch) throw new Error(`${where}: a sample must start with a metric name`);
  const name = nameMatch[1]!;
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const ln = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(pos));
      if (!ln) throw new Error(`${where}: bad label at column ${pos + 1}`);
      const labelName = ln[1]!;
      if (!LABEL_NAME.test(labelName) || labelName.startsWith('__')) throw new Error(`${where}: reserved or bad label name ${labelName}`);
      if (labelName in labels) throw new Error(`${where}: label ${labelName} twice`);
      pos += ln[0].length;
      let value = '';
      for (;;) {
        const c = line[pos];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') {
          pos++;
          break;
        }
        if (c === '\\') {
          const e = line[pos + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else throw new Error(`${where}: bad escape \\${e ?? ''} in a label value`);
          pos += 2;
          continue;
        }
        value += c;
        pos++;
      }
      labels[labelName] = value;
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new Error(`${where}: expected , or } after a label at column ${pos + 1}`);
    }
  }
  const rest = line.slice(pos);
  const m = /^[ \t]+(\S+)(?:[ \t]+(-?[0-9]+))?[ \t]*$/.exec(rest);
  if (!m) throw new Error(`${where}: expected " value [timestamp]" after the name and labels`);
  return { name, labels, value: parseValue(m[1]!, where) };
}

function parseValue(text: string, where: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(text)) throw new Error(`${where}: ${text} is not a number`);
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape \\${c} in HELP`);
  });
}

function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: Array<{ le: number; value: number }>; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
      entry.buckets.push({ le: parseValue(le, `${family.name} le`), value: s.value });
    } else if (s.name === `${family.name}_sum`) entry.sum = s.value;
    else if (s.name === `${family.name}_count`) entry.count = s.value;
    else throw new Error(`${family.name}: unexpected sample ${s.name} in a histogram`);
  }
  for (const [key, e] of series) {
    const where = `${family.name}${key}`;
    if (e.buckets.length === 0) throw new Error(`${where}: no buckets`);
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i]!.le > e.buckets[i - 1]!.le)) throw new Error(`${where}: bucket bounds not increasing`);
      if (e.buckets[i]!.value < e.buckets[i - 1]!.value) throw new Error(`${where}: buckets not cumulative`);
    }
    const last = e.buckets[e.buckets.length - 1]!;
    if (last.le !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (e.count === undefined || e.sum === undefined) throw new Error(`${where}: _count or _sum missing`);
    if (e.count !== last.value) throw new Error(`${where}: _count ${e.count} differs from the +Inf bucket ${last.value}`);
  }
}

/** The value of one series; labels must match exactly. undefined when absent. */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const a = Object.entries(s.labels).sort();
      const b = Object.entries(labels).sort();
      if (JSON.stringify(a) === JSON.stringify(b)) return s.value;
    }
  }
  return undefined;
}

/** Every series of a sample name whose labels include `labels`. */
export function samplesOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const out: Sample[] = [];
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) out.push(s);
    }
  }
  return out;
}
