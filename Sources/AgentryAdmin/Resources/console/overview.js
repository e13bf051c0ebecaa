// The overview (#/): agents, queues, schedules, webhooks, budgets, recent runs and events, as the status WebSocket
// keeps them (workers and instances: workers.js; locks: holds.js; charts: charts.js). See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, short, token, list, finished, runLink, when, duration, relative, badge, prio, fill, count, payloadText, data } = A;
  const matchAgent = (id) => A.matchAgent(id);

  // ----- filtering -----
  function eventMatches(ev) {
    if (!A.agent()) return true;
    const p = ev && ev.payload;
    if (p && typeof p === 'object' && (p.agent_id === A.agent() || p.agent === A.agent())) return true;
    const src = ev && ev.source ? String(ev.source) : '';
    if (src === A.agent() || src === 'agent:' + A.agent() || src.endsWith('/' + A.agent())) return true;
    return data.runs.some((r) => r.agent_id === A.agent() && r.event_id && r.event_id === ev.id);
  }

  function renderAgents() {
    // The chosen agent is shown alone; otherwise retired agents are left out (the selector still lists them).
    const agents = data.agents
      .filter((a) => A.agent() ? String(a.agent_id) === A.agent() : !a.retired)
      .sort((a, b) => String(a.agent_id).localeCompare(String(b.agent_id)));
    const rows = agents.map((a) => {
      const id = String(a.agent_id);
      const name = a.name && a.name !== id ? a.name : null;
      // Not published: its versions are drafts (registered, e.g. with + Add Agent), or it was retired.
      const pub = a.published_version
        ? el('td', { class: 'mono', text: a.published_version })
        : el('td', { class: 'muted', 'data-testid': a.retired ? null : 'agent-draft', text: 'none' + (a.latest_version ? (a.retired ? ' (latest ' : ' (draft ') + a.latest_version + ')' : '') });
      const actions = el('div', { class: 'actions' }, ['pause', 'resume', 'stop', 'start'].map((act) =>
        el('button', {
          type: 'button',
          class: act === 'stop' ? 'warn' : null,
          'data-action': act,
          text: act.charAt(0).toUpperCase() + act.slice(1),
          onclick: (e) => doAction(id, act, e.currentTarget)
        })));
      return el('tr', { 'data-testid': 'agent', 'data-agent-id': id, class: id === A.agent() ? 'sel' : null }, [
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

  function renderQueues() {
    const all = data.queues;
    const shown = all.filter((q) => matchAgent(q.agent_id));
    const rows = shown.map((q) => el('tr', { 'data-testid': 'queue', 'data-name': q.name, 'data-agent-id': q.agent_id }, [
      td(dash(q.name), 'mono'),
      td(dash(q.messages), 'num'),
      td(dash(q.consumers), 'num'),
      td(dash(q.unacked), 'num')
    ]));
    fill('queues-body', rows, 4, A.agent() ? 'No queue for this agent' : 'No queues');
    count('count-queues', shown.length, all.length);
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
          [when(next[0]), el('span', { class: 'sub', text: relative(next[0]) })]),
        el('td', null, [when(s.last_run)]),
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
      el('td', null, [when(d.received_at), d.received_at ? el('span', { class: 'sub', text: relative(d.received_at) }) : null]),
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
  // A budget applies to the A.agent() agent when it is the agent's own or a pool's the agent draws from.
  function budgetMatches(b) {
    return !A.agent() || b.scope === 'agent:' + A.agent() || list(b.agents).indexOf(A.agent()) >= 0;
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
        el('td', null, [when(b.period_end), b.period_end ? el('span', { class: 'sub', text: relative(b.period_end) }) : null]),
        td(dash(b.on_exceeded), 'mono'),
        td(Number(b.deferred_runs) > 0 ? String(b.deferred_runs) : '\u2014', Number(b.deferred_runs) > 0 ? 'num refused' : 'num')
      ]);
    });
    fill('budgets-body', rows, 8, A.agent() ? 'No budget applies to this agent' : 'No budgets declared');
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
        title: 'Show this run',
        onclick: (e) => { if (r.run_id && !e.target.closest('a')) A.go('#/runs/' + r.run_id); }
      }, [
        el('td', null, [runLink(r.run_id), r.depth ? el('span', { class: 'sub', text: 'depth ' + r.depth }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(r.agent_id) }), r.agent_version ? el('span', { class: 'sub', text: r.agent_version }) : null]),
        td(dash(r.event_type), 'mono'),
        el('td', null, [badge('run', r.state)]),
        el('td', null, [when(r.started_at)]),
        td(duration(end - start), 'num'),
        el('td', { class: 'clip', title: r.message || null }, [dash(r.message), deferredNote(r)])
      ]);
    });
    fill('runs-body', rows, 7, A.agent() ? 'No recent runs of this agent' : 'No runs yet');
    count('count-runs', shown.length, all.length);
  }

  function renderEvents() {
    const all = data.events;
    const shown = all.filter(eventMatches);
    const rows = shown.map((ev) => {
      const full = payloadText(ev.payload);
      const brief = full.length > 80 ? full.slice(0, 79) + '\u2026' : full;
      return el('tr', { 'data-testid': 'event', 'data-type': dash(ev.type), 'data-event-id': ev.id }, [
        el('td', null, [when(ev.timestamp)]),
        td(dash(ev.type), 'mono'),
        prio(ev.priority),
        td(dash(ev.source), 'mono'),
        td(brief || '\u2014', 'mono clip', full.length > 80 ? full.slice(0, 2000) : null)
      ]);
    });
    fill('events-body', rows, 5, A.agent() ? 'No recent events for this agent' : 'No events yet');
    count('count-events', shown.length, all.length);
  }

  async function doAction(agentId, action, btn) {
    if (btn) btn.disabled = true;
    try {
      const answer = await A.api('POST', '/api/agents/' + encodeURIComponent(agentId) + '/' + action, undefined, action);
      if (!answer) return;
      const body = answer.body;
      if (answer.ok) {
        A.notice('ok', (body && body.message ? body.message : action + ' accepted') + ' \u2014 ' + agentId +
          (body && body.desired_state ? ' (desired state: ' + body.desired_state + ')' : ''));
      } else {
        A.notice('error', action + ' ' + agentId + ': ' + answer.text);
      }
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  function renderAll() {
    renderAgents();
    renderQueues();
    renderSchedules();
    renderWebhooks();
    renderBudgets();
    renderRuns();
    renderEvents();
  }

  A.view('overview', { path: '' });
  A.on('agents', renderAgents);
  A.on('queues', renderQueues);
  A.on('schedules', renderSchedules);
  A.on('webhooks', renderWebhooks);
  A.on('budgets', renderBudgets);
  A.on('runs', () => { renderRuns(); if (A.agent()) renderEvents(); });
  A.on('events', renderEvents);
  A.onAgent(renderAll);
  // Keeps durations of running runs and budget periods' ends fresh.
  setInterval(() => {
    if (document.body.dataset.ready !== 'true' || A.current() !== 'overview') return;
    if (data.runs.some((r) => !finished(r.state))) renderRuns();
    if (data.budgets.length) renderBudgets();
  }, 5000);
})();
