// The live status page (status_address): one HTML document with its CSS and a small script inline,
// no build step. The script polls status.json every second and draws what `holdfast status` shows,
// plus a chart of requests/s and queue length.
//
// Everything taken from status.json (app output can hold any HTML) reaches the page only through
// textContent and setAttribute, never innerHTML; the Content-Security-Policy allows this one
// script and this one style sheet by hash and nothing else, as a second wall.

import { createHash } from 'node:crypto';

const STYLE = `
:root { color-scheme: light; --fg: #1d2330; --muted: #5f6b7a; --line: #dfe3ea; --bg: #f6f7f9; --card: #fff;
  --ok: #1b7f3b; --warn: #a15c00; --bad: #b3261e; --bad-bg: #fdecea; --accent: #2458c6; --queue: #c77700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 12px 20px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 18px; }
header .meta { color: #c9d1dd; }
#conn { margin-left: auto; font-size: 13px; }
#conn.live::before { content: "\\25CF "; color: #4cd07d; }
#conn.down::before { content: "\\25CF "; color: #ff6b6b; }
main { padding: 16px 20px 32px; max-width: 1200px; }
.notice { padding: 10px 14px; border-radius: 6px; background: #eef0f4; color: var(--muted); margin-bottom: 12px; }
.group { margin-bottom: 28px; }
.group h2 { font-size: 16px; margin: 0 0 10px; }
.group h2 .root { font-weight: normal; color: var(--muted); font-size: 13px; margin-left: 8px; }
.resisting { border: 2px solid var(--bad); border-left-width: 8px; background: var(--bad-bg); color: #5c1410; padding: 12px 16px; border-radius: 6px; margin-bottom: 14px; }
.resisting h3 { margin: 0 0 6px; color: var(--bad); font-size: 17px; }
.resisting dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0; }
.resisting dt { font-weight: 600; }
.resisting dd { margin: 0; overflow-wrap: anywhere; }
pre.output { margin: 6px 0 0; padding: 8px 10px; background: #2b1414; color: #ffd9d6; border-radius: 4px; overflow: auto; max-height: 320px; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .value.bad { color: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 10px; margin-bottom: 12px; }
.chart { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.chart .label { color: var(--muted); font-size: 12px; }
.chart svg { display: block; width: 100%; height: 90px; }
.chart .rps { stroke: var(--accent); fill: none; stroke-width: 2; }
.chart .queue { stroke: var(--queue); fill: none; stroke-width: 2; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.restart { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin-bottom: 12px; }
.bar { height: 10px; background: #e6e9ef; border-radius: 5px; overflow: hidden; margin-top: 6px; }
.bar > div { height: 100%; background: var(--accent); transition: width .3s; }
.outcome-succeeded { color: var(--ok); font-weight: 600; }
.outcome-resisted, .outcome-failed { color: var(--bad); font-weight: 600; }
.outcome-superseded { color: var(--warn); font-weight: 600; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 6px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
td.num, th.num { text-align: right; }
tr.old td { color: var(--muted); }
.state { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; background: #e6e9ef; }
.state-enabled { background: #dcf3e3; color: var(--ok); }
.state-draining { background: #fff1d6; color: var(--warn); }
.state-spawning, .state-probation { background: #e3ebfb; color: var(--accent); }
.spawn-error { color: var(--bad); margin: 0 0 10px; }
body.stale #groups { opacity: .45; }
`;

