import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML, STATUS_PAGE_SCRIPT } from '../../../src/admin/status-page';

const sha = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

test("the status page's script is valid JavaScript", () => {
  assert.doesNotThrow(() => new Script(STATUS_PAGE_SCRIPT, { filename: 'status-page.js' }));
});

test('the Content-Security-Policy allows exactly the inline script and style of the page', () => {
  const script = /<script>([\s\S]*?)<\/script>/.exec(STATUS_PAGE_HTML)![1]!;
  const style = /<style>([\s\S]*?)<\/style>/.exec(STATUS_PAGE_HTML)![1]!;
  assert.equal(script, STATUS_PAGE_SCRIPT);
  assert.ok(STATUS_PAGE_CSP.includes(`script-src ${sha(script)}`));
  assert.ok(STATUS_PAGE_CSP.includes(`style-src ${sha(style)}`));
  assert.match(STATUS_PAGE_CSP, /^default-src 'none';/);
  assert.equal((STATUS_PAGE_HTML.match(/<script/g) ?? []).length, 1, 'no other script');
});

test('the script never puts status text into HTML: no innerHTML, outerHTML, insertAdjacentHTML or document.write', () => {
  assert.doesNotMatch(STATUS_PAGE_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
});
