import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, OutputTail, truncateLine } from '../../../src/spawn/output-tail';

test('keeps the last 200 lines by default, oldest first', () => {
  const tail = new OutputTail();
  for (let i = 1; i <= 450; i++) tail.push(`line ${i}`);
  const lines = tail.toArray();
  assert.equal(lines.length, 200);
  assert.equal(lines[0], 'line 251');
  assert.equal(lines[199], 'line 450');
});

test('drops the oldest lines to stay within its byte bound', () => {
  const tail = new OutputTail({ maxLines: 100, maxBytes: 100 });
  for (let i = 0; i < 10; i++) tail.push(String(i).repeat(30));
  assert.ok(tail.byteLength <= 100);
  assert.deepEqual(tail.toArray(), ['7'.repeat(30), '8'.repeat(30), '9'.repeat(30)]);
});

test('cuts a line longer than the line bound and marks it', () => {
  const tail = new OutputTail({ maxLineBytes: 50 });
  tail.push('x'.repeat(10_000));
  const [line] = tail.toArray();
  assert.ok(line !== undefined && Buffer.byteLength(line) <= 50);
  assert.match(line, /^x+ …\[truncated\]$/);
});

test('never cuts a line inside a UTF-8 character', () => {
  for (let max = 15; max < 40; max++) {
    const cut = truncateLine('€'.repeat(20), max);
    assert.ok(Buffer.byteLength(cut) <= max, `at most ${max} bytes`);
    assert.doesNotMatch(cut, /\uFFFD/);
  }
});

test('holds at most its byte bound even when one line is as large as the bound', () => {
  const tail = new OutputTail({ maxBytes: 64, maxLineBytes: 1000 });
  tail.push('a');
  tail.push('b'.repeat(500));
  assert.ok(tail.byteLength <= 64);
  assert.equal(tail.length, 1);
});

test('splits a stream into lines across chunks, LF and CRLF alike', () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l));
  splitter.write('one\r\ntw');
  splitter.write('o\n\nthr');
  assert.deepEqual(lines, ['one', 'two', '']);
  splitter.end();
  assert.deepEqual(lines, ['one', 'two', '', 'thr']);
});

test('emits an endless line in pieces instead of buffering it whole', () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), 10);
  splitter.write('a'.repeat(25));
  assert.deepEqual(lines, ['a'.repeat(10), 'a'.repeat(10)]);
  splitter.write('\n');
  assert.deepEqual(lines, ['a'.repeat(10), 'a'.repeat(10), 'a'.repeat(5)]);
});
