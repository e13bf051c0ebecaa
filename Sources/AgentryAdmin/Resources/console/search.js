// Runs (#/runs) and Events (#/events): filter and search the runs and the event log through GET /api/runs and
// GET /api/events, a page at a time ("More" follows next_cursor). The filter lives in the address
// (#/runs?agent=x&state=failed, #/events?type=alert.*&q=tv-3): a view is linkable and the back button returns to the
// filter before. Times are entered in the browser's time zone and kept in the address in UTC. See core.js.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, list, runLink, when, duration, badge, prio, payloadText } = A;
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const STATES = ['running', 'succeeded', 'failed', 'timed_out', 'skipped', 'cancelled', 'lost', 'waiting', 'resuming',
    'awaiting_approval', 'rejected', 'deferred', 'over_budget'];
  const PRIORITIES = ['critical', 'high', 'normal', 'low'];

  // The two views: their fields (in the form and the address), their API and how a row looks.
  const SPECS = {
    runs: {
      api: '/api/runs', key: 'runs', noun: 'runs',
      fields: ['agent', 'state', 'type', 'priority', 'since', 'until', 'q'],
      columns: ['Started', 'Run', 'Agent', 'Event type', 'Priority', 'State', 'Duration', 'Message'],
      row: (r) => el('tr', { 'data-testid': 'search-run', 'data-run-id': r.run_id, 'data-agent-id': r.agent_id, 'data-state': r.state }, [
        el('td', null, [when(r.started_at)]),
        el('td', null, [runLink(r.run_id)]),
        td(dash(r.agent_id), 'mono'),
        td(dash(r.event_type), 'mono'),
        prio(r.priority),
        el('td', null, [badge('run', r.state)]),
        td(r.finished_at ? duration(Date.parse(r.finished_at) - Date.parse(r.started_at)) : '\u2014', 'num'),
        td(dash(r.message), 'clip', r.message || null)
      ])
    },
    events: {
      api: '/api/events', key: 'events', noun: 'events',
      fields: ['type', 'agent', 'priority', 'since', 'until', 'q'],
      columns: ['Time', 'Type', 'Priority', 'Source', 'Run', 'Payload'],
      row: (e) => {
        const p = e.payload && typeof e.payload === 'object' ? e.payload : {};
        const text = payloadText(e.payload);
        return el('tr', { 'data-testid': 'search-event', 'data-event-id': e.id, 'data-type': e.type }, [
          el('td', null, [when(e.timestamp)]),
          td(dash(e.type), 'mono'),
          prio(e.priority),
          td(dash(e.source), 'mono'),
          el('td', null, [typeof p.run_id === 'string' ? runLink(p.run_id) : el('span', { class: 'muted', text: '\u2014' })]),
          td(text.length > 160 ? text.slice(0, 159) + '\u2026' : text, 'clip mono', text)
        ]);
      }
    }
  };
  const LABELS = { agent: 'Agent', state: 'State', type: 'Type', priority: 'Priority', since: 'From', until: 'To', q: 'Payload text' };
  const HINTS = { type: 'alert.blackscreen or alert.*', agent: 'agent id', q: 'text in the payload' };

  // ----- times: the form shows local time, the address and the API take UTC -----
  const p2 = (n) => String(n).padStart(2, '0');
  function localInput(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + 'T' + p2(d.getHours()) + ':' + p2(d.getMinutes()) +
      (d.getSeconds() ? ':' + p2(d.getSeconds()) : '');
  }
  function utcFromInput(value) {
    if (!value) return '';
    const d = new Date(value); // a datetime-local value has no zone: the browser's
    return isNaN(d.getTime()) ? '' : d.toISOString();
  }

  // ----- the form -----
  function field(name, id) {
    let input;
    if (name === 'state' || name === 'priority') {
      const values = name === 'state' ? STATES : PRIORITIES;
      input = el('select', { id: id, name: name }, [el('option', { value: '', text: 'any' })].concat(values.map((v) => el('option', { value: v, text: v }))));
    } else if (name === 'since' || name === 'until') {
      input = el('input', { id: id, name: name, type: 'datetime-local', step: 1 });
    } else {
      input = el('input', { id: id, name: name, type: 'search', placeholder: HINTS[name] || '', autocomplete: 'off', spellcheck: 'false', maxlength: name === 'q' ? 200 : 255 });
      if (name === 'agent') input.setAttribute('list', 'search-agents');
      if (name === 'q') input.setAttribute('data-search', '');
    }
    return el('div', { class: 'field' }, [el('label', { for: id, text: LABELS[name] }), input]);
  }

  // Per view: its elements, the query shown, the cursor of the next page, the number of the latest request.
  const state = {};

  function build(name) {
    const spec = SPECS[name];
    const section = $('search-' + name);
    const form = el('form', { class: 'search', role: 'search', 'aria-label': 'Filter ' + spec.noun, 'data-testid': 'search-form', onsubmit: (e) => { e.preventDefault(); submit(name); } },
      spec.fields.map((f) => field(f, 'search-' + name + '-' + f)).concat([
        el('div', { class: 'field buttons' }, [
          el('button', { type: 'submit', class: 'ok', text: 'Search' }),
          el('button', { type: 'button', text: 'Clear', onclick: () => A.go(A.href(name)) })
        ])
      ]));
    const body = el('tbody', { id: 'search-' + name + '-body' });
    const status = el('p', { class: 'search-status muted', role: 'status', 'aria-live': 'polite', 'data-testid': 'search-status' });
    const more = el('button', { type: 'button', class: 'more', 'data-testid': 'search-more', hidden: true, text: 'More', onclick: () => load(name, true) });
    section.replaceChildren(
      el('h2', null, [spec.noun === 'runs' ? 'Runs' : 'Events', el('span', { class: 'count', id: 'count-search-' + name })]),
      form,
      el('div', { class: 'tw' }, [el('table', null, [el('thead', null, [el('tr', null, spec.columns.map((c) => el('th', { text: c })))]), body])]),
      status, more);
    state[name] = { form: form, body: body, status: status, more: more, query: new URLSearchParams(), cursor: null, seq: 0, shown: 0 };
  }

  function submit(name) {
    const s = state[name];
    const query = new URLSearchParams();
    for (const f of SPECS[name].fields) {
      const input = s.form.elements[f];
      let v = input ? String(input.value).trim() : '';
      if (f === 'since' || f === 'until') v = utcFromInput(v);
      if (v) query.set(f, v);
    }
    A.go(A.href(name, query));
  }

  function fillForm(name, query) {
    const s = state[name];
    for (const f of SPECS[name].fields) {
      const input = s.form.elements[f];
      if (!input) continue;
      const v = query.get(f) || '';
      input.value = f === 'since' || f === 'until' ? (v ? localInput(v) : '') : v;
    }
  }

  // The first page for the query in the address, or (more) the next one.
  async function load(name, more) {
    const spec = SPECS[name];
    const s = state[name];
    const seq = ++s.seq;
    const params = new URLSearchParams();
    for (const f of spec.fields) if (s.query.get(f)) params.set(f, s.query.get(f));
    params.set('limit', String(PAGE));
    if (more && s.cursor) params.set('cursor', s.cursor);
    s.more.disabled = true;
    s.status.textContent = more ? 'Loading more\u2026' : 'Searching\u2026';
    const answer = await A.api('GET', spec.api + '?' + params.toString(), undefined, spec.noun);
    if (seq !== s.seq || A.current() !== name) return;
    s.more.disabled = false;
    if (!answer || !answer.ok || !answer.body) {
      s.status.textContent = 'Not read: ' + (answer ? answer.text : 'no answer');
      s.status.className = 'search-status error';
      if (!more) { s.body.replaceChildren(); s.shown = 0; }
      s.more.hidden = true;
      return;
    }
    const items = list(answer.body[spec.key]);
    const rows = items.map(spec.row);
    if (more) s.body.append(...rows);
    else s.body.replaceChildren(...rows);
    s.shown = (more ? s.shown : 0) + items.length;
    s.cursor = answer.body.next_cursor || null;
    s.more.hidden = !s.cursor;
    s.status.className = 'search-status muted';
    const filtered = spec.fields.some((f) => s.query.get(f));
    s.status.textContent = s.shown === 0 ? (filtered ? 'No ' + spec.noun + ' match.' : 'No ' + spec.noun + ' yet.') :
      s.shown + ' ' + spec.noun + ' shown, newest first' + (s.cursor ? '; More shows older ones.' : '; that is all.');
    const c = $('count-search-' + name);
    if (c) c.textContent = String(s.shown) + (s.cursor ? '+' : '');
    if (!more && s.shown === 0) s.body.replaceChildren(el('tr', null, [el('td', { class: 'empty', colspan: spec.columns.length, text: filtered ? 'No ' + spec.noun + ' match these filters' : 'No ' + spec.noun + ' yet' })]));
  }

  function agentsList() {
    const dl = $('search-agents');
    if (!dl) return;
    const ids = list(A.data.agents).map((a) => String(a.agent_id)).sort();
    dl.replaceChildren(...ids.map((id) => el('option', { value: id })));
  }

  for (const name of Object.keys(SPECS)) {
    A.view(name, {
      path: name,
      enter: (params, query) => {
        if (!state[name]) build(name);
        const s = state[name];
        s.query = query;
        s.cursor = null;
        fillForm(name, query);
        load(name, false);
      },
      leave: () => { if (state[name]) state[name].seq++; }
    });
  }

  document.addEventListener('DOMContentLoaded', () => {
    A.on('agents', agentsList);
    // Choosing an agent in the header while a search is shown narrows it to that agent.
    A.onAgent((id) => {
      const name = A.current();
      if (!SPECS[name] || !state[name]) return;
      const query = new URLSearchParams(state[name].query);
      if (id) query.set('agent', id);
      else query.delete('agent');
      A.go(A.href(name, query));
    });
  });
})();
