// The console's core: what every view uses. The endpoint inlines this file first, then each view's file (the list is
// AdminDocuments.consoleScripts), into the one page it serves.
//
// `window.Agentry` offers:
// - el(tag, attrs, children): an element; text only ever goes through text nodes, never through HTML parsing.
//   attrs: class, text, onclick, oninput, onsubmit, onchange, onkeydown; any other is set as an attribute.
// - td(text, cls, title), dash(v), short(id), token(s), list(v), badge(kind, state), prio(p), fill(tbodyId, rows,
//   columns, emptyText), count(spanId, shown, total), payloadText(v), jsonBlock(v, testid).
// - when(iso): a <time> showing the browser's local time, UTC on hover; duration(ms); relative(iso).
// - api(method, path, body, what, type) -> Promise of {ok, status, body, text} or null (nothing sent): sends the kept
//   admin token, asks for one when a change has none, and again once on 401/403. body goes as JSON; with `type`
//   (e.g. 'application/yaml') it is a string sent as it is, with that Content-Type. notice(kind, text): 'ok' | 'error'.
// - data: the latest WebSocket state by kind (see KINDS), and data.events (the newest first, MAX_EVENTS of them).
// - on(kind, fn): fn() runs in the next batched flush (at most FLUSH_MS apart, never once per message) after a
//   message of that kind arrived; 'snapshot' after a snapshot (every kind then counts as arrived too); 'events' gets
//   the events that arrived since the last flush, oldest first. Views redraw there, never per message: the page keeps
//   up at 1,000 events/s.
// - view(name, {path, enter(params, query), leave()}): a page at `#/path` (`'runs/:id'` puts the segment in
//   params.id; what follows `?` is `query`, a URLSearchParams). The overview's path is ''. Elements with
//   data-view="NAME" show only while that view is active. go(hash) navigates; href(path, query) builds a hash;
//   current() names the active view.
// - agent(): the agent chosen in the header ('' for all); onAgent(fn) runs fn when the choice changes.
// - runLink(id, text): a link to the run's page, `#/runs/<id>`.
// - finished(state): whether a run in that state has ended. counters: {messages, flushes, events} so far.
(function () {
  'use strict';
  const MAX_EVENTS = 30;
  const FLUSH_MS = 250;
  const TOKEN_KEY = 'agentry-token';
  const WS_PATH = '/api/runtime/instances/status';
  const KINDS = ['instances', 'agents', 'queues', 'locks', 'runs', 'schedules', 'webhooks', 'approvals', 'budgets', 'workers', 'dead'];
  // Run states in which a run has not ended (it may still change, and takes no feedback).
  const UNFINISHED = ['running', 'waiting', 'resuming', 'awaiting_approval', 'deferred'];
  const data = { events: [] };
  for (const k of KINDS) data[k] = [];
  let selected = '';
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

  const LISTENERS = { onclick: 'click', oninput: 'input', onsubmit: 'submit', onchange: 'change', onkeydown: 'keydown' };
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (LISTENERS[k]) e.addEventListener(LISTENERS[k], v);
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
  const finished = (state) => UNFINISHED.indexOf(String(state)) < 0;
  const runLink = (id, text) => (id ? el('a', { href: '#/runs/' + id, class: 'mono', 'data-testid': 'run-link', 'data-run-id': id, title: id, text: text || short(id) }) : el('span', { class: 'muted', text: '\u2014' }));

  // ----- times: the browser's time zone, UTC on hover -----
  const p2 = (n) => String(n).padStart(2, '0');
  function localText(d) {
    const t = p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds());
    if (d.toDateString() === new Date().toDateString()) return t;
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ' + t;
  }
  function time(iso) {
    if (!iso) return '\u2014';
    const d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : localText(d);
  }
  function when(iso) {
    if (!iso) return el('span', { class: 'muted', text: '\u2014' });
    const d = new Date(iso);
    if (isNaN(d.getTime())) return el('span', { text: String(iso) });
    const utc = d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC');
    return el('time', { datetime: d.toISOString(), title: utc, text: localText(d) });
  }
  function duration(ms) {
    if (!isFinite(ms) || ms < 0) return '\u2014';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    const h = Math.floor(m / 60);
    // A budget's month ends weeks ahead: days then.
    if (h >= 48) return Math.floor(h / 24) + 'd ' + String(h % 24).padStart(2, '0') + 'h';
    return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
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
    if (!body) return;
    if (rows.length === 0) rows = [el('tr', null, [el('td', { class: 'empty', colspan: cols, text: emptyText })])];
    body.replaceChildren(...rows);
  }
  function count(id, shown, total) {
    const c = $(id);
    if (c) c.textContent = shown === total ? String(total) : shown + ' of ' + total;
  }
  function payloadText(p) {
    if (p === null || p === undefined) return '';
    try { return typeof p === 'string' ? p : JSON.stringify(p); } catch (e) { return String(p); }
  }
  function jsonBlock(v, testid) {
    let text = payloadText(v);
    if (typeof v === 'object' && v !== null) { try { text = JSON.stringify(v, null, 2); } catch (e) { /* keep */ } }
    return el('pre', { class: 'json', 'data-testid': testid, text: text.length > 4000 ? text.slice(0, 3999) + '\u2026' : text });
  }

  // ----- batched updates -----
  const handlers = {};
  const arrived = new Set();
  let newEvents = [];
  let flushTimer = null;
  let lastFlush = 0;
  function on(kind, fn) { (handlers[kind] = handlers[kind] || []).push(fn); }
  function emit(kind, arg) {
    for (const fn of handlers[kind] || []) {
      try { fn(arg); } catch (err) { console.error('console: ' + kind + ' view failed', err); }
    }
  }
  function scheduleFlush() {
    if (flushTimer) return;
    const wait = Math.max(0, FLUSH_MS - (Date.now() - lastFlush));
    flushTimer = setTimeout(flush, wait);
  }
  function flush() {
    flushTimer = null;
    lastFlush = Date.now();
    counters.flushes++;
    const kinds = [...arrived];
    arrived.clear();
    const events = newEvents;
    newEvents = [];
    if (kinds.indexOf('snapshot') >= 0) emit('snapshot');
    for (const k of kinds) if (k !== 'snapshot' && k !== 'events') emit(k);
    if (events.length) emit('events', events);
  }
  // Messages applied, flushes made and events received so far (the load test reads them).
  const counters = { messages: 0, flushes: 0, events: 0 };
  function handle(msg) {
    if (!msg || typeof msg !== 'object') return;
    counters.messages++;
    if (msg.type === 'snapshot') {
      for (const k of KINDS) data[k] = list(msg[k]);
      for (const k of Object.keys(msg)) if (k !== 'type' && k !== 'events' && KINDS.indexOf(k) < 0) data[k] = msg[k];
      data.events = list(msg.events).slice(0, MAX_EVENTS);
      arrived.add('snapshot');
      for (const k of Object.keys(handlers)) if (k !== 'events') arrived.add(k);
    } else if (msg.type === 'events') {
      // A batch, oldest first: the newest ends up first in data.events.
      const batch = list(msg.events).filter((e) => e && typeof e === 'object');
      if (!batch.length) return;
      for (let i = Math.max(0, batch.length - MAX_EVENTS); i < batch.length; i++) data.events.unshift(batch[i]);
      if (data.events.length > MAX_EVENTS) data.events.length = MAX_EVENTS;
      for (const e of batch) newEvents.push(e);
      // A page in the background flushes rarely: what its views have not taken yet stays bounded.
      if (newEvents.length > 2000) newEvents.splice(0, newEvents.length - 2000);
      counters.events += batch.length + (Number(msg.omitted) || 0);
      arrived.add('events');
    } else if (typeof msg.type === 'string') {
      // A kind's message carries its list under its name; others (e.g. stats) are kept whole.
      data[msg.type] = Object.prototype.hasOwnProperty.call(msg, msg.type) ? msg[msg.type] : msg;
      arrived.add(msg.type);
    } else {
      return;
    }
    scheduleFlush();
  }

  // ----- WebSocket -----
  function setConnection(text, cls, title) {
    const c = $('connection');
    c.textContent = text;
    c.className = cls;
    c.title = title || 'WebSocket connection';
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
      handle(msg);
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

  // ----- the admin API -----
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
  async function api(method, path, body, what, type) {
    let tok = storedToken();
    if (!tok && method !== 'GET') tok = askToken();
    if (!tok && method !== 'GET') { notice('error', 'No admin token given; ' + what + ' not sent.'); return null; }
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = { 'Accept': 'application/json' };
      if (tok) headers['Authorization'] = 'Bearer ' + tok;
      if (body !== undefined) headers['Content-Type'] = type || 'application/json';
      let res;
      try {
        res = await fetch(path, {
          method: method, headers: headers, credentials: 'same-origin',
          body: body === undefined ? undefined : (type ? String(body) : JSON.stringify(body))
        });
      } catch (e) {
        return { ok: false, status: 0, body: null, text: 'request failed: ' + (e && e.message ? e.message : e) };
      }
      let json = null;
      try { json = await res.json(); } catch (e) { json = null; }
      if ((res.status === 401 || res.status === 403) && attempt === 0) {
        forgetToken();
        tok = askToken(errorText(res, json) + '\nEnter the admin token:');
        if (tok) continue;
      }
      return { ok: res.ok, status: res.status, body: json, text: res.ok ? '' : errorText(res, json) };
    }
    return null;
  }

  // ----- views and the address -----
  const views = [];
  let active = null;
  function view(name, spec) {
    const parts = String(spec.path || '').split('/').filter((s) => s.length);
    views.push({ name: name, parts: parts, enter: spec.enter, leave: spec.leave });
  }
  function href(path, query) {
    const q = query ? (query instanceof URLSearchParams ? query : new URLSearchParams(query)).toString() : '';
    return '#/' + path + (q ? '?' + q : '');
  }
  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }
  function match(path) {
    const segs = path.split('/').filter((s) => s.length).map((s) => { try { return decodeURIComponent(s); } catch (e) { return s; } });
    for (const v of views) {
      if (v.parts.length !== segs.length) continue;
      const params = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        if (v.parts[i].charAt(0) === ':') params[v.parts[i].slice(1)] = segs[i];
        else ok = v.parts[i] === segs[i];
      }
      if (ok) return { v: v, params: params };
    }
    return null;
  }
  function route() {
    let hash = location.hash || '#/';
    // Links of an earlier form (#run=ID) still open the run.
    const old = /^#run=([0-9a-fA-F-]{36})$/.exec(hash);
    if (old) { history.replaceState(null, '', location.pathname + location.search + '#/runs/' + old[1].toLowerCase()); hash = location.hash; }
    const body = hash.replace(/^#\/?/, '');
    const q = body.indexOf('?');
    const path = q < 0 ? body : body.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : body.slice(q + 1));
    const found = match(path) || match('');
    if (active && active.v !== found.v && active.v.leave) {
      try { active.v.leave(); } catch (err) { console.error('console: leaving ' + active.v.name, err); }
    }
    const changed = !active || active.v !== found.v;
    active = found;
    for (const s of document.querySelectorAll('[data-view]')) s.hidden = s.dataset.view !== found.v.name;
    for (const a of document.querySelectorAll('nav a[data-nav]')) {
      if (a.dataset.nav === found.v.name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.body.dataset.view = found.v.name;
    if (found.v.enter) {
      try { found.v.enter(found.params, query); } catch (err) { console.error('console: entering ' + found.v.name, err); }
    }
    if (changed) window.scrollTo(0, 0);
  }
  const current = () => (active ? active.v.name : '');

  // ----- the agent chosen in the header -----
  const agentHandlers = [];
  function renderSelect() {
    const sel = $('agent-select');
    const ids = data.agents.map((a) => String(a.agent_id)).sort();
    if (selected && ids.indexOf(selected) < 0) ids.push(selected);
    const opts = [el('option', { value: '', text: 'All agents' })];
    for (const id of ids) opts.push(el('option', { value: id, text: id }));
    sel.replaceChildren(...opts);
    sel.value = selected;
  }

  // ----- keyboard -----
  // g then a view's key (nav links' data-key) opens it; / focuses the view's search field (data-search) or its
  // first field; ? lists the keys; Escape closes the list. Keys typed into a field are the field's.
  let pendingG = false;
  function shortcuts() {
    let box = $('shortcuts');
    if (box) { box.remove(); return; }
    const rows = [['g then a letter', 'open a view'], ['/', 'search in this view'], ['?', 'this list'], ['Escape', 'close it']];
    const views = [...document.querySelectorAll('nav a[data-key]')].map((a) => ['g ' + a.dataset.key, a.textContent.trim()]);
    box = el('div', { id: 'shortcuts', role: 'dialog', 'aria-label': 'Keyboard shortcuts', tabindex: '-1' }, [
      el('h2', { text: 'Keyboard shortcuts' }),
      el('dl', { class: 'facts' }, [].concat(...rows.concat(views).map(([k, v]) => [el('dt', null, [el('kbd', { text: k })]), el('dd', { text: v })])))
    ]);
    document.body.appendChild(box);
    box.focus();
  }
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) {
      if (e.key === 'Escape') t.blur();
      return;
    }
    if (pendingG) {
      pendingG = false;
      const link = document.querySelector('nav a[data-key="' + token(e.key) + '"]');
      if (link) { e.preventDefault(); go(link.getAttribute('href')); }
      return;
    }
    if (e.key === 'g') { pendingG = true; setTimeout(() => { pendingG = false; }, 1500); return; }
    if (e.key === '?') { e.preventDefault(); shortcuts(); return; }
    if (e.key === 'Escape') { const box = $('shortcuts'); if (box) box.remove(); return; }
    if (e.key === '/') {
      const name = current();
      const scope = [...document.querySelectorAll('[data-view="' + name + '"]')];
      const field = scope.map((s) => s.querySelector('[data-search]') || s.querySelector('input, select')).find((f) => f);
      if (field) { e.preventDefault(); field.focus(); }
    }
  });

  window.Agentry = {
    el, td, dash, short, token, list, finished, runLink, time, when, duration, relative, badge, prio, fill, count,
    payloadText, jsonBlock, api, notice, data, on, view, go, href, current, counters,
    agent: () => selected,
    onAgent: (fn) => agentHandlers.push(fn),
    matchAgent: (id) => !selected || id === selected
  };

  // ----- start (after every view's file has registered itself) -----
  document.addEventListener('DOMContentLoaded', () => {
    on('agents', renderSelect);
    $('agent-select').addEventListener('change', (e) => {
      selected = e.target.value;
      for (const fn of agentHandlers) { try { fn(selected); } catch (err) { console.error('console: agent choice', err); } }
    });
    on('snapshot', () => { document.body.setAttribute('data-ready', 'true'); });
    $('keys').addEventListener('click', shortcuts);
    $('connection').addEventListener('click', () => {
      if (ws) return;
      if (!storedToken() && !askToken()) return;
      if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
      connect();
    });
    window.addEventListener('hashchange', route);
    route();
    connect();
  });
})();
