// Repeated identical warnings and errors are rate-limited, so that no visitor (a flood of requests
// to a down app, of malformed requests) can make holdfast write more than a bounded rate: per kind
// of line, BURST lines per WINDOW_MS pass; the rest are counted and reported as one `log_suppressed`
// line ("N similar suppressed") when the window is over.

/** pino's numeric levels: only warn (40) and above are limited; info lines are the operator's own. */
const LIMITED_FROM_LEVEL = 40;
export const BURST = 5;
export const WINDOW_MS = 10_000;
/** Kinds tracked at once; past that, new kinds share one budget (memory stays bounded). */
const MAX_KINDS = 1_000;
const OVERFLOW_KIND = '\u0000other';

interface Kind {
  windowStart: number;
  passed: number;
  suppressed: number;
  /** The first suppressed line's message, shown with the count. */
  sample: string;
  level: number;
}

export interface Suppressed {
  level: number;
  count: number;
  sample: string;
}

export class RateLimiter {
  private readonly kinds = new Map<string, Kind>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Whether a line may be written now. `report` receives what was suppressed of this kind in the
   * window that just ended, to be written before the line.
   */
  admit(level: number, message: string, event: string | undefined, report: (s: Suppressed) => void): boolean {
    if (level < LIMITED_FROM_LEVEL) return true;
    let key = kindOf(level, message, event);
    const t = this.now();
    let kind = this.kinds.get(key);
    if (kind === undefined && this.kinds.size >= MAX_KINDS) {
      this.sweep(t, report);
      if (this.kinds.size >= MAX_KINDS) key = OVERFLOW_KIND;
      kind = this.kinds.get(key);
    }
    if (kind === undefined) {
      kind = { windowStart: t, passed: 0, suppressed: 0, sample: '', level };
      this.kinds.set(key, kind);
    } else if (t - kind.windowStart >= WINDOW_MS) {
      if (kind.suppressed > 0) report({ level: kind.level, count: kind.suppressed, sample: kind.sample });
      kind.windowStart = t;
      kind.passed = 0;
      kind.suppressed = 0;
    }
    if (kind.passed < BURST) {
      kind.passed++;
      return true;
    }
    if (kind.suppressed === 0) kind.sample = message.split('\n', 1)[0]!.slice(0, 200);
    kind.suppressed++;
    return false;
  }

  /** Reports the counts of windows that are over and forgets kinds that went quiet. */
  sweep(t: number, report: (s: Suppressed) => void): void {
    for (const [key, kind] of this.kinds) {
      if (t - kind.windowStart < WINDOW_MS) continue;
      if (kind.suppressed > 0) report({ level: kind.level, count: kind.suppressed, sample: kind.sample });
      this.kinds.delete(key);
    }
  }
}

/** Lines that differ only in ids, pids, ports or counts are of one kind. */
function kindOf(level: number, message: string, event: string | undefined): string {
  const first = message.split('\n', 1)[0]!.slice(0, 200);
  return `${level}\u0000${event ?? ''}\u0000${first.replace(/[0-9A-Za-z_-]*[0-9][0-9A-Za-z_-]*/g, '#')}`;
}
