// What an app process last wrote, kept for its spawn error. Bounded by lines and by bytes so that
// a process printing megabytes (or one endless line) never costs holdfast more than a little memory.

export interface OutputTailOptions {
  maxLines?: number;
  maxBytes?: number;
  /** A longer line is cut here and marked with an ellipsis. */
  maxLineBytes?: number;
}

const TRUNCATED = ' …[truncated]';

export class OutputTail {
  readonly maxLines: number;
  readonly maxBytes: number;
  readonly maxLineBytes: number;
  // Ring buffer: `lines[(start + i) % maxLines]` is the i-th oldest of `count` lines.
  private readonly lines: string[];
  private readonly sizes: number[];
  private start = 0;
  private count = 0;
  /** Sum of sizes of the kept lines; never above maxBytes. */
  private bytes = 0;

  constructor(options: OutputTailOptions = {}) {
    this.maxLines = options.maxLines ?? 200;
    this.maxBytes = options.maxBytes ?? 64 * 1024;
    this.maxLineBytes = Math.min(options.maxLineBytes ?? 4 * 1024, this.maxBytes);
    if (!(this.maxLines >= 1) || !(this.maxBytes >= 1) || !(this.maxLineBytes >= 1)) {
      throw new RangeError('OutputTail bounds must be at least 1');
    }
    this.lines = new Array<string>(this.maxLines);
    this.sizes = new Array<number>(this.maxLines);
  }

  push(line: string): void {
    const kept = truncateLine(line, this.maxLineBytes);
    const size = Buffer.byteLength(kept);
    while (this.count > 0 && (this.count === this.maxLines || this.bytes + size > this.maxBytes)) {
      this.dropOldest();
    }
    const at = (this.start + this.count) % this.maxLines;
    this.lines[at] = kept;
    this.sizes[at] = size;
    this.count++;
    this.bytes += size;
  }

  /** Oldest first. */
  toArray(): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.lines[(this.start + i) % this.maxLines]!);
    return out;
  }

  get length(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.bytes;
  }

  private dropOldest(): void {
    this.bytes -= this.sizes[this.start]!;
    this.lines[this.start] = '';
    this.start = (this.start + 1) % this.maxLines;
    this.count--;
  }
}

/** Cuts a line to at most maxBytes of UTF-8 (marker included), never inside a character. */
export function truncateLine(line: string, maxBytes: number): string {
  if (Buffer.byteLength(line) <= maxBytes) return line;
  const marker = Buffer.byteLength(TRUNCATED) < maxBytes ? TRUNCATED : '';
  const bytes = Buffer.from(line);
  let cut = maxBytes - Buffer.byteLength(marker);
  // Step back over UTF-8 continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return bytes.subarray(0, cut).toString('utf8') + marker;
}

/**
 * Splits a text stream into lines (LF or CRLF). A line longer than maxLineChars is emitted in
 * pieces so a process that never writes a newline cannot grow the buffer without bound.
 */
export class LineSplitter {
  private partial = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineChars = 16 * 1024,
  ) {}

  write(chunk: string): void {
    const text = this.partial + chunk;
    let from = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', from)) !== -1) {
      const end = nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.onLine(text.slice(from, end));
      from = nl + 1;
    }
    while (text.length - from > this.maxLineChars) {
      this.onLine(text.slice(from, from + this.maxLineChars));
      from += this.maxLineChars;
    }
    this.partial = text.slice(from);
  }

  /** Emits what is left without a final newline. */
  end(): void {
    if (this.partial !== '') this.onLine(this.partial);
    this.partial = '';
  }
}
