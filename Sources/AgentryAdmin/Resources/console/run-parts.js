// The parts of a run's page that GET /api/runs/{id} answers beyond the run itself: its event and payload, the timing
// line published → received → started → finished, its attempts, its output and stderr (cut, with the whole one click
// away), the locks it held and the events it published. run.js puts them on the page; see core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, dash, short, list, runLink, when, duration, badge, prio, jsonBlock } = A;

  function section(title, testid, children) {
    return el('section', { class: 'run-part', 'data-testid': testid }, [el('h3', { text: title })].concat(children));
  }
  function table(headers, rows, emptyText, testid) {
    const body = rows.length ? rows : [el('tr', null, [el('td', { class: 'muted', colspan: headers.length, text: emptyText })])];
    return el('div', { class: 'tw' }, [el('table', { 'data-testid': testid || null }, [
      el('thead', null, [el('tr', null, headers.map((h) => el('th', { text: h })))]),
      el('tbody', null, body)
    ])]);
  }

  // The event: type, id, priority, source, chain, and its payload as indented JSON.
  function eventPart(r) {
    const e = r.event;
    if (!e) return section('Event', 'run-event', [el('p', { class: 'muted', text: 'The event ' + dash(r.event_id) + ' (' + dash(r.event_type) + ') is no longer kept.' })]);
    return section('Event', 'run-event', [
      el('dl', { class: 'facts' }, [
        el('dt', { text: 'Type' }), el('dd', { class: 'mono', text: dash(e.type) }),
        el('dt', { text: 'Id' }), el('dd', { class: 'mono', text: dash(e.id) }),
        el('dt', { text: 'Priority' }), el('dd', { class: 'prio-' + String(e.priority || '').toUpperCase(), text: dash(e.priority) }),
        el('dt', { text: 'Source' }), el('dd', { class: 'mono', text: dash(e.source) }),
        el('dt', { text: 'Published' }), el('dd', null, [when(e.timestamp)]),
        el('dt', { text: 'Caused by' }), el('dd', { class: 'mono', text: dash(e.causation_id) }),
        el('dt', { text: 'Correlation' }), el('dd', { class: 'mono', text: dash(e.correlation_id) })
      ]),
      jsonBlock(e.payload, 'run-payload')
    ]);
  }

  // published → received → started → finished: the moments, and a bar whose segments are the broker's wait, the
  // worker's wait and the run (as `agentry runs show` splits them).
  function timingPart(r) {
    const t = r.timings || {};
    const moments = [['published', t.published_at], ['received', t.received_at], ['started', t.started_at], ['finished', t.finished_at]];
    const segments = [['broker', t.broker_ms, 'in the broker (queue, prefetch window)'],
      ['worker', t.worker_ms, 'in the worker (agent slot, claim)'], ['run', t.run_ms, 'running']];
    const total = segments.reduce((sum, s) => sum + (s[1] > 0 ? s[1] : 0), 0);
    const bar = el('div', { class: 'timing-bar', role: 'img', 'aria-label': segments.map((s) => s[0] + ' ' + duration(s[1])).join(', ') },
      segments.filter((s) => s[1] !== null && s[1] !== undefined).map((s) => {
        const seg = el('span', { class: 'seg seg-' + s[0], title: s[2] + ': ' + duration(s[1]), 'data-segment': s[0] });
        // Each wait's share of the whole; a very short one stays visible.
        seg.style.flexGrow = String(total > 0 ? Math.max(s[1], total / 100) : 1);
        return seg;
      }));
    const line = el('ol', { class: 'timing-line' }, moments.map((m, i) => el('li', { 'data-moment': m[0] }, [
      el('span', { class: 'muted', text: m[0] }), ' ', when(m[1]),
      i > 0 && segments[i - 1][1] !== null && segments[i - 1][1] !== undefined ? el('span', { class: 'sub', text: '+' + duration(segments[i - 1][1]) }) : null
    ])));
    return section('Timing', 'run-timing', [line, bar]);
  }

  // Every run of this agent for this event: retries, redeliveries, operator's retries.
  function attemptsPart(r) {
    const rows = list(r.attempts).map((a) => {
      const start = Date.parse(a.started_at);
      const end = a.finished_at ? Date.parse(a.finished_at) : NaN;
      return el('tr', { 'data-testid': 'run-attempt', 'data-attempt': a.attempt, 'data-state': dash(a.state), 'data-run-id': a.run_id,
        class: a.run_id === r.run_id ? 'sel' : null }, [
        A.td(String(a.attempt), 'num'),
        el('td', null, [a.run_id === r.run_id ? el('span', { class: 'muted', text: 'this run' }) : runLink(a.run_id)]),
        el('td', null, [badge('run', a.state)]),
        A.td(dash(a.worker_id), 'mono'),
        el('td', null, [when(a.started_at)]),
        A.td(duration(end - start), 'num'),
        el('td', { class: 'clip', title: a.message || null, text: dash(a.message) + (a.exit_status !== null && a.exit_status !== undefined ? ' (exit ' + a.exit_status + ')' : '') })
      ]);
    });
    return section('Attempts', 'run-attempts', [table(['Try', 'Run', 'Outcome', 'Worker', 'Started', 'Duration', 'Message'], rows, 'No attempts recorded')]);
  }

  // One stream, in a scrollable <pre>; when the detail cut it, a note, a link to the whole and a button that shows it.
  function streamBlock(r, stream) {
    const field = stream === 'stdout' ? 'output' : 'stderr';
    const text = r[field];
    if (text === null || text === undefined) return null;
    const pre = el('pre', { class: 'stream', 'data-testid': 'run-' + field, tabindex: 0, text: text });
    const url = '/api/runs/' + encodeURIComponent(r.run_id) + '/output?stream=' + stream;
    const parts = [el('h4', { text: stream === 'stdout' ? 'Output' : 'Stderr' }), pre];
    if (r[field + '_cut']) {
      const more = el('button', { type: 'button', 'data-action': 'whole-' + field, text: 'Show all here', onclick: async () => {
        more.disabled = true;
        const whole = await wholeText(url);
        if (whole !== null) { pre.textContent = whole; note.remove(); } else { more.disabled = false; }
      } });
      const note = el('p', { class: 'muted', 'data-testid': 'run-' + field + '-cut' }, [
        'The first ' + text.length + ' of ' + r[field + '_size'] + ' characters. ',
        el('a', { href: url, target: '_blank', rel: 'noopener', text: 'The whole ' + field }), ' ', more]);
      parts.push(note);
    }
    return el('div', { class: 'stream-part' }, parts);
  }
  // The whole stream, with the kept token (reads need it off loopback).
  async function wholeText(url) {
    const headers = { 'Accept': 'text/plain' };
    let tok = null;
    try { tok = localStorage.getItem('agentry-token'); } catch (e) { tok = null; }
    if (tok) headers['Authorization'] = 'Bearer ' + tok;
    try {
      const res = await fetch(url, { headers: headers, credentials: 'same-origin' });
      if (res.ok) return await res.text();
      A.notice('error', 'Cannot read the whole text: HTTP ' + res.status);
    } catch (e) {
      A.notice('error', 'Cannot read the whole text: ' + (e && e.message ? e.message : e));
    }
    return null;
  }
  function outputPart(r) {
    const blocks = [streamBlock(r, 'stdout'), streamBlock(r, 'stderr')].filter((b) => b);
    const result = r.result !== null && r.result !== undefined ? [el('h4', { text: 'Result' }), jsonBlock(r.result, 'run-result')] : [];
    if (!blocks.length && !result.length) return section('Result and output', 'run-outputs', [el('p', { class: 'muted', text: 'No result, output or stderr kept.' })]);
    return section('Result and output', 'run-outputs', result.concat(blocks));
  }

  function locksPart(r) {
    const rows = list(r.locks).map((l) => el('tr', { 'data-testid': 'run-lock', 'data-resource': l.resource, 'data-ended': dash(l.ended) }, [
      A.td(dash(l.resource), 'mono'), A.td(dash(l.fencing_token), 'num'), el('td', null, [when(l.acquired_at)]),
      el('td', null, [l.released_at ? when(l.released_at) : el('span', { class: 'muted', text: 'held now' })]),
      el('td', null, [badge('lock', l.ended)])
    ]));
    return section('Locks held', 'run-locks', [table(['Resource', 'Fencing token', 'Acquired', 'Released', 'Ended'], rows, 'No locks held')]);
  }

  // The events the run published; one that names another run links to it.
  function followUpsPart(r) {
    const rows = list(r.follow_ups).map((e) => {
      const other = e.payload && typeof e.payload.run_id === 'string' && e.payload.run_id !== r.run_id ? e.payload.run_id : null;
      return el('tr', { 'data-testid': 'run-follow-up', 'data-type': e.type, 'data-event-id': e.id }, [
        el('td', null, [when(e.timestamp)]), A.td(dash(e.type), 'mono'), prio(e.priority), A.td(dash(e.source), 'mono'),
        el('td', { class: 'mono', title: e.id }, [short(e.id)]),
        el('td', null, [other ? runLink(other) : null])
      ]);
    });
    return section('Follow-up events', 'run-follow-ups', [table(['Time', 'Type', 'Priority', 'Source', 'Event', 'Run'], rows, 'No follow-up events')]);
  }

  A.runParts = { eventPart, timingPart, attemptsPart, outputPart, locksPart, followUpsPart };
})();
