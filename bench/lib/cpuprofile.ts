// Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and says where the time went: self time per
// function (callFrame functionName + url + line), per category (holdfast's own code, Node's core,
// dependencies, GC, native), and the inclusive time of holdfast's own functions.

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  functionName: string;
  /** The script, shortened: relative to the repository, or node:..., or a package path. */
  where: string;
  category: string;
  us: number;
  /** Share of the busy (not idle) time in the window. */
  percent: number;
}

export interface ProfileSummary {
  /** The part of the profile summarized, in µs of the monotonic clock; all of it when no window. */
  windowUs: number;
  busyUs: number;
  idleUs: number;
  samples: number;
  topSelf: FunctionTime[];
  byCategory: Array<{ category: string; us: number; percent: number }>;
  topHoldfastInclusive: FunctionTime[];
}

function shorten(url: string, repoRoot: string): string {
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith(repoRoot + '/')) return u.slice(repoRoot.length + 1).replace(/^node_modules\//, '');
  return u;
}

export function categoryOf(frame: CallFrame): string {
  const { functionName: fn, url } = frame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8 and native, unattributed ((program))';
  if (fn === '(root)') return 'root';
  if (url.startsWith('node:')) return url.startsWith('node:internal/') ? 'Node core internals (node:internal/*)' : `Node core (${url})`;
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return `dependency ${m[1]}`;
  if (/\/dist\/src\//.test(url)) return 'holdfast (dist/src)';
  if (url === '') return 'native (builtins, C++ bindings)';
  return 'other scripts';
}

export function summarizeProfile(profile: CpuProfile, repoRoot: string, window?: { fromUs: number; toUs: number }, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const keyOf = (f: CallFrame) => `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}`;
  const self = new Map<string, { frame: CallFrame; us: number }>();
  const inclusive = new Map<string, { frame: CallFrame; us: number }>();
  const categories = new Map<string, number>();
  let windowUs = 0;
  let idleUs = 0;
  let samples = 0;

  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i]!);
    if (!node) continue;
    samples++;
    windowUs += us;
    const category = categoryOf(node.callFrame);
    if (category === 'idle') {
      idleUs += us;
      continue;
    }
    categories.set(category, (categories.get(category) ?? 0) + us);
    const k = keyOf(node.callFrame);
    const s = self.get(k) ?? { frame: node.callFrame, us: 0 };
    s.us += us;
    self.set(k, s);
    // Inclusive: every distinct holdfast function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (categoryOf(frame) !== 'holdfast (dist/src)') continue;
      const fk = keyOf(frame);
      if (seen.has(fk)) continue;
      seen.add(fk);
      const e = inclusive.get(fk) ?? { frame, us: 0 };
      e.us += us;
      inclusive.set(fk, e);
    }
  }

  const busyUs = windowUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (us / busyUs) * 100 : 0);
  const rows = (m: Map<string, { frame: CallFrame; us: number }>): FunctionTime[] =>
    [...m.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(({ frame, us }) => ({
        functionName: frame.functionName || '(anonymous)',
        where: frame.url ? `${shorten(frame.url, repoRoot)}:${frame.lineNumber + 1}` : '',
        category: categoryOf(frame),
        us,
        percent: pct(us),
      }));
  return {
    windowUs,
    busyUs,
    idleUs,
    samples,
    topSelf: rows(self),
    byCategory: [...categories.entries()].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, us, percent: pct(us) })),
    topHoldfastInclusive: rows(inclusive),
  };
}
