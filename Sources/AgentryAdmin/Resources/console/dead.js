// Dead letters (#/dead, #/dead?reason=R): the messages parked in agentry.dead with their counts by reason, each
// with a preview that expands to the whole body, Replay and Delete per message, and Replay all / Delete all of a
// reason (each after a confirm). The nav link carries the parked total, from the status WebSocket's `dead` kind. The
// list comes from GET /api/dead, which reads the whole queue: it is read when the view opens, after each action, and
// when the total moves while the view is open, one reading at a time. See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, list, when, fill, count, data } = A;
  const LIMIT = 200;
  const $ = (id) => document.getElementById(id);

  let reason = null; // the reason shown (null: every reason)
  let loaded = null; // the last answer of GET /api/dead
  let loading = false;
  let again = false; // a reading was asked for while one was going on
  let seenTotal = null; // the total the list was read at
  const opened = {}; // message id -> its whole body (or the error), for expanded previews

  function total() {
    const d = list(data.dead)[0];
    return d && typeof d.messages === 'number' ? d.messages : null;
  }

  function renderNav() {
    const n = total();
    const c = $('nav-dead-count');
    if (!c) return;
    c.textContent = n === null ? '' : String(n);
    c.className = 'count' + (n ? ' alert' : '');
  }

  // Every request of this view reads agentry.dead by consuming it (the messages go back after); two at once would
  // each see only part of it, so they go one after the other.
  let chain = Promise.resolve();
  function serial(fn) {
    const next = chain.then(fn, fn);
    chain = next.catch(() => null);
    return next;
  }

  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    const t = total();
    const q = new URLSearchParams({ limit: String(LIMIT) });
    if (reason !== null) q.set('reason', reason);
    const res = await serial(() => A.api('GET', '/api/dead?' + q.toString(), undefined, 'reading the dead letters'));
    loading = false;
    if (res && res.ok && res.body) {
      loaded = res.body;
      seenTotal = t;
      render();
    } else if (res) {
      $('dead-status').textContent = 'Cannot read agentry.dead: ' + res.text;
    }
    if (again) { again = false; load(); }
  }

  function reasonLabel(r) { return r === '' ? '(no reason)' : r; }

  function renderReasons() {
    const reasons = list(loaded && loaded.reasons);
    const all = el('button', {
      type: 'button', class: 'chip', 'data-testid': 'dead-reason', 'data-reason': '*', 'aria-pressed': reason === null ? 'true' : 'false',
      onclick: () => A.go(A.href('dead'))
    }, ['All ', el('span', { class: 'count', text: String(loaded ? loaded.total : 0) })]);
    const chips = reasons.map((r) => el('button', {
      type: 'button', class: 'chip', 'data-testid': 'dead-reason', 'data-reason': r.reason, 'data-count': r.count,
      'aria-pressed': reason === r.reason ? 'true' : 'false',
      onclick: () => A.go(A.href('dead', { reason: r.reason }))
    }, [reasonLabel(r.reason) + ' ', el('span', { class: 'count', text: String(r.count) })]));
    $('dead-reasons').replaceChildren(all, ...chips);
    const bulk = $('dead-bulk');
    if (reason === null) { bulk.replaceChildren(); return; }
    const n = (reasons.find((r) => r.reason === reason) || { count: 0 }).count;
    bulk.replaceChildren(
      el('button', { type: 'button', 'data-action': 'replay-all', disabled: n === 0 ? 'disabled' : null, text: 'Replay all ' + n, onclick: () => bulkAction('replay') }),
      el('button', { type: 'button', class: 'warn', 'data-action': 'delete-all', disabled: n === 0 ? 'disabled' : null, text: 'Delete all ' + n, onclick: () => bulkAction('delete') })
    );
  }

  function bodyText(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  function render() {
    if (!loaded) return;
    renderReasons();
    const messages = list(loaded.messages);
    const rows = [];
    for (const m of messages) {
      const id = String(m.id);
      const open = Object.prototype.hasOwnProperty.call(opened, id);
      const refusal = m.replay_refusal;
      rows.push(el('tr', { 'data-testid': 'dead-message', 'data-id': id, 'data-reason': m.reason }, [
        el('td', null, [el('span', { class: 'mono', text: reasonLabel(m.reason) }), m.message ? el('span', { class: 'sub clip', text: m.message, title: m.message }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(m.queue) }),
          el('span', { class: 'sub', text: '\u2192 ' + (m.original_exchange ? m.original_exchange : 'queue') + ' [' + dash(m.original_routing_key) + ']' })]),
        el('td', null, [when(m.parked_at)]),
        el('td', { class: 'preview' }, [
          el('code', { class: 'clip', text: dash(m.preview) + (m.body_size > (m.preview || '').length ? '\u2026' : '') }),
          el('button', {
            type: 'button', class: 'link', 'data-action': 'expand', 'aria-expanded': open ? 'true' : 'false',
            text: open ? 'Hide' : 'Show all (' + m.body_size + ' B)', onclick: () => toggle(id)
          })
        ]),
        el('td', null, [el('div', { class: 'actions' }, [
          el('button', {
            type: 'button', 'data-action': 'replay', disabled: refusal ? 'disabled' : null, title: refusal || 'Publish it again where it was first published',
            text: 'Replay', onclick: () => act('replay', { ids: [id] }, 'message ' + id)
          }),
          el('button', { type: 'button', class: 'warn', 'data-action': 'delete', text: 'Delete', onclick: () => confirmDelete(id) })
        ])])
      ]));
      if (open) {
        rows.push(el('tr', { class: 'detail', 'data-testid': 'dead-body', 'data-id': id }, [
          el('td', { colspan: 5 }, [el('pre', { class: 'json', text: opened[id] === null ? 'reading\u2026' : bodyText(opened[id]) })])
        ]));
      }
    }
    const inReason = reason === null ? loaded.total : ((list(loaded.reasons).find((r) => r.reason === reason) || { count: 0 }).count);
    fill('dead-body', rows, 5, reason === null ? 'Nothing is parked in agentry.dead' : 'Nothing is parked for ' + reasonLabel(reason));
    count('count-dead', messages.length, inReason);
    $('dead-status').textContent = inReason > messages.length ? 'The first ' + messages.length + ' are shown.' : '';
  }

  async function toggle(id) {
    if (Object.prototype.hasOwnProperty.call(opened, id)) { delete opened[id]; render(); return; }
    opened[id] = null;
    render();
    const res = await serial(() => A.api('GET', '/api/dead/messages/' + encodeURIComponent(id), undefined, 'reading the message'));
    if (!Object.prototype.hasOwnProperty.call(opened, id)) return;
    opened[id] = res && res.ok && res.body ? String(res.body.body) : 'Cannot read it: ' + (res ? res.text : 'not sent');
    render();
  }

  function confirmDelete(id) {
    if (!window.confirm('Delete parked message ' + id + ' for good?')) return;
    act('delete', { ids: [id] }, 'message ' + id);
  }

  function bulkAction(kind) {
    if (reason === null) return;
    const n = (list(loaded && loaded.reasons).find((r) => r.reason === reason) || { count: 0 }).count;
    const what = kind === 'replay' ? 'Replay' : 'Delete for good';
    if (!window.confirm(what + ' all ' + n + ' messages parked for ' + reasonLabel(reason) + '?')) return;
    act(kind, { reason: reason }, 'the messages parked for ' + reasonLabel(reason));
  }

  // Sends a replay or a delete and says what it did: how many, and what stayed parked and why.
  async function act(kind, body, what) {
    for (const b of document.querySelectorAll('#dead button[data-action]')) b.disabled = true;
    const res = await serial(() => A.api('POST', '/api/dead/' + kind, body, kind + ' of ' + what));
    if (res && res.ok && res.body) {
      const r = res.body;
      const missing = list(r.missing);
      if (kind === 'replay') {
        const refused = list(r.refused);
        const text = 'Replayed ' + r.replayed + (refused.length ? '; left parked ' + refused.length + ': ' + refused.map((x) => x.id + ' (' + x.reason + ')').join('; ') : '') +
          (missing.length ? '; no longer parked: ' + missing.join(', ') : '');
        A.notice(refused.length || missing.length ? 'error' : 'ok', text);
      } else {
        A.notice(missing.length ? 'error' : 'ok', 'Deleted ' + r.deleted + (missing.length ? '; no longer parked: ' + missing.join(', ') : ''));
      }
      for (const id of list(r.ids)) delete opened[id];
    } else if (res) {
      A.notice('error', kind + ' failed: ' + res.text);
    }
    await load();
  }

  A.view('dead', {
    path: 'dead',
    enter(params, query) {
      reason = query.has('reason') ? query.get('reason') : null;
      load();
    },
    leave() { loaded = null; }
  });
  A.on('dead', () => {
    renderNav();
    // The total moved while the view is open: read the list again (a replay from the CLI, a new park).
    if (A.current() === 'dead' && total() !== seenTotal) load();
  });
  A.on('snapshot', renderNav);
})();
