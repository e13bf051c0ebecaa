// The overview's Locks panel (#/), and people taking devices: who holds each resource (an agent's run, a person, the
// system), until when, the waiters in the order they will be served, a "Take a device" form and "Give back" on
// people's holds. A person's hold is kept by the workers' hold keeper (docs/locks.md): POST
// /api/locks/{resource}/acquire and /give-back. See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, list, prio, fill, count, when, relative, data } = A;

  const DURATIONS = [['15 min', 900], ['30 min', 1800], ['1 h', 3600], ['2 h', 7200], ['4 h', 14400], ['8 h', 28800], ['1 day', 86400]];
  const WAITS = [['no wait', 0], ['1 min', 60], ['10 min', 600], ['1 h', 3600]];
  const PRIORITIES = ['critical', 'high', 'normal', 'low'];
  const PEOPLE = ['user', 'system'];

  // `device:tv-1` stays readable in the path; anything else a resource id may hold is escaped.
  const lockPath = (resource, action) => '/api/locks/' + encodeURIComponent(resource).replace(/%3A/gi, ':') + '/' + action;

  async function giveBack(resource, owner, ownerType, button) {
    if (button) button.disabled = true;
    try {
      const res = await A.api('POST', lockPath(resource, 'give-back'), { owner: owner, owner_type: ownerType }, 'giving back ' + resource);
      if (!res) return;
      if (res.ok) A.notice('ok', owner + ' gave back ' + resource);
      else A.notice('error', 'Cannot give back ' + resource + ': ' + res.text);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function giveBackButton(resource, owner, ownerType, label) {
    const b = el('button', {
      type: 'button', class: 'small', 'data-action': 'give-back', 'data-owner': owner, text: label,
      title: 'POST /api/locks/' + resource + '/give-back as ' + owner
    });
    b.addEventListener('click', () => giveBack(resource, owner, ownerType, b));
    return b;
  }

  function ownerCell(owner, ownerType) {
    return el('td', { 'data-testid': 'lock-owner' }, [
      el('span', { class: 'mono', text: dash(owner) }),
      ownerType ? el('span', { class: 'sub owner-' + ownerType, 'data-testid': 'lock-owner-type', text: ownerType }) : null
    ]);
  }

  function renderLocks() {
    const all = data.locks;
    const rows = all.map((l) => {
      const person = PEOPLE.indexOf(l.owner_type) >= 0 && l.status === 'locked';
      const waiters = list(l.waiters).slice().sort((a, b) => (a.position || 0) - (b.position || 0));
      const w = waiters.length === 0 ? el('span', { class: 'muted', text: 'none' }) :
        el('ol', { class: 'waiters' }, waiters.map((x) => el('li', { 'data-testid': 'lock-waiter', 'data-owner': dash(x.owner), 'data-owner-type': dash(x.owner_type) }, [
          el('span', { class: 'mono', text: dash(x.owner) }), ' ',
          x.owner_type && x.owner_type !== 'agent' ? el('span', { class: 'sub-inline', text: x.owner_type + ' ' }) : null,
          el('span', { class: 'prio-' + String(x.priority || '').toUpperCase(), text: '(' + dash(x.priority && String(x.priority).toUpperCase()) + ')' }),
          PEOPLE.indexOf(x.owner_type) >= 0 ? giveBackButton(l.resource, x.owner, x.owner_type, 'Withdraw') : null
        ])));
      return el('tr', {
        'data-testid': 'lock', 'data-resource': dash(l.resource), 'data-owner': dash(l.owner), 'data-owner-type': dash(l.owner_type)
      }, [
        td(dash(l.resource), 'mono'),
        ownerCell(l.owner, l.owner_type),
        prio(l.priority),
        td(dash(l.fencing_token), 'num mono'),
        el('td', { 'data-testid': 'lock-until' }, [when(l.expires_at), l.expires_at ? el('span', { class: 'sub', text: relative(l.expires_at) }) : null]),
        el('td', null, [w]),
        el('td', null, [person ? giveBackButton(l.resource, l.owner, l.owner_type, 'Give back') : null])
      ]);
    });
    fill('locks-body', rows, 7, 'No locks held');
    count('count-locks', rows.length, all.length);
  }

  async function take(ev) {
    ev.preventDefault();
    const form = ev.target;
    const resource = form.elements.resource.value.trim();
    if (!/^[A-Za-z0-9_.-]+:.+$/.test(resource)) {
      A.notice('error', 'Name the resource as <type>:<id>, e.g. device:tv-1');
      return;
    }
    const body = {
      for_seconds: Number(form.elements.duration.value),
      wait_seconds: Number(form.elements.wait.value),
      priority: form.elements.priority.value
    };
    const owner = form.elements.owner.value.trim();
    if (owner) body.owner = owner;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const res = await A.api('POST', lockPath(resource, 'acquire'), body, 'taking ' + resource);
      if (!res) return;
      const h = res.body || {};
      if (res.status === 200) {
        A.notice('ok', resource + ' held by ' + h.owner_type + ' ' + h.owner + ' until ' + A.time(h.hold_until) + ' (' + relative(h.hold_until) + ')');
      } else if (res.status === 202) {
        A.notice('ok', h.owner + ' waits for ' + resource + ' (until ' + A.time(h.wait_until) + '); the Locks panel shows the queue');
      } else {
        A.notice('error', 'Cannot take ' + resource + ': ' + res.text);
      }
    } finally {
      button.disabled = false;
    }
  }

  function select(name, options, chosen, label) {
    return el('label', null, [label + ' ', el('select', { name: name, 'data-testid': 'take-' + name },
      options.map(([text, value]) => {
        const o = el('option', { value: String(value), text: text });
        if (value === chosen) o.selected = true;
        return o;
      }))]);
  }

  // The form sits above the panel's table, built once.
  function takeForm() {
    const section = document.getElementById('locks');
    if (!section || document.getElementById('take-device')) return;
    const form = el('form', { id: 'take-device', class: 'take-device', 'data-testid': 'take-device', onsubmit: take }, [
      el('label', null, ['Take a device ', el('input', {
        name: 'resource', 'data-testid': 'take-resource', placeholder: 'device:tv-1', required: 'required', autocomplete: 'off', size: 18
      })]),
      select('duration', DURATIONS, 3600, 'for'),
      select('priority', PRIORITIES.map((p) => [p, p]), 'normal', 'priority'),
      select('wait', WAITS, 0, 'wait'),
      el('label', null, ['as ', el('input', {
        name: 'owner', 'data-testid': 'take-owner', placeholder: 'your token\u2019s name', autocomplete: 'off', size: 14,
        title: 'The person who holds it; empty: the name of the admin token this page sends'
      })]),
      el('button', { type: 'submit', 'data-action': 'take', text: 'Take' })
    ]);
    const table = section.querySelector('.tw');
    section.insertBefore(form, table);
  }

  A.on('locks', renderLocks);
  document.addEventListener('DOMContentLoaded', () => { takeForm(); renderLocks(); });
  // Keeps the "in 12m 03s" of each hold fresh.
  setInterval(() => {
    if (document.body.dataset.ready !== 'true' || A.current() !== 'overview') return;
    if (data.locks.length) renderLocks();
  }, 5000);
})();
