import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderToFit } from '../../../src/cli/status';
import { renderStatus } from '../../../src/cli/status-render';
import { groupSnapshot, poolSnapshot, processSnapshot, resistingGroup, spawnErrorSnapshot, statusDocument } from '../../helpers/status-fixtures';

test('status --watch on a 30-row terminal keeps every process on screen while resisting a long spawn error', () => {
  const error = spawnErrorSnapshot({ output_tail: Array.from({ length: 40 }, (_, i) => `trace line ${i + 1}`) });
  const group = { ...resistingGroup(), resisting_deployment_error: { ...resistingGroup().resisting_deployment_error!, since: error.at, for_seconds: 60, error }, last_spawn_error: error };
  group.processes = [processSnapshot(), processSnapshot({ pid: 4102 }), processSnapshot({ pid: 4103 })];
  const doc = statusDocument(poolSnapshot([group]));
  assert.ok(renderStatus(doc).split('\n').length > 30, 'the full picture is taller than the terminal');
  const text = renderToFit(doc, 30);
  const lines = text.trimEnd().split('\n');
  assert.ok(lines.length <= 30 - 1 - 2, `${lines.length} lines fit under the title of a 30-row terminal`);
  for (const pid of [4101, 4102, 4103]) assert.ok(lines.some((l) => l.startsWith(`  * PID: ${pid} `)), `process ${pid} is shown`);
  assert.match(text, /Resisting deployment error 3f9a2c1e/);
  assert.match(text, /exited before it was ready \(exit code 1\): the app process exited with code 1 before it was ready/);
});

test('status --watch on a tall terminal shows the whole picture', () => {
  const doc = statusDocument(poolSnapshot([groupSnapshot()]));
  assert.equal(renderToFit(doc, 100), renderStatus(doc));
  assert.equal(renderToFit(doc, undefined), renderStatus(doc));
});
