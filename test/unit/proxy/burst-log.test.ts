// A burst of the same event is logged once at its start, and its count once it is over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../../src/log/logger';
import { BurstLog } from '../../../src/proxy/burst-log';

function recorder(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = { warn: (fields: Record<string, unknown>, msg: string) => lines.push({ ...fields, msg }) } as unknown as Logger;
  return { logger, lines };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('logs the first event of a burst at once and the number of the others when the burst is over', async () => {
  const { logger, lines } = recorder();
  const log = new BurstLog(logger, 'request_queue_timeout', 40);
  for (let i = 0; i < 5; i++) log.note({ path: `/p${i}` }, 'waited');
  assert.deepEqual([...lines], [{ event: 'request_queue_timeout', path: '/p0', msg: 'waited' }]);
  await sleep(100);
  assert.equal(lines.length, 2);
  assert.equal(lines[1]!.event, 'request_queue_timeout_burst_end');
  assert.equal(lines[1]!.more, 4);
  log.note({ path: '/next' }, 'waited');
  assert.equal(lines.length, 3, 'a new burst is logged again');
  log.flush();
  assert.equal(lines.length, 3, 'a burst of one has nothing more to say');
});
