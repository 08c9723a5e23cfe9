// The live status page in a real browser: Debian's Chromium, headless, driven by playwright-core.
// `npm run test:browser` (scripts/ensure-chromium.sh installs Chromium when it is missing).
// Screenshots go to test-artifacts/ for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { AppDir, appSource } from '../helpers/apps';
import { Holdfast, get, waitFor, stopClean } from '../helpers/holdfast';
import { REPO_ROOT } from '../helpers/paths';

// Run inside the page (the project compiles without the DOM library).
declare const window: { __pwned?: number };
declare function getComputedStyle(element: unknown): { borderTopColor: string; color: string };

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const RED = 'rgb(179, 38, 30)';

/** Output that looks like HTML: the page must show it as text and run none of it. */
const HOSTILE_LINE = '<img src=x onerror="window.__pwned=1"><b>not bold</b> & <script>window.__pwned=2</script>';

async function launch(): Promise<{ context: BrowserContext; page: Page; userDataDir: string; problems: string[] }> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'hf-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  return { context, page, userDataDir, problems };
}

/** Pids of processes whose command line names this dir: the browser and its helpers. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** A steady trickle of requests (about 25 a second, one at a time) for the chart to draw. */
function trickle(url: string): { stop(): Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      await get(url).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

test('the status page shows the processes, a live chart, restart progress, and the resisted deployment error in red', { timeout: 180_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const app = new AppDir('good', 'v1');
  const hf = await Holdfast.start(app.dir, ['--status-address', '127.0.0.1:0', '--min-instances', '2', '--rolling-restarts', '--resist-deployment-errors']);
  const browser = await launch();
  const { page, problems } = browser;
  const load = trickle(hf.url('/'));
  try {
    await waitFor('two processes', () => hf.appPids.size >= 2);
    const info = JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { status_url: string };
    const read = readFileSync(join(hf.registryDir, hf.name, 'read_token'), 'utf8').trim();

    // ---- the normal state ----
    await page.goto(`${info.status_url}?token=${read}`);
    assert.equal(page.url(), info.status_url, 'the token is gone from the address bar');
    await page.waitForSelector('body[data-state="normal"]');
    const pids = (await hf.status()).groups[0]!.processes.map((p) => String(p.pid)).sort();
    await waitFor('both processes on the page', async () => (await page.$$eval('#processes tbody tr', (rows) => rows.length)) === 2);
    assert.deepEqual((await page.$$eval('#processes tbody tr', (rows) => rows.map((r) => r.getAttribute('data-pid') ?? ''))).sort(), pids);
    assert.equal(await page.textContent('#generation'), '1');
    assert.equal(await page.textContent('#process-count'), '2 / 6');
    assert.equal(await page.textContent('#mode'), 'rolling + resists');
    // Through probation (3 s) and the first memory sample (2 s): "probation" and "-" until then, as in the CLI.
    await waitFor('both processes enabled', async () => (await page.$$eval('#processes tbody tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent))).every((t) => t === 'enabled'), 15_000, 250);
    await waitFor('memory sampled', async () => /^\d+ MB$/.test((await page.textContent('#processes tbody tr td:nth-child(7)')) ?? ''), 15_000, 250);
    assert.equal(await page.$('#resisting'), null, 'no error box while all is well');
    assert.match((await page.textContent('#meta'))!, new RegExp(`pid ${hf.child.pid}`));
    // Requests per second from the trickle, drawn as a line.
    await waitFor('a requests/s figure', async () => Number(await page.textContent('#rps')) >= 5, 15_000, 250);
    await waitFor('a chart with a few points', async () => ((await page.getAttribute('#chart-rps polyline', 'points')) ?? '').split(' ').length >= 4, 15_000, 250);
    assert.match((await page.getAttribute('#chart-queue polyline', 'points')) ?? '', /^[\d.]+,[\d.]+/);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-normal.png'), fullPage: true });

    // ---- a rolling restart in progress: a good v2 that takes a while to boot ----
    writeFileSync(join(app.dir, 'app.js'), `setTimeout(() => {\n${appSource('good', 'v2')}\n}, 2500);\n`);
    const restart = hf.cli(['restart']);
    await page.waitForSelector('#restart-progress', { timeout: 20_000 });
    assert.match((await page.textContent('#restart-progress'))!, /^Rolling restart: [01] of 2 replaced \(to generation 2/);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-restarting.png'), fullPage: true });
    assert.equal((await restart).code, 0);
    await waitFor('the finished restart', async () => /Last restart: succeeded/.test((await page.textContent('#last-restart')) ?? ''), 15_000, 250);
    assert.equal(await page.textContent('#generation'), '2');

    // ---- a broken deploy: resisting, in red, with the error and its output ----
    writeFileSync(join(app.dir, 'broken.js'), 'const broken = ;\n');
    writeFileSync(join(app.dir, 'app.js'), `console.error(${JSON.stringify(HOSTILE_LINE)});\nrequire('./broken');\n`);
    const failed = await hf.cli(['restart']);
    assert.notEqual(failed.code, 0, 'the broken restart exits non-zero');
    const error = (await hf.status()).groups[0]!.resisting_deployment_error!.error;
    await page.waitForSelector('body[data-state="resisting"]', { timeout: 10_000 });
    const box = (await page.$('#resisting'))!;
    assert.ok(await box.isVisible());
    assert.equal(await page.textContent('#resisting-error-id'), error.error_id);
    assert.match((await box.textContent())!, /Resisting deployment error/);
    assert.match((await page.textContent('#resisting-message'))!, /exited/);
    const output = (await page.textContent('#resisting-output'))!;
    assert.match(output, /SyntaxError/);
    assert.ok(output.includes(HOSTILE_LINE), 'the output is shown as the text it is');
    assert.equal(await page.$$eval('#resisting-output *', (els) => els.length), 0, 'no element came out of the output');
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'none of it ran');
    assert.equal(await box.evaluate((e) => getComputedStyle(e).borderTopColor), RED);
    assert.equal(await page.$eval('#resisting h3', (e) => getComputedStyle(e).color), RED);
    assert.match((await page.textContent('#last-restart'))!, /Last restart: resisted/);
    assert.equal(await page.$$eval('#processes tbody tr', (rows) => rows.length), 2, 'the previous version keeps serving');
    assert.match(await page.title(), /resisting/);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-resisting.png'), fullPage: true });

    // ---- resume: back to normal ----
    assert.equal((await hf.cli(['resume'])).code, 0);
    await page.waitForSelector('body[data-state="normal"]', { timeout: 10_000 });
    assert.equal(await page.$('#resisting'), null);

    assert.deepEqual(problems, [], 'no script errors and no Content-Security-Policy violations');
  } finally {
    await load.stop();
    await browser.context.close();
    await waitFor('the browser to go', () => processesUsing(browser.userDataDir).length === 0, 10_000).catch(() => undefined);
    assert.deepEqual(processesUsing(browser.userDataDir), [], 'no browser process is left');
    rmSync(browser.userDataDir, { recursive: true, force: true });
    await stopClean(hf);
    app.remove();
  }
});

test('without the token the page says how to get in; when holdfast goes away and comes back with a new token, the open page says so', { timeout: 90_000 }, async () => {
  const app = new AppDir('good', 'v1');
  let hf = await Holdfast.start(app.dir, ['--status-address', '127.0.0.1:0']);
  const browser = await launch();
  const { page } = browser;
  try {
    const statusUrl = () => (JSON.parse(readFileSync(join(hf.registryDir, hf.name, 'instance.json'), 'utf8')) as { status_url: string }).status_url;
    const url = statusUrl();
    const res = await page.goto(url);
    assert.equal(res?.status(), 401);
    assert.match((await page.textContent('body'))!, /holdfast status --page/);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-401.png') });

    await page.goto(`${url}?token=${readFileSync(join(hf.registryDir, hf.name, 'read_token'), 'utf8').trim()}`);
    await page.waitForSelector('body[data-state="normal"]');
    assert.equal(await page.textContent('#conn'), 'live');

    const first = await hf.stop();
    assert.equal(first.code, 0);
    assert.deepEqual(first.leftover, []);
    await waitFor('the page to notice', async () => /does not answer/.test((await page.textContent('#notice')) ?? ''), 10_000, 250);
    assert.equal(await page.textContent('#conn'), 'not live');

    hf = await Holdfast.start(app.dir, ['--status-address', `127.0.0.1:${new URL(url).port}`]);
    assert.equal(statusUrl(), url, 'the same address');
    await waitFor('the page to see the new token', async () => /token is no longer valid/.test((await page.textContent('#notice')) ?? ''), 10_000, 250);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-stale-token.png') });
    assert.deepEqual(browser.problems.filter((p) => !/ERR_CONNECTION_REFUSED/.test(p)), [], 'nothing but the refused polls while holdfast was down');
  } finally {
    await browser.context.close();
    await waitFor('the browser to go', () => processesUsing(browser.userDataDir).length === 0, 10_000).catch(() => undefined);
    assert.deepEqual(processesUsing(browser.userDataDir), []);
    rmSync(browser.userDataDir, { recursive: true, force: true });
    await stopClean(hf);
    app.remove();
  }
});
