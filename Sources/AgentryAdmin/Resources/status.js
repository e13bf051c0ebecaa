(function () {
  'use strict';
  const MAX_EVENTS = 30;
  const TOKEN_KEY = 'agentry-token';
  const WS_PATH = '/api/runtime/instances/status';
  const data = { instances: [], agents: [], queues: [], locks: [], runs: [], schedules: [], webhooks: [], events: [] };
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

  function renderSchedules() {
    const all = data.schedules || [];
    const rows = all.map((s) => {
      const next = list(s.upcoming);
      return el('tr', { 'data-testid': 'schedule', 'data-name': dash(s.name) }, [
        el('td', null, [el('span', { class: 'mono', text: dash(s.name) }), s.description ? el('span', { class: 'sub', text: s.description }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(s.cron) }), el('span', { class: 'sub', text: dash(s.time_zone) })]),
        td(dash(s.event_type), 'mono'),
        td(s.enabled ? 'enabled' : 'disabled', s.enabled ? '' : 'muted'),
        el('td', { title: next.join('\n') || null }, next.length === 0 ? [el('span', { class: 'muted', text: 'none' })] :
          [time(next[0]), el('span', { class: 'sub', text: relative(next[0]) })]),
        el('td', null, [time(s.last_run)]),
        td(String(s.ticks_published || 0) + (s.ticks_missed ? ' (' + s.ticks_missed + ' missed)' : ''), 'num'),
        td(dash(s.agent_id), 'mono')
      ]);
    });
    fill('schedules-body', rows, 8, 'No schedules');
    count('count-schedules', rows.length, all.length);
  }

  function renderWebhooks() {
    const all = data.webhooks || [];
    const rows = all.map((d) => el('tr', { 'data-testid': 'webhook', 'data-outcome': dash(d.outcome) }, [
      el('td', { title: d.received_at || null }, [time(d.received_at), d.received_at ? el('span', { class: 'sub', text: relative(d.received_at) }) : null]),
      td(dash(d.source), 'mono'),
      td(d.outcome === 'accepted' ? 'accepted' : dash(d.reason), d.outcome === 'accepted' ? '' : 'refused'),
      td(dash(d.delivery_id), 'mono'),
      td(short(d.event_id), 'mono', d.event_id || null),
      td(dash(d.remote), 'mono')
    ]));
    fill('webhooks-body', rows, 6, 'No webhooks received');
    count('count-webhooks', rows.length, all.length);
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
    renderSchedules();
    renderWebhooks();
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
        for (const k of ['instances', 'agents', 'queues', 'locks', 'runs', 'schedules', 'webhooks']) data[k] = list(msg[k]);
        data.events = list(msg.events).slice(0, MAX_EVENTS);
        renderAll();
        if (!ready) { ready = true; document.body.setAttribute('data-ready', 'true'); }
        break;
      case 'instances': data.instances = list(msg.instances); renderInstances(); break;
      case 'agents': data.agents = list(msg.agents); renderSelect(); renderAgents(); break;
      case 'locks': data.locks = list(msg.locks); renderLocks(); break;
      case 'runs': data.runs = list(msg.runs); renderRuns(); if (selected) renderEvents(); break;
      case 'queues': data.queues = list(msg.queues); renderQueues(); break;
      case 'schedules': data.schedules = list(msg.schedules); renderSchedules(); break;
      case 'webhooks': data.webhooks = list(msg.webhooks); renderWebhooks(); break;
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
