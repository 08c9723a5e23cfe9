import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonTextError, parseJsonText } from '../../../src/config/json-text';

test('reads what JSON.parse reads, to the same values', () => {
  const samples = [
    '{}',
    '[]',
    ' {"a": 1, "b": [true, false, null], "c": {"d": "e"}} ',
    '{"n": [-0, 0, 12, -3.25, 1e3, 2E-2, 6.02e+23]}',
    '{"s": "quote \\" backslash \\\\ slash \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 é"}',
    '"just a string"',
    '42',
    '\ufeff{"bom": true}',
  ];
  for (const text of samples) assert.deepEqual(parseJsonText(text).value, JSON.parse(text.replace(/^\ufeff/, '')), text);
});

test('reports the line and column of the first error', () => {
  const cases: Array<[string, number, number, string]> = [
    ['{"a": 1,\n "b": 2\n "c": 3}', 3, 2, 'expected "," or "}" after the value of "b" (got "\\"")'],
    ['{"a": }', 1, 7, 'expected a value (got "}")'],
    ["{'a': 1}", 1, 2, 'expected a property name in double quotes (got "\'")'],
    ['{"a": \'x\'}', 1, 7, 'strings must be in double quotes, not single quotes'],
    ['[1, 2,]', 1, 7, 'trailing comma before "]"'],
    ['{"a": "line\nbreak"}', 1, 12, 'unescaped control character (such as a line break) in string'],
    ['{"a": "open', 1, 7, 'unterminated string'],
    ['{"a": 01}', 1, 7, 'invalid number'],
    ['{"a": yes}', 1, 7, 'expected a value (got "yes")'],
    ['{"a": truth}', 1, 7, 'expected a value (got "truth")'],
    ['{"a": 1} x', 1, 10, 'unexpected "x" after the end of the JSON value'],
    ['{"a": "\\x"}', 1, 8, 'invalid escape "\\x" in string'],
    ['/* hi */ {}', 1, 1, 'comments are not allowed in JSON'],
    ['{"a": 1', 1, 8, 'expected "," or "}" after the value of "a" (got the end of the file)'],
  ];
  for (const [text, line, column, message] of cases) {
    assert.throws(
      () => parseJsonText(text),
      (err: unknown) => {
        assert.ok(err instanceof JsonTextError);
        assert.deepEqual({ line: err.line, column: err.column, message: err.message }, { line, column, message }, text);
        return true;
      },
    );
  }
});

test('lists keys given twice with where the second one is', () => {
  const { value, duplicates } = parseJsonText('{\n "a": 1,\n "env": {"X": "1", "X": "2"},\n "a": 3\n}');
  assert.deepEqual(value, { a: 3, env: { X: '2' } });
  assert.deepEqual(duplicates, [
    { parent: 'env', key: 'X', line: 3, column: 20 },
    { parent: '', key: 'a', line: 4, column: 2 },
  ]);
});

test('keeps "__proto__" as an ordinary key instead of changing the prototype', () => {
  const { value } = parseJsonText('{"__proto__": {"polluted": true}}');
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.deepEqual(Object.keys(value as object), ['__proto__']);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});
