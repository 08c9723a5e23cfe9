// A strict JSON reader for config files. JSON.parse is not enough: on Node 20 its messages carry no
// line or column, and it keeps the last of two duplicate keys without a word.

export interface TextPosition {
  line: number;
  column: number;
}

export class JsonTextError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(message: string, position: TextPosition) {
    super(message);
    this.name = 'JsonTextError';
    this.line = position.line;
    this.column = position.column;
  }
}

export interface DuplicateKey extends TextPosition {
  /** Dotted path of the object holding the key; '' for the top level. */
  parent: string;
  key: string;
}

export interface ParsedJson {
  value: unknown;
  duplicates: DuplicateKey[];
}

/** Parses RFC 8259 JSON; throws JsonTextError naming the line and column (1-based) of the first error. */
export function parseJsonText(text: string): ParsedJson {
  return new Reader(text).read();
}

class Reader {
  private i = 0;
  private readonly duplicates: DuplicateKey[] = [];

  constructor(private readonly text: string) {
    if (text.charCodeAt(0) === 0xfeff) this.i = 1;
  }

  read(): ParsedJson {
    this.skipSpace();
    const value = this.value('');
    this.skipSpace();
    if (this.i < this.text.length) this.fail(`unexpected ${this.describe()} after the end of the JSON value`);
    return { value, duplicates: this.duplicates };
  }

  private value(path: string): unknown {
    const ch = this.text[this.i];
    if (ch === '{') return this.object(path);
    if (ch === '[') return this.array(path);
    if (ch === '"') return this.string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.number();
    if (this.text.startsWith('true', this.i)) return this.literal('true', true);
    if (this.text.startsWith('false', this.i)) return this.literal('false', false);
    if (this.text.startsWith('null', this.i)) return this.literal('null', null);
    if (ch === "'") this.fail('strings must be in double quotes, not single quotes');
    this.fail(`expected a value (got ${this.describe()})`);
  }

  private object(path: string): Record<string, unknown> {
    // Own, enumerable data properties only: a key "__proto__" stays a key (and is reported as unknown).
    const result: Record<string, unknown> = {};
    const seen = new Set<string>();
    this.i++; // {
    this.skipSpace();
    if (this.text[this.i] === '}') {
      this.i++;
      return result;
    }
    for (;;) {
      if (this.text[this.i] !== '"') {
        if (this.text[this.i] === '}') this.fail('trailing comma before "}"');
        this.fail(`expected a property name in double quotes (got ${this.describe()})`);
      }
      const at = this.position(this.i);
      const key = this.string();
      this.skipSpace();
      if (this.text[this.i] !== ':') this.fail(`expected ":" after property name "${key}" (got ${this.describe()})`);
      this.i++;
      this.skipSpace();
      const value = this.value(path === '' ? key : `${path}.${key}`);
      if (seen.has(key)) this.duplicates.push({ parent: path, key, ...at });
      seen.add(key);
      Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      this.skipSpace();
      const next = this.text[this.i];
      if (next === ',') {
        this.i++;
        this.skipSpace();
        continue;
      }
      if (next === '}') {
        this.i++;
        return result;
      }
      this.fail(`expected "," or "}" after the value of "${key}" (got ${this.describe()})`);
    }
  }

  private array(path: string): unknown[] {
    const result: unknown[] = [];
    this.i++; // [
    this.skipSpace();
    if (this.text[this.i] === ']') {
      this.i++;
      return result;
    }
    for (;;) {
      if (this.text[this.i] === ']') this.fail('trailing comma before "]"');
      result.push(this.value(`${path}[${result.length}]`));
      this.skipSpace();
      const next = this.text[this.i];
      if (next === ',') {
        this.i++;
        this.skipSpace();
        continue;
      }
      if (next === ']') {
        this.i++;
        return result;
      }
      this.fail(`expected "," or "]" after an array element (got ${this.describe()})`);
    }
  }

  private string(): string {
    const start = this.i;
    this.i++; // opening quote
    let out = '';
    for (;;) {
      const ch = this.text[this.i];
      if (ch === undefined) this.fail('unterminated string', start);
      if (ch === '"') {
        this.i++;
        return out;
      }
      if (ch === '\\') {
        const esc = this.text[this.i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (esc !== undefined && esc in simple) {
          out += simple[esc];
          this.i += 2;
          continue;
        }
        if (esc === 'u') {
          const hex = this.text.slice(this.i + 2, this.i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape in string (needs 4 hex digits)');
          out += String.fromCharCode(parseInt(hex, 16));
          this.i += 6;
          continue;
        }
        this.fail(`invalid escape "\\${esc ?? ''}" in string`);
      }
      if (ch < ' ') this.fail('unescaped control character (such as a line break) in string');
      out += ch;
      this.i++;
    }
  }

  private number(): number {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.i));
    if (!m) this.fail(`invalid number`);
    const after = this.text[this.i + m[0].length];
    if (after !== undefined && /[0-9A-Za-z.+-]/.test(after)) this.fail('invalid number');
    this.i += m[0].length;
    return Number(m[0]);
  }

  private literal<T>(word: string, value: T): T {
    const after = this.text[this.i + word.length];
    if (after !== undefined && /[A-Za-z0-9_]/.test(after)) this.fail(`expected a value (got ${this.describe()})`);
    this.i += word.length;
    return value;
  }

  private skipSpace(): void {
    for (;;) {
      const ch = this.text[this.i];
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') this.i++;
      else if (ch === '/' && (this.text[this.i + 1] === '/' || this.text[this.i + 1] === '*')) this.fail('comments are not allowed in JSON');
      else return;
    }
  }

  private describe(): string {
    const ch = this.text[this.i];
    if (ch === undefined) return 'the end of the file';
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.i));
    return JSON.stringify(word ? word[0] : ch);
  }

  private position(index: number): TextPosition {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < index; k++) {
      if (this.text[k] === '\n') {
        line++;
        lineStart = k + 1;
      }
    }
    return { line, column: index - lineStart + 1 };
  }

  private fail(message: string, at: number = this.i): never {
    throw new JsonTextError(message, this.position(at));
  }
}
