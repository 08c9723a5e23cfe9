import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from 'undici';

test("the Pool the proxy loads on its own (to keep undici's index out of memory) is undici's exported Pool", () => {
  const direct: unknown = require('undici/lib/dispatcher/pool');
  assert.equal(direct, Pool);
});
