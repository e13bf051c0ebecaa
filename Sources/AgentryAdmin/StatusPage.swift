/// The status page served at `/`: one self-contained page (HTML, CSS, plain JavaScript; nothing fetched from the
/// internet) that lives on the WebSocket `/api/runtime/instances/status`.
enum StatusPage {
    static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agentry status</title>
<style>
:root{--bg:#f5f6f8;--card:#fff;--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--soft:#eef1f4;--accent:#0969da}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;background:var(--bg);color:var(--fg)}
header{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;padding:10px 16px;background:#fff;border-bottom:1px solid var(--line)}
h1{font-size:18px;margin:0;flex:1 1 auto;white-space:nowrap}
h2{font-size:15px;margin:0 0 8px;display:flex;align-items:baseline;gap:8px}
h2 .count{font-size:12px;font-weight:400;color:var(--muted)}
.controls{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:center}
label{font-size:13px;color:var(--muted)}
select{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;background:#fff;max-width:100%}
#connection{display:inline-flex;align-items:center;gap:6px;font-size:13px;padding:2px 10px;border-radius:999px;background:var(--soft);color:var(--muted)}
#connection::before{content:"";width:8px;height:8px;border-radius:50%;background:#bf8700}
#connection.ok{background:#dafbe1;color:#116329}
#connection.ok::before{background:#1a7f37}
#connection.bad{background:#fff1e5;color:#953800}
#connection.bad::before{background:#bc4c00}
#notice{margin:12px 16px 0;padding:8px 12px;border-radius:6px;border:1px solid;font-size:13px;overflow-wrap:anywhere}
#notice.ok{background:#dafbe1;border-color:#aceebb;color:#116329}
#notice.error{background:#ffebe9;border-color:#ffcecb;color:#a40e26}
main{display:grid;gap:16px;padding:16px;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;min-width:0}
section.wide{grid-column:1/-1}
.tw{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--soft);white-space:nowrap;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.empty{color:var(--muted);font-style:italic;text-align:center}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.muted{color:var(--muted)}
.sub{display:block;font-size:11px;color:var(--muted)}
.clip{max-width:32ch;overflow:hidden;text-overflow:ellipsis}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;line-height:18px;color:#fff;background:#8c959f}
.state-running{background:#1a7f37}
.state-idle{background:#8c959f}
.state-error{background:#cf222e}
.state-paused{background:#e3b341;color:#3b2300}
.state-stopped{background:#424a53}
.run-succeeded{background:#1a7f37}
.run-failed,.run-timed_out,.run-lost{background:#cf222e}
.run-running{background:#0969da}
.run-skipped,.run-cancelled{background:#8c959f}
.prio-CRITICAL{color:#a40e26;font-weight:700}
.prio-HIGH{color:#bc4c00;font-weight:600}
.prio-LOW{color:var(--muted)}
.actions{display:flex;gap:4px}
button{font:inherit;font-size:12px;padding:3px 10px;border:1px solid var(--line);border-radius:6px;background:#f6f8fa;color:var(--fg);cursor:pointer}
button:hover{background:#eaeef2}
button:disabled{opacity:.5;cursor:default}
button.warn{color:#a40e26}
tr.sel td{background:#f0f6ff}
ol.waiters{margin:0;padding-left:18px}
@media (max-width:600px){
header{padding:8px 10px}
main{padding:8px;gap:10px}
section{padding:10px}
#notice{margin:8px 8px 0}
.controls{width:100%}
.controls select{flex:1 1 auto}
}
</style>
</head>
<body>
<header>
<h1>Agentry</h1>
<div class="controls">
<label for="agent-select">Agent</label>
<select id="agent-select"><option value="">All agents</option></select>
<span id="connection" role="status" title="WebSocket connection">connecting</span>
</div>
</header>
<div id="notice" role="status" aria-live="polite" hidden></div>
<main>
<section id="agents" class="wide">
<h2>Agents <span class="count" id="count-agents"></span></h2>
<div class="tw"><table>
<thead><tr><th>Agent</th><th>Published</th><th>Desired state</th><th>Actions</th></tr></thead>
<tbody id="agents-body"></tbody>
</table></div>
</section>
<section id="instances">
<h2>Instances <span class="count" id="count-instances"></span></h2>
<div class="tw"><table>
<thead><tr><th>Agent</th><th>Version</th><th>Worker</th><th>State</th><th>Current task</th><th class="num">Running</th><th class="num" title="Deliveries taken at once: this instance's share of max_parallel_tasks">Prefetch</th></tr></thead>
<tbody id="instances-body"></tbody>
</table></div>
</section>
<section id="queues">
<h2>Queues <span class="count" id="count-queues"></span></h2>
<div class="tw"><table>
<thead><tr><th>Name</th><th class="num">Ready</th><th class="num">Consumers</th><th class="num">Unacked</th></tr></thead>
<tbody id="queues-body"></tbody>
</table></div>
</section>
<section id="locks" class="wide">
<h2>Locks <span class="count" id="count-locks"></span></h2>
<div class="tw"><table>
<thead><tr><th>Resource</th><th>Owner</th><th>Priority</th><th class="num">Fencing token</th><th>Expires</th><th>Waiters</th></tr></thead>
<tbody id="locks-body"></tbody>
</table></div>
</section>
<section id="runs" class="wide">
<h2>Recent runs <span class="count" id="count-runs"></span></h2>
<div class="tw"><table>
<thead><tr><th>Run</th><th>Agent</th><th>Event</th><th>State</th><th>Started</th><th class="num">Duration</th><th>Message</th></tr></thead>
<tbody id="runs-body"></tbody>
</table></div>
</section>
<section id="events" class="wide">
<h2>Recent events <span class="count" id="count-events"></span></h2>
<div class="tw"><table>
<thead><tr><th>Time</th><th>Type</th><th>Priority</th><th>Source</th><th>Payload</th></tr></thead>
<tbody id="events-body"></tbody>
</table></div>
</section>
</main>
<script>
(function () {
  'use strict';
  const MAX_EVENTS = 30;
  const TOKEN_KEY = 'agentry-token';
  const WS_PATH = '/api/runtime/instances/status';
  const data = { instances: [], agents: [], queues: [], locks: [], runs: [], events: [] };
  let selected = '';
  let ready = false;
  let ws = null;
  let backoff = 1000;
  let retryTimer = null;
  let noticeTimer = null;

  const $ = (id) => document.getElementById(id);

  // The token printed at start comes in the URL (?token=…): keep it in this browser's storage for this endpoint's
  // origin, and take it out of the address bar (and so out of the history and of bookmarks).
  (function adoptToken() {
    const params = new URLSearchParams(location.search);
    const t = params.get('token');
    if (!t) return;
    try { localStorage.setItem(TOKEN_KEY, t); } catch (e) { /* ignore */ }
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  })();

  // Builds an element; text always goes through text nodes, never through HTML parsing.
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k === 'onclick') e.addEventListener('click', v);
        else e.setAttribute(k, String(v));
      }
    }
    if (children) {
      for (const c of children) {
        if (c === null || c === undefined) continue;
        e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
      }
    }
    return e;
  }
  const td = (text, cls, title) => el('td', { class: cls, text: text, title: title });
  const dash = (v) => (v === null || v === undefined || v === '' ? '\u2014' : String(v));
  const short = (id) => (id ? String(id).slice(0, 8) : '\u2014');
  const token = (s) => String(s === null || s === undefined ? 'unknown' : s).toLowerCase().replace(/[^a-z0-9_-]/g, '');
  const list = (v) => (Array.isArray(v) ? v : []);

  function time(iso) {
    if (!iso) return '\u2014';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const p = (n) => String(n).padStart(2, '0');
    const t = p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return t;
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + t;
  }
  function duration(ms) {
    if (!isFinite(ms) || ms < 0) return '\u2014';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }
  function relative(iso) {
    const t = Date.parse(iso);
    if (isNaN(t)) return '';
    const d = t - Date.now();
    return d >= 0 ? 'in ' + duration(d) : duration(-d) + ' ago';
  }
  function badge(kind, state) {
    return el('span', { class: 'badge ' + kind + '-' + token(state), text: dash(state) });
  }
  function prio(p) {
    return el('td', { class: 'prio-' + String(p || '').toUpperCase(), text: dash(p && String(p).toUpperCase()) });
  }
  function fill(id, rows, cols, emptyText) {
    const body = $(id);
    if (rows.length === 0) {
      rows = [el('tr', null, [el('td', { class: 'empty', colspan: cols, text: emptyText })])];
    }
    body.replaceChildren(...rows);
  }
  function count(id, shown, total) {
    $(id).textContent = shown === total ? String(total) : shown + ' of ' + total;
  }

  // ----- filtering -----
  function matchAgent(id) { return !selected || id === selected; }
  function eventMatches(ev) {
    if (!selected) return true;
    const p = ev && ev.payload;
    if (p && typeof p === 'object' && (p.agent_id === selected || p.agent === selected)) return true;
    const src = ev && ev.source ? String(ev.source) : '';
    if (src === selected || src === 'agent:' + selected || src.endsWith('/' + selected)) return true;
    return data.runs.some((r) => r.agent_id === selected && r.event_id && r.event_id === ev.id);
  }

  // ----- rendering -----
  function renderSelect() {
    const sel = $('agent-select');
    const ids = data.agents.map((a) => String(a.agent_id)).sort();
    if (selected && ids.indexOf(selected) < 0) ids.push(selected);
    const opts = [el('option', { value: '', text: 'All agents' })];
    for (const id of ids) opts.push(el('option', { value: id, text: id }));
    sel.replaceChildren(...opts);
    sel.value = selected;
  }

  function renderAgents() {
    // A selected agent is shown alone; otherwise retired agents are left out (the selector still lists them).
    const agents = data.agents
      .filter((a) => selected ? String(a.agent_id) === selected : !a.retired)
      .sort((a, b) => String(a.agent_id).localeCompare(String(b.agent_id)));
    const rows = agents.map((a) => {
      const id = String(a.agent_id);
      const name = a.name && a.name !== id ? a.name : null;
      const pub = a.published_version
        ? el('td', { class: 'mono', text: a.published_version })
        : el('td', { class: 'muted', text: 'none' + (a.latest_version ? ' (latest ' + a.latest_version + ')' : '') });
      const actions = el('div', { class: 'actions' }, ['pause', 'resume', 'stop', 'start'].map((act) =>
        el('button', {
          type: 'button',
          class: act === 'stop' ? 'warn' : null,
          'data-action': act,
          text: act.charAt(0).toUpperCase() + act.slice(1),
          onclick: (e) => doAction(id, act, e.currentTarget)
        })));
      return el('tr', { 'data-testid': 'agent', 'data-agent-id': id, class: id === selected ? 'sel' : null }, [
        el('td', null, [el('span', { class: 'mono', text: id }), name ? el('span', { class: 'sub', text: name }) : null,
          a.retired ? el('span', { class: 'sub', text: 'retired' }) : null]),
        pub,
        el('td', null, [badge('state', a.desired_state)]),
        el('td', null, [actions])
      ]);
    });
    fill('agents-body', rows, 4, 'No agents registered');
    count('count-agents', rows.length, data.agents.length);
  }

  function renderInstances() {
    const all = data.instances;
    const shown = all.filter((i) => matchAgent(i.agent_id)).sort((a, b) =>
      String(a.agent_id).localeCompare(String(b.agent_id)) || String(a.worker_id).localeCompare(String(b.worker_id)));
    const rows = shown.map((i) => el('tr', {
      'data-testid': 'instance', 'data-agent-id': dash(i.agent_id), 'data-state': dash(i.state), 'data-instance-id': i.instance_id
    }, [
      td(dash(i.agent_id), 'mono'),
      td(dash(i.version), 'mono'),
      td(dash(i.worker_id), 'mono'),
      el('td', null, [el('span', { class: 'badge state-' + token(i.state), text: dash(i.state), title: i.error || null })]),
      td(i.current_task ? short(i.current_task) : '\u2014', 'mono', i.current_task || null),
      td(dash(i.running_tasks), 'num'),
      td(dash(i.prefetch), 'num')
    ]));
    fill('instances-body', rows, 7, selected ? 'No instances of this agent' : 'No instances');
    count('count-instances', shown.length, all.length);
  }

  function renderQueues() {
    const all = data.queues;
    const shown = all.filter((q) => matchAgent(q.agent_id));
    const rows = shown.map((q) => el('tr', { 'data-testid': 'queue', 'data-name': q.name, 'data-agent-id': q.agent_id }, [
      td(dash(q.name), 'mono'),
      td(dash(q.messages), 'num'),
      td(dash(q.consumers), 'num'),
      td(dash(q.unacked), 'num')
    ]));
    fill('queues-body', rows, 4, selected ? 'No queue for this agent' : 'No queues');
    count('count-queues', shown.length, all.length);
  }

  function renderLocks() {
    const all = data.locks;
    const rows = all.map((l) => {
      const waiters = list(l.waiters).slice().sort((a, b) => (a.position || 0) - (b.position || 0));
      const w = waiters.length === 0 ? el('span', { class: 'muted', text: 'none' }) :
        el('ol', { class: 'waiters' }, waiters.map((x) => el('li', null, [
          el('span', { class: 'mono', text: dash(x.owner) }), ' ',
          el('span', { class: 'prio-' + String(x.priority || '').toUpperCase(), text: '(' + dash(x.priority && String(x.priority).toUpperCase()) + ')' })
        ])));
      return el('tr', { 'data-testid': 'lock', 'data-resource': dash(l.resource) }, [
        td(dash(l.resource), 'mono'),
        el('td', null, [el('span', { class: 'mono', text: dash(l.owner) }), l.owner_type ? el('span', { class: 'sub', text: l.owner_type }) : null]),
        prio(l.priority),
        td(dash(l.fencing_token), 'num mono'),
        el('td', { title: l.expires_at || null }, [time(l.expires_at), l.expires_at ? el('span', { class: 'sub', text: relative(l.expires_at) }) : null]),
        el('td', null, [w])
      ]);
    });
    fill('locks-body', rows, 6, 'No locks held');
    count('count-locks', rows.length, all.length);
  }

  function renderRuns() {
    const all = data.runs;
    const shown = all.filter((r) => matchAgent(r.agent_id));
    const rows = shown.map((r) => {
      const start = Date.parse(r.started_at);
      const end = r.finished_at ? Date.parse(r.finished_at) : (r.state === 'running' ? Date.now() : NaN);
      return el('tr', { 'data-testid': 'run', 'data-run-id': dash(r.run_id), 'data-state': dash(r.state), 'data-agent-id': r.agent_id }, [
        td(short(r.run_id), 'mono', r.run_id || null),
        el('td', null, [el('span', { class: 'mono', text: dash(r.agent_id) }), r.agent_version ? el('span', { class: 'sub', text: r.agent_version }) : null]),
        td(dash(r.event_type), 'mono'),
        el('td', null, [badge('run', r.state)]),
        td(time(r.started_at), null, r.started_at || null),
        td(duration(end - start), 'num'),
        td(dash(r.message), 'clip', r.message || null)
      ]);
    });
    fill('runs-body', rows, 7, selected ? 'No recent runs of this agent' : 'No runs yet');
    count('count-runs', shown.length, all.length);
  }

  function payloadText(p) {
    if (p === null || p === undefined) return '';
    try { return typeof p === 'string' ? p : JSON.stringify(p); } catch (e) { return String(p); }
  }

  function renderEvents() {
    const all = data.events;
    const shown = all.filter(eventMatches);
    const rows = shown.map((ev) => {
      const full = payloadText(ev.payload);
      const brief = full.length > 80 ? full.slice(0, 79) + '\u2026' : full;
      return el('tr', { 'data-testid': 'event', 'data-type': dash(ev.type), 'data-event-id': ev.id }, [
        td(time(ev.timestamp), null, ev.timestamp || null),
        td(dash(ev.type), 'mono'),
        prio(ev.priority),
        td(dash(ev.source), 'mono'),
        td(brief || '\u2014', 'mono clip', full.length > 80 ? full.slice(0, 2000) : null)
      ]);
    });
    fill('events-body', rows, 5, selected ? 'No recent events for this agent' : 'No events yet');
    count('count-events', shown.length, all.length);
  }

  function renderAll() {
    renderSelect();
    renderAgents();
    renderInstances();
    renderQueues();
    renderLocks();
    renderRuns();
    renderEvents();
  }

  // ----- WebSocket -----
  function setConnection(text, cls, title) {
    const c = $('connection');
    c.textContent = text;
    c.className = cls;
    c.title = title || 'WebSocket connection';
  }

  function handle(msg) {
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'snapshot':
        for (const k of ['instances', 'agents', 'queues', 'locks', 'runs']) data[k] = list(msg[k]);
        data.events = list(msg.events).slice(0, MAX_EVENTS);
        renderAll();
        if (!ready) { ready = true; document.body.setAttribute('data-ready', 'true'); }
        break;
      case 'instances': data.instances = list(msg.instances); renderInstances(); break;
      case 'agents': data.agents = list(msg.agents); renderSelect(); renderAgents(); break;
      case 'locks': data.locks = list(msg.locks); renderLocks(); break;
      case 'runs': data.runs = list(msg.runs); renderRuns(); if (selected) renderEvents(); break;
      case 'queues': data.queues = list(msg.queues); renderQueues(); break;
      case 'event':
        if (msg.event && typeof msg.event === 'object') {
          data.events.unshift(msg.event);
          if (data.events.length > MAX_EVENTS) data.events.length = MAX_EVENTS;
          renderEvents();
        }
        break;
      default: break;
    }
  }

  function connect() {
    retryTimer = null;
    const tok = storedToken();
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + WS_PATH +
      (tok ? '?token=' + encodeURIComponent(tok) : '');
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      if (ws !== sock) return;
      backoff = 1000;
      setConnection('connected', 'ok');
    };
    sock.onmessage = (e) => {
      if (ws !== sock) return;
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      try { handle(msg); } catch (err) { console.error('status page: cannot apply message', err); }
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      ws = null;
      if (!storedToken()) {
        setConnection('token needed', 'bad', 'Open the URL with ?token= printed by agentry at start, or click to enter the token');
        return;
      }
      scheduleReconnect();
    };
    sock.onerror = () => { /* a close follows */ };
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    const wait = backoff;
    backoff = Math.min(backoff * 2, 10000);
    setConnection('reconnecting', 'bad', 'Reconnecting in ' + Math.round(wait / 1000) + ' s');
    retryTimer = setTimeout(connect, wait);
  }

  // ----- actions -----
  function notice(kind, text) {
    const n = $('notice');
    n.className = kind;
    n.textContent = text;
    n.hidden = false;
    if (noticeTimer) clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, kind === 'error' ? 12000 : 6000);
  }
  function storedToken() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function forgetToken() {
    try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
  }
  function askToken(why) {
    const t = window.prompt(why || 'Admin token (AGENTRY_ADMIN_TOKEN):', '');
    const v = t ? t.trim() : '';
    if (v) { try { localStorage.setItem(TOKEN_KEY, v); } catch (e) { /* ignore */ } }
    return v;
  }
  function errorText(res, body) {
    const err = body && body.error;
    if (err && err.message) return err.message + (err.code ? ' (' + err.code + ')' : '');
    return 'HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '');
  }

  async function doAction(agentId, action, btn) {
    let tok = storedToken() || askToken();
    if (!tok) { notice('error', 'No admin token given; ' + action + ' not sent.'); return; }
    if (btn) btn.disabled = true;
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        let res;
        try {
          res = await fetch('/api/agents/' + encodeURIComponent(agentId) + '/' + action, {
            method: 'POST',
            headers: { 'Authorization': 'Bearer ' + tok, 'Accept': 'application/json' },
            credentials: 'same-origin'
          });
        } catch (e) {
          notice('error', 'Request failed: ' + (e && e.message ? e.message : e));
          return;
        }
        let body = null;
        try { body = await res.json(); } catch (e) { body = null; }
        if (res.ok) {
          notice('ok', (body && body.message ? body.message : action + ' accepted') + ' \u2014 ' + agentId +
            (body && body.desired_state ? ' (desired state: ' + body.desired_state + ')' : ''));
          return;
        }
        const text = errorText(res, body);
        if (res.status === 401 || res.status === 403) {
          forgetToken();
          if (attempt === 0) {
            tok = askToken(text + '\nEnter the admin token:');
            if (tok) continue;
          }
        }
        notice('error', action + ' ' + agentId + ': ' + text);
        return;
      }
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  // ----- start -----
  $('agent-select').addEventListener('change', (e) => {
    selected = e.target.value;
    renderAgents();
    renderInstances();
    renderQueues();
    renderRuns();
    renderEvents();
  });
  // Keeps durations of running runs and lock expiry times fresh.
  setInterval(() => {
    if (!ready) return;
    if (data.runs.some((r) => r.state === 'running')) renderRuns();
    if (data.locks.length) renderLocks();
  }, 5000);
  $('connection').addEventListener('click', () => {
    if (ws) return;
    if (!storedToken() && !askToken()) return;
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    connect();
  });
  renderAll();
  connect();
})();
</script>
</body>
</html>
"""#
}