const SCRIPT = `
'use strict';
(function () {
  var HISTORY = 120;
  var POLL_MS = 1000;
  var samples = [];
  var previous = null;
  var conn = document.getElementById('conn');
  var notice = document.getElementById('notice');
  var groupsEl = document.getElementById('groups');

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    return e;
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d > 0) return d + 'd ' + h + 'h ' + m + 'm';
    if (h > 0) return h + 'h ' + m + 'm ' + x + 's';
    if (m > 0) return m + 'm ' + x + 's';
    return x + 's';
  }
  function ago(iso, now) {
    if (iso === null) return 'never';
    return duration((now - Date.parse(iso)) / 1000) + ' ago';
  }
  function time(iso) {
    return iso.replace('T', ' ').replace(/\\.\\d+Z$/, ' UTC');
  }
  function mb(bytes) {
    return Math.round(bytes / 1048576) + ' MB';
  }
  // As the CLI's status shows them: a process in probation is not yet trusted with connections, and
  // memory not sampled yet is unknown, not 0 MB.
  function stateOf(p) {
    return p.state === 'enabled' && p.in_probation ? 'probation' : p.state;
  }
  function memory(bytes) {
    return bytes !== null && bytes > 0 ? mb(bytes) : '-';
  }
  function cause(e) {
    var how = e.exit_code !== null ? 'exit code ' + e.exit_code : e.signal !== null ? 'signal ' + e.signal : null;
    if (e.category === 'exited') return 'exited before it was ready' + (how ? ' (' + how + ')' : '');
    if (e.category === 'timeout') return 'did not become ready within start_timeout';
    if (e.category === 'os') return 'could not be started';
    return 'exited right after it became ready' + (how ? ' (' + how + ')' : '');
  }
  function card(label, value, id, bad) {
    return el('div', { 'class': 'card' }, [el('div', { 'class': 'label' }, [label]), el('div', { 'class': 'value' + (bad ? ' bad' : ''), id: id }, [value])]);
  }

  function chart(id, label, cls, values) {
    var w = 600, h = 90, pad = 4;
    var peak = Math.max.apply(null, values.concat([0]));
    var max = Math.max(1, peak);
    var box = el('div', { 'class': 'chart' }, [el('div', { 'class': 'label' }, [label + ' \u00b7 last ' + HISTORY + ' s \u00b7 peak ' + (Math.round(peak * 10) / 10)])]);
    var s = svg('svg', { id: id, viewBox: '0 0 ' + w + ' ' + h, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
    [0.25, 0.5, 0.75].forEach(function (f) { s.appendChild(svg('line', { 'class': 'grid', x1: 0, x2: w, y1: h * f, y2: h * f })); });
    var points = values.map(function (v, i) {
      var x = values.length < 2 ? w : (w * (HISTORY - values.length + i)) / (HISTORY - 1);
      var y = h - pad - ((h - 2 * pad) * v) / max;
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    s.appendChild(svg('polyline', { 'class': cls, points: points.join(' ') }));
    box.appendChild(s);
    return box;
  }

  function spawnErrorBox(r) {
    var e = r.error;
    var output = e.output_tail.slice(-40);
    return el('section', { 'class': 'resisting', id: 'resisting', role: 'alert' }, [
      el('h3', null, ['Resisting deployment error ', el('code', { id: 'resisting-error-id' }, [e.error_id])]),
      el('div', null, ['The previous version keeps serving. No process is spawned until holdfast restart (a new deploy) or holdfast resume.']),
      el('dl', null, [
        el('dt', null, ['Since']), el('dd', null, [time(r.since) + ' (for ' + duration(r.for_seconds) + ')']),
        el('dt', null, ['Cause']), el('dd', null, [cause(e) + ' (' + e.code + ')']),
        el('dt', null, ['Message']), el('dd', { id: 'resisting-message' }, [e.message]),
        el('dt', null, ['Command']), el('dd', null, [el('code', null, [e.command])]),
        el('dt', null, ['Release']), el('dd', null, [e.release + ' (generation ' + e.generation + ')'])
      ]),
      el('div', null, [output.length ? 'Output (last ' + output.length + ' lines):' : 'Output: (none captured)']),
      output.length ? el('pre', { 'class': 'output', id: 'resisting-output' }, [output.join('\\n')]) : null
    ]);
  }

  function restartBox(g, now) {
    var box = el('section', { 'class': 'restart', id: 'restart' }, []);
    if (g.restart) {
      var r = g.restart;
      var pct = r.total > 0 ? Math.round((100 * r.replaced) / r.total) : 0;
      box.appendChild(el('div', { id: 'restart-progress' }, [(r.kind === 'rolling' ? 'Rolling' : 'Plain') + ' restart: ' + r.replaced + ' of ' + r.total + ' replaced (to generation ' + r.generation + ', started ' + ago(r.started_at, now) + ')']));
      var fill = el('div', { id: 'restart-bar' }, []);
      fill.style.width = pct + '%'; // through the CSSOM: the CSP allows no style attributes
      box.appendChild(el('div', { 'class': 'bar' }, [fill]));
    } else {
      box.appendChild(el('div', null, ['Restart: none running']));
    }
    if (g.last_restart) {
      var l = g.last_restart;
      box.appendChild(el('div', { id: 'last-restart' }, [
        'Last restart: ', el('span', { 'class': 'outcome-' + l.outcome }, [l.outcome]),
        (l.error ? ' (error ' + l.error.error_id + ')' : '') + ', ' + l.kind + ', generation ' + l.generation + ', finished ' + ago(l.finished_at, now)
      ]));
    }
    return box;
  }

  function processTable(g, now) {
    var head = el('tr', null, ['PID', 'Gen', 'State', 'Sessions', 'Processed', 'CPU', 'Memory', 'Uptime', 'Last used'].map(function (h, i) {
      return el('th', { 'class': i === 0 || i === 2 ? '' : 'num' }, [h]);
    }));
    var rows = g.processes.map(function (p) {
      var state = stateOf(p);
      return el('tr', { 'data-pid': String(p.pid), 'class': p.generation < g.generation ? 'old' : '' }, [
        el('td', null, [String(p.pid)]),
        el('td', { 'class': 'num' }, [String(p.generation)]),
        el('td', null, [el('span', { 'class': 'state state-' + state }, [state])]),
        el('td', { 'class': 'num' }, [String(p.sessions)]),
        el('td', { 'class': 'num' }, [String(p.processed)]),
        el('td', { 'class': 'num' }, [Math.round(p.cpu_percent) + '%']),
        el('td', { 'class': 'num' }, [memory(p.rss_bytes)]),
        el('td', { 'class': 'num' }, [duration(p.uptime_seconds)]),
        el('td', { 'class': 'num' }, [ago(p.last_used_at, now)])
      ]);
    });
    if (rows.length === 0) rows.push(el('tr', null, [el('td', { colspan: '9' }, ['(no processes)'])]));
    return el('table', { id: 'processes' }, [el('thead', null, [head]), el('tbody', null, rows)]);
  }

  function render(doc) {
    var now = Date.parse(doc.date);
    var inst = doc.instance;
    document.getElementById('instance').textContent = inst.name;
    document.getElementById('meta').textContent = 'holdfast ' + doc.version + ' \\u00b7 pid ' + inst.pid + ' \\u00b7 ' + inst.address + ':' + inst.port + ' \\u00b7 up ' + duration(inst.uptime_seconds);
    var resisting = doc.groups.some(function (g) { return g.resisting_deployment_error !== null; });
    document.title = (resisting ? '\\u26a0 resisting \\u2014 ' : '') + inst.name + ' \\u2014 holdfast';
    var last = samples[samples.length - 1];
    var frag = document.createDocumentFragment();
    doc.groups.forEach(function (g) {
      var section = el('section', { 'class': 'group' }, [el('h2', null, [g.name, el('span', { 'class': 'root' }, [g.app_root + ' \\u00b7 ' + g.environment])])]);
      if (g.resisting_deployment_error) section.appendChild(spawnErrorBox(g.resisting_deployment_error));
      else if (g.last_spawn_error) section.appendChild(el('p', { 'class': 'spawn-error' }, ['Last spawn error ' + g.last_spawn_error.error_id + ' ' + ago(g.last_spawn_error.at, now) + ': ' + g.last_spawn_error.message]));
      var mode = (g.rolling_restarts ? 'rolling' : 'plain') + (g.resist_deployment_errors ? ' + resists' : '');
      section.appendChild(el('div', { 'class': 'cards' }, [
        card('Processes', g.processes.length + ' / ' + doc.max_pool_size, 'process-count'),
        card('Requests/s', last ? String(Math.round(last.rps * 10) / 10) : '\\u2013', 'rps'),
        card('Queue', String(g.requests_in_queue), 'queue', g.requests_in_queue > 0),
        card('Generation', String(g.generation), 'generation'),
        card('Restart mode', mode, 'mode')
      ]));
      section.appendChild(el('div', { 'class': 'charts' }, [
        chart('chart-rps', 'Requests per second', 'rps', samples.map(function (x) { return x.rps; })),
        chart('chart-queue', 'Requests in queue', 'queue', samples.map(function (x) { return x.queue; }))
      ]));
      section.appendChild(restartBox(g, now));
      section.appendChild(processTable(g, now));
      frag.appendChild(section);
    });
    groupsEl.replaceChildren(frag);
    document.getElementById('updated').textContent = 'Updated ' + time(doc.date);
    document.body.setAttribute('data-state', resisting ? 'resisting' : 'normal');
  }

  function sample(doc) {
    var t = Date.parse(doc.date);
    var queue = doc.groups.reduce(function (n, g) { return n + g.requests_in_queue; }, 0);
    var rps = 0;
    if (previous && t > previous.t && doc.requests_total >= previous.total) rps = ((doc.requests_total - previous.total) * 1000) / (t - previous.t);
    if (previous) samples.push({ rps: rps, queue: queue });
    if (samples.length > HISTORY) samples.shift();
    previous = { t: t, total: doc.requests_total };
  }

  function show(text, state) {
    conn.className = state;
    conn.textContent = state === 'live' ? 'live' : 'not live';
    notice.textContent = text;
    notice.hidden = text === '';
    document.body.classList.toggle('stale', state !== 'live'); // what is shown is the last thing known
  }

  function poll() {
    fetch('status.json', { cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 401) throw new Error('The token is no longer valid: holdfast was restarted. Run holdfast status --page for the new address.');
        if (!res.ok) throw new Error('status.json answered ' + res.status);
        return res.json();
      })
      .then(function (doc) {
        sample(doc);
        render(doc);
        show('', 'live');
      })
      .catch(function (err) {
        show(err && err.message && err.message.indexOf('token') >= 0 ? err.message : 'holdfast does not answer (stopped?); trying again every second. ' + (err && err.message ? '(' + err.message + ')' : ''), 'down');
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own script and style run; it may fetch from its own origin and nothing else. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>holdfast</title>
<style>${STYLE}</style>
</head>
<body data-state="loading">
<header><h1 id="instance">holdfast</h1><span class="meta" id="meta"></span><span id="conn" class="down">connecting</span></header>
<main>
<div class="notice" id="notice">Loading the status of this holdfast\u2026</div>
<div id="groups"></div>
<footer class="notice" id="updated"></footer>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** For a browser that came without the token (or with a stale one). */
export function unauthorizedPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>holdfast: token required</title></head>
<body><h1>The read-only token is required</h1>
<p>Open the address that <code>holdfast status --page</code> prints on the server (it carries the token once, then a cookie does).
A token stops working when holdfast restarts.</p></body></html>
`;
}

/** The page's script, for a test that parses it. */
export const STATUS_PAGE_SCRIPT = SCRIPT;
