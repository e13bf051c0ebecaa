(function () {
  'use strict';
  const MAX_EVENTS = 30;
  const TOKEN_KEY = 'agentry-token';
  const WS_PATH = '/api/runtime/instances/status';
  const KINDS = ['instances', 'agents', 'queues', 'locks', 'runs', 'schedules', 'webhooks', 'approvals', 'budgets'];
  const data = { instances: [], agents: [], queues: [], locks: [], runs: [], schedules: [], webhooks: [], approvals: [], budgets: [], events: [] };
  // Run states in which a run has not ended (it may still change, and takes no feedback).
  const UNFINISHED = ['running', 'waiting', 'resuming', 'awaiting_approval', 'deferred'];
  // How far the run tree is fetched: levels below the shown run, and runs in all.
  const TREE_DEPTH = 5;
  const TREE_NODES = 60;
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
        else if (k === 'oninput') e.addEventListener('input', v);
        else if (k === 'onsubmit') e.addEventListener('submit', v);
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
  const runLink = (id, text) => (id ? el('a', { href: '#run=' + id, class: 'mono', 'data-testid': 'run-link', 'data-run-id': id, title: id, text: text || short(id) }) : el('span', { class: 'muted', text: '\u2014' }));

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

  // An amount of a budget: tokens as a whole number, a cost with its currency.
  function amount(v, b) {
    const n = Number(v);
    if (!isFinite(n)) return '\u2014';
    if (b.unit === 'cost') return n.toLocaleString(undefined, { maximumFractionDigits: 4 });
    return Math.round(n).toLocaleString();
  }
  // A budget applies to the selected agent when it is the agent's own or a pool's the agent draws from.
  function budgetMatches(b) {
    return !selected || b.scope === 'agent:' + selected || list(b.agents).indexOf(selected) >= 0;
  }

  function renderBudgets() {
    const all = list(data.budgets);
    const shown = all.filter(budgetMatches);
    const rows = shown.map((b) => {
      const limit = Number(b.limit);
      const share = limit > 0 ? Math.max(0, Number(b.used) || 0) / limit : 0;
      const level = b.at_limit ? 'at_limit' : (Number(b.warn_at) > 0 && share >= Number(b.warn_at) ? 'warn' : 'ok');
      const fillBar = el('span');
      fillBar.style.width = Math.min(100, Math.round(share * 100)) + '%';
      const unit = b.unit === 'cost' ? dash(b.currency) : 'tokens';
      const pool = String(b.scope || '').indexOf('pool:') === 0;
      return el('tr', {
        'data-testid': 'budget', 'data-scope': dash(b.scope), 'data-at-limit': b.at_limit ? 'true' : 'false', class: b.at_limit ? 'at-limit' : null
      }, [
        el('td', null, [el('span', { class: 'mono', text: dash(b.scope) }),
          el('span', { class: 'sub', text: 'per ' + dash(b.per) + (pool && list(b.agents).length ? ', for ' + list(b.agents).join(', ') : '') })]),
        el('td', { class: 'num', 'data-testid': 'budget-used' }, [amount(b.used, b) + ' / ' + amount(b.limit, b) + ' ' + unit]),
        el('td', { title: Math.round(share * 100) + '% of the limit spent' + (b.warn_at ? ', warning at ' + Math.round(Number(b.warn_at) * 100) + '%' : '') }, [
          el('span', { class: 'bar ' + level }, [fillBar]),
          b.at_limit ? el('span', { class: 'badge budget-at_limit', 'data-testid': 'budget-at-limit', text: 'at limit' }) : el('span', { class: 'muted', text: Math.round(share * 100) + '%' })
        ]),
        td(Number(b.reserved) > 0 ? amount(b.reserved, b) : '\u2014', 'num'),
        td(dash(b.runs), 'num'),
        el('td', { title: b.period_end || null }, [time(b.period_end), b.period_end ? el('span', { class: 'sub', text: relative(b.period_end) }) : null]),
        td(dash(b.on_exceeded), 'mono'),
        td(Number(b.deferred_runs) > 0 ? String(b.deferred_runs) : '\u2014', Number(b.deferred_runs) > 0 ? 'num refused' : 'num')
      ]);
    });
    fill('budgets-body', rows, 8, selected ? 'No budget applies to this agent' : 'No budgets declared');
    count('count-budgets', shown.length, all.length);
  }

  // Why a deferred run waits and until when, under its message.
  function deferredNote(r) {
    if (r.state !== 'deferred') return null;
    const why = r.defer_reason ? r.defer_reason + ', ' : '';
    const due = Date.parse(r.resume_at);
    const when = isNaN(due) ? 'waiting' : (due > Date.now() ? 'tried again ' + relative(r.resume_at) : 'due now');
    return el('span', { class: 'sub', 'data-testid': 'run-deferred', 'data-reason': dash(r.defer_reason), text: why + when });
  }

  function renderRuns() {
    const all = data.runs;
    const shown = all.filter((r) => matchAgent(r.agent_id));
    const rows = shown.map((r) => {
      const start = Date.parse(r.started_at);
      const end = r.finished_at ? Date.parse(r.finished_at) : (!finished(r.state) ? Date.now() : NaN);
      return el('tr', {
        'data-testid': 'run', 'data-run-id': dash(r.run_id), 'data-state': dash(r.state), 'data-agent-id': r.agent_id,
        class: r.run_id && r.run_id === detail.id ? 'sel' : null, title: 'Show this run',
        onclick: () => { if (r.run_id) openRun(r.run_id); }
      }, [
        el('td', null, [runLink(r.run_id), r.depth ? el('span', { class: 'sub', text: 'depth ' + r.depth }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(r.agent_id) }), r.agent_version ? el('span', { class: 'sub', text: r.agent_version }) : null]),
        td(dash(r.event_type), 'mono'),
        el('td', null, [badge('run', r.state)]),
        td(time(r.started_at), null, r.started_at || null),
        td(duration(end - start), 'num'),
        el('td', { class: 'clip', title: r.message || null }, [dash(r.message), deferredNote(r)])
      ]);
    });
    fill('runs-body', rows, 7, selected ? 'No recent runs of this agent' : 'No runs yet');
    count('count-runs', shown.length, all.length);
  }

  // ----- approvals -----
  // Comments typed for pending approvals, kept across re-renders.
  const comments = {};

  function renderApprovals() {
    const all = list(data.approvals);
    const pendingAll = all.filter((a) => a.state === 'pending');
    const pending = pendingAll.filter((a) => matchAgent(a.agent_id));
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.approvalComment : null;
    const rows = pending.map((a) => {
      const id = String(a.approval_id);
      const input = el('input', {
        type: 'text', name: 'comment', placeholder: 'comment (optional)', 'aria-label': 'Comment on approval ' + short(id),
        'data-approval-comment': id, maxlength: 2000, oninput: (e) => { comments[id] = e.target.value; }
      });
      input.value = comments[id] || '';
      const row = el('tr', { 'data-testid': 'approval', 'data-approval-id': id, 'data-run-id': a.run_id, 'data-agent-id': a.agent_id }, []);
      const buttons = ['approve', 'reject'].map((act) => el('button', {
        type: 'button', class: act === 'approve' ? 'ok' : 'warn', 'data-action': act,
        text: act === 'approve' ? 'Approve' : 'Reject', onclick: () => decideApproval(a, act, row)
      }));
      row.replaceChildren(
        el('td', { title: a.requested_at || null }, [time(a.requested_at), a.requested_at ? el('span', { class: 'sub', text: relative(a.requested_at) }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(a.agent_id) }), el('span', { class: 'sub', text: dash(a.agent_version) })]),
        el('td', null, [el('span', { class: 'mono', text: dash(a.permission) }), el('span', { class: 'sub', text: a.requested_by === 'definition' ? 'by its definition' : 'asked by its handler' })]),
        td(dash(a.reason), 'clip', a.reason || null),
        el('td', { title: a.expires_at || null }, [time(a.expires_at), a.expires_at ? el('span', { class: 'sub', text: relative(a.expires_at) }) : null]),
        el('td', null, [runLink(a.run_id)]),
        el('td', null, [el('div', { class: 'decide' }, [input].concat(buttons))])
      );
      return row;
    });
    fill('approvals-body', rows, 7, selected ? 'No approvals waiting for this agent' : 'No approvals waiting');
    count('count-approvals', pending.length, pendingAll.length);
    if (focused) {
      const again = document.querySelector('input[data-approval-comment="' + token(focused) + '"]');
      if (again) again.focus();
    }
    const decided = all.filter((a) => a.state !== 'pending' && matchAgent(a.agent_id));
    const done = decided.map((a) => el('tr', { 'data-testid': 'decided-approval', 'data-approval-id': a.approval_id, 'data-state': dash(a.state), 'data-run-id': a.run_id }, [
      el('td', { title: a.decided_at || null }, [time(a.decided_at), a.decided_at ? el('span', { class: 'sub', text: relative(a.decided_at) }) : null]),
      el('td', null, [el('span', { class: 'mono', text: dash(a.agent_id) }), el('span', { class: 'sub', text: dash(a.agent_version) })]),
      td(dash(a.permission), 'mono'),
      el('td', null, [badge('appr', a.state)]),
      td(dash(a.decided_by), 'clip', a.decided_by || null),
      td(dash(a.comment), 'clip', a.comment || null),
      el('td', null, [runLink(a.run_id)])
    ]));
    fill('decided-body', done, 7, 'None decided yet');
  }

  async function decideApproval(a, action, row) {
    const id = String(a.approval_id);
    const comment = (comments[id] || '').trim();
    for (const b of row.querySelectorAll('button')) b.disabled = true;
    const answer = await api('POST', '/api/approvals/' + encodeURIComponent(id) + '/' + action, comment ? { comment: comment } : {}, action);
    if (answer && answer.ok && answer.body && answer.body.approval_id) {
      delete comments[id];
      // The decision shows at once; the live status confirms it.
      data.approvals = list(data.approvals).map((x) => (x.approval_id === id ? answer.body : x));
      renderApprovals();
      notice('ok', (action === 'approve' ? 'Approved' : 'Rejected') + ': ' + dash(a.permission) + ' for ' + dash(a.agent_id) + ' (run ' + short(a.run_id) + ')');
      if (detail.id) refreshRun();
      return;
    }
    for (const b of row.querySelectorAll('button')) b.disabled = false;
    if (answer) notice('error', action + ' ' + short(id) + ': ' + answer.text);
  }

  // ----- run detail -----
  // The run shown (from the address's #run=ID), the number of its latest reading, a pending re-reading, its tree.
  const detail = { id: null, seq: 0, timer: null, tree: null };

  function openRun(id) {
    if (location.hash === '#run=' + id) showRun(id, false);
    else location.hash = 'run=' + id;
  }
  function routeHash() {
    const m = /^#run=([0-9a-fA-F-]{36})$/.exec(location.hash);
    if (m) showRun(m[1].toLowerCase(), false);
    else closeRun(false);
  }
  function closeRun(clearHash) {
    detail.id = null;
    detail.seq++;
    detail.tree = null;
    $('run-detail').hidden = true;
    $('run-detail-body').replaceChildren();
    if (clearHash && location.hash) history.pushState(null, '', location.pathname + location.search);
    renderRuns();
  }
  // Fetches a run and, below it, its children's runs (TREE_DEPTH levels, TREE_NODES runs at most).
  async function fetchRun(id, depth, budget) {
    budget.nodes++;
    const answer = await api('GET', '/api/runs/' + encodeURIComponent(id), undefined, 'run ' + short(id));
    if (!answer || !answer.ok || !answer.body) return { id: id, error: answer ? answer.text : 'not read', kids: [] };
    const run = answer.body;
    const kids = await Promise.all(list(run.children).map(async (c) => {
      if (c.run_id && depth + 1 < TREE_DEPTH && budget.nodes < TREE_NODES) return { child: c, node: await fetchRun(c.run_id, depth + 1, budget) };
      return { child: c, node: null };
    }));
    return { id: id, run: run, kids: kids };
  }
  function treeUnfinished(node) {
    if (!node || !node.run) return false;
    if (!finished(node.run.state)) return true;
    return node.kids.some((k) => (k.node ? treeUnfinished(k.node) : k.child.state === 'pending'));
  }
  async function showRun(id, quiet) {
    const seq = ++detail.seq;
    const section = $('run-detail');
    if (detail.id !== id || section.hidden) {
      // Another run: what was shown goes at once, so that nothing of it passes for this one's.
      detail.tree = null;
      $('run-detail-body').replaceChildren(el('p', { class: 'muted', text: 'Loading\u2026' }));
    }
    detail.id = id;
    $('run-detail-id').textContent = id;
    section.hidden = false;
    if (!quiet) { renderRuns(); section.scrollIntoView({ block: 'nearest' }); }
    const tree = await fetchRun(id, 0, { nodes: 0 });
    if (seq !== detail.seq) return;
    detail.tree = tree;
    renderRunDetail(tree);
  }
  // Reads the shown run again (its state, its tree) soon: several changes in a row cost one reading.
  function refreshRun() {
    if (!detail.id || detail.timer) return;
    detail.timer = setTimeout(() => { detail.timer = null; if (detail.id) showRun(detail.id, true); }, 300);
  }

  function fact(name, value) {
    return [el('dt', { text: name }), el('dd', null, [value])];
  }
  function jsonBlock(v, testid) {
    let text = payloadText(v);
    if (typeof v === 'object' && v !== null) { try { text = JSON.stringify(v, null, 2); } catch (e) { /* keep */ } }
    return el('pre', { class: 'json', 'data-testid': testid, text: text.length > 4000 ? text.slice(0, 3999) + '\u2026' : text });
  }

  function renderRunDetail(tree) {
    const body = $('run-detail-body');
    if (!tree.run) {
      body.replaceChildren(el('p', { class: 'refused', 'data-testid': 'run-error', text: 'Cannot read run ' + tree.id + ': ' + tree.error }));
      return;
    }
    const r = tree.run;
    const start = Date.parse(r.started_at);
    const end = r.finished_at ? Date.parse(r.finished_at) : Date.now();
    const facts = [].concat(
      fact('Agent', el('span', null, [el('span', { class: 'mono', text: dash(r.agent_id) }), ' ', el('span', { class: 'muted', text: dash(r.agent_version) })])),
      fact('State', el('span', { 'data-testid': 'run-state', 'data-state': dash(r.state) }, [badge('run', r.state),
        r.state === 'awaiting_approval' ? el('span', { class: 'muted', text: ' waiting for an approval (above)' }) : null,
        r.state === 'waiting' && r.wait_until ? el('span', { class: 'muted', text: ' for its children until ' + time(r.wait_until) }) : null,
        r.state === 'deferred' ? el('span', { class: 'muted', text: ' (' + dash(r.defer_reason) + ') until ' + time(r.resume_at) }) : null])),
      r.task ? fact('Task', el('span', { class: 'mono', text: r.task })) : [],
      fact('Event', el('span', null, [el('span', { class: 'mono', text: dash(r.event_type) }), ' ', el('span', { class: 'muted mono', text: short(r.event_id), title: r.event_id || null })])),
      fact('Parent', r.parent_run_id ? el('span', { 'data-testid': 'run-parent' }, [runLink(r.parent_run_id, r.parent_run_id)]) : el('span', { class: 'muted', text: 'none (a root run)' })),
      r.root_run_id && r.root_run_id !== r.parent_run_id && r.root_run_id !== r.run_id ? fact('Root', runLink(r.root_run_id, r.root_run_id)) : [],
      fact('Depth, steps, attempt', el('span', { text: dash(r.depth) + ', ' + dash(r.steps) + ', ' + dash(r.attempt) })),
      fact('Worker', el('span', { class: 'mono', text: dash(r.worker_id) })),
      fact('Started', el('span', { title: r.started_at || null, text: time(r.started_at) + (isFinite(start) ? ' (' + duration(end - start) + (r.finished_at ? '' : ' so far') + ')' : '') })),
      r.message ? fact('Message', el('span', { text: r.message })) : [],
      r.progress !== null && r.progress !== undefined ? fact('Progress', jsonBlock(r.progress, 'run-progress')) : [],
      r.result !== null && r.result !== undefined ? fact('Result', jsonBlock(r.result, 'run-result')) : []
    );
    const main = el('div', { id: 'run-detail-main', 'data-run-id': r.run_id }, [
      el('dl', { class: 'facts' }, facts),
      el('h3', { text: 'Run tree' }),
      el('ul', { class: 'tree', 'data-testid': 'run-tree' }, [treeItem(tree, null, true)])
    ]);
    // The feedback block is built once per finished run, so that a refresh does not wipe what is being typed.
    let fb = document.getElementById('run-feedback');
    if (!finished(r.state)) fb = null;
    else if (!fb || fb.dataset.runId !== r.run_id) fb = feedbackBlock(r);
    body.replaceChildren(main, fb || el('span'));
  }

  // One run of the tree: the task it was delegated (→ its agent and version), its state, a link, and its children.
  function treeItem(node, child, isShown) {
    const run = node ? node.run : null;
    const state = run ? run.state : child.state;
    const runID = run ? run.run_id : child.run_id;
    const parts = [];
    if (child) parts.push(el('span', { class: 'mono', 'data-testid': 'tree-task', text: child.task }), el('span', { class: 'muted', text: '\u2192' }));
    parts.push(el('span', { class: 'mono', text: dash(run ? run.agent_id : child.agent_id) }),
      el('span', { class: 'muted', 'data-testid': 'tree-version', text: dash(run ? run.agent_version : child.agent_version) }),
      badge('run', state));
    if (isShown) parts.push(el('span', { class: 'muted', text: '(this run)' }));
    else if (runID) parts.push(runLink(runID));
    else parts.push(el('span', { class: 'muted', text: 'not started' }));
    if (child && child.awaited) parts.push(el('span', { class: 'sub', text: 'awaited' }));
    const message = (run && run.message) || (child && child.message);
    if (message && state !== 'succeeded') parts.push(el('span', { class: 'muted clip', title: message, text: message }));
    if (run && run.progress !== null && run.progress !== undefined && !isShown) {
      const p = payloadText(run.progress);
      parts.push(el('span', { class: 'muted mono clip', title: p, text: 'progress ' + p }));
    }
    const kids = node ? node.kids : [];
    const more = !node && child && child.run_id ? el('span', { class: 'sub', text: 'open it for its own children' }) : null;
    return el('li', { 'data-testid': 'tree-node', 'data-run-id': runID || null, 'data-state': dash(state), 'data-task': child ? child.task : null }, [
      el('span', { class: 'node' }, parts), more,
      node && node.error ? el('span', { class: 'sub refused', text: node.error }) : null,
      kids.length ? el('ul', null, kids.map((k) => treeItem(k.node, k.child, false))) : null
    ]);
  }

  function feedbackItem(f) {
    const bits = [];
    if (f.rating !== null && f.rating !== undefined) bits.push(el('span', { class: 'badge', title: 'rating', text: f.rating + '/5' }));
    if (f.label) bits.push(el('span', { class: 'mono', text: f.label }));
    if (f.comment) bits.push(el('span', { text: f.comment }));
    bits.push(el('span', { class: 'sub', text: dash(f.by) + ', ' + time(f.created_at) }));
    return el('li', { 'data-testid': 'feedback-item', 'data-feedback-id': f.feedback_id }, [el('span', { class: 'node' }, bits)]);
  }

  // Feedback on a finished run: what it got, and a form (a 409 says its agent version does not collect feedback).
  function feedbackBlock(run) {
    const id = run.run_id;
    const items = el('ul', { class: 'tree', 'data-testid': 'feedback-list' }, [el('li', { class: 'muted', text: 'Loading\u2026' })]);
    const status = el('p', { class: 'muted', 'data-testid': 'feedback-status', hidden: true });
    const showList = (records) => {
      items.replaceChildren(...(records.length ? records.map(feedbackItem) : [el('li', { class: 'muted', 'data-testid': 'feedback-none', text: 'No feedback yet' })]));
    };
    const rating = el('select', { name: 'rating', 'aria-label': 'Rating' },
      [el('option', { value: '', text: 'rating' })].concat([1, 2, 3, 4, 5].map((n) => el('option', { value: String(n), text: n + ' / 5' }))));
    const label = el('select', { name: 'label', 'aria-label': 'Label' },
      [el('option', { value: '', text: 'label' })].concat(['correct', 'wrong', 'partially'].map((l) => el('option', { value: l, text: l }))));
    const comment = el('input', { type: 'text', name: 'comment', placeholder: 'comment', 'aria-label': 'Comment', maxlength: 10000 });
    const submit = el('button', { type: 'submit', 'data-action': 'feedback', text: 'Give feedback' });
    const form = el('form', { class: 'feedback', 'data-testid': 'feedback-form', onsubmit: async (e) => {
      e.preventDefault();
      const body = {};
      if (rating.value) body.rating = Number(rating.value);
      if (label.value) body.label = label.value;
      if (comment.value.trim()) body.comment = comment.value.trim();
      if (Object.keys(body).length === 0) { notice('error', 'Give a rating, a label or a comment.'); return; }
      submit.disabled = true;
      const answer = await api('POST', '/api/runs/' + encodeURIComponent(id) + '/feedback', body, 'feedback');
      submit.disabled = false;
      if (!answer) return;
      if (answer.ok && answer.body) {
        if (items.querySelector('[data-testid=feedback-none]')) items.replaceChildren();
        items.appendChild(feedbackItem(answer.body));
        form.reset();
        notice('ok', 'Feedback recorded on run ' + short(id));
      } else if (answer.status === 409) {
        form.hidden = true;
        status.hidden = false;
        status.setAttribute('data-testid', 'feedback-refused');
        status.textContent = 'This run takes no feedback: ' + answer.text;
      } else {
        notice('error', 'feedback on ' + short(id) + ': ' + answer.text);
      }
    } }, [rating, label, comment, submit]);
    api('GET', '/api/runs/' + encodeURIComponent(id) + '/feedback', undefined, 'feedback').then((answer) => {
      if (answer && answer.ok && answer.body) showList(list(answer.body.feedback));
      else items.replaceChildren(el('li', { class: 'refused', text: 'Cannot read the feedback: ' + (answer ? answer.text : 'no answer') }));
    });
    return el('div', { id: 'run-feedback', 'data-run-id': id }, [el('h3', { text: 'Feedback' }), items, form, status]);
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
    renderApprovals();
    renderBudgets();
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
        for (const k of KINDS) data[k] = list(msg[k]);
        data.events = list(msg.events).slice(0, MAX_EVENTS);
        renderAll();
        if (!ready) { ready = true; document.body.setAttribute('data-ready', 'true'); }
        break;
      case 'instances': data.instances = list(msg.instances); renderInstances(); break;
      case 'agents': data.agents = list(msg.agents); renderSelect(); renderAgents(); break;
      case 'locks': data.locks = list(msg.locks); renderLocks(); break;
      case 'runs':
        data.runs = list(msg.runs); renderRuns(); if (selected) renderEvents();
        if (detail.id && (!detail.tree || treeUnfinished(detail.tree))) refreshRun();
        break;
      case 'approvals': data.approvals = list(msg.approvals); renderApprovals(); if (detail.id) refreshRun(); break;
      case 'queues': data.queues = list(msg.queues); renderQueues(); break;
      case 'schedules': data.schedules = list(msg.schedules); renderSchedules(); break;
      case 'webhooks': data.webhooks = list(msg.webhooks); renderWebhooks(); break;
      case 'budgets': data.budgets = list(msg.budgets); renderBudgets(); break;
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

  // Calls the API with the kept token (asked for when a change has none; asked again once on 401 or 403).
  // Answers { ok, status, body, text } (text: the error), or null when nothing was sent.
  async function api(method, path, body, what) {
    let tok = storedToken();
    if (!tok && method !== 'GET') tok = askToken();
    if (!tok && method !== 'GET') { notice('error', 'No admin token given; ' + what + ' not sent.'); return null; }
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers = { 'Accept': 'application/json' };
      if (tok) headers['Authorization'] = 'Bearer ' + tok;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let res;
      try {
        res = await fetch(path, {
          method: method, headers: headers, credentials: 'same-origin',
          body: body === undefined ? undefined : JSON.stringify(body)
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

  async function doAction(agentId, action, btn) {
    if (btn) btn.disabled = true;
    try {
      const answer = await api('POST', '/api/agents/' + encodeURIComponent(agentId) + '/' + action, undefined, action);
      if (!answer) return;
      const body = answer.body;
      if (answer.ok) {
        notice('ok', (body && body.message ? body.message : action + ' accepted') + ' \u2014 ' + agentId +
          (body && body.desired_state ? ' (desired state: ' + body.desired_state + ')' : ''));
      } else {
        notice('error', action + ' ' + agentId + ': ' + answer.text);
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
    renderApprovals();
    renderBudgets();
    renderRuns();
    renderEvents();
  });
  window.addEventListener('hashchange', routeHash);
  $('run-detail-close').addEventListener('click', () => closeRun(true));
  // Keeps durations of running runs, lock expiry times and budget periods' ends fresh.
  setInterval(() => {
    if (!ready) return;
    if (data.runs.some((r) => !finished(r.state))) renderRuns();
    if (data.locks.length) renderLocks();
    if (data.budgets.length) renderBudgets();
  }, 5000);
  $('connection').addEventListener('click', () => {
    if (ws) return;
    if (!storedToken() && !askToken()) return;
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    connect();
  });
  renderAll();
  connect();
  routeHash();
})();
