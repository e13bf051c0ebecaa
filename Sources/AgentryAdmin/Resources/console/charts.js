// The overview's charts (#/, at the top): events per second by priority, runs finished per second by outcome, each
// agent's run duration (p50, p95), queue depths, and lock waits (how many, how long) over the last 5 minutes, hour or
// day. The history comes from GET /api/stats when the page connects and when the window changes; after that the
// status stream's `stats` messages (one a second, each with the last 3 seconds' counts and the queue depths) are
// folded in. Redrawn at most every REDRAW_MS, only while the overview shows, and only the charts whose values moved.
// Drawing: svgchart.js.
(function () {
  'use strict';
  const A = window.Agentry;
  const C = window.AgentryCharts;
  const { el } = A;
  const REDRAW_MS = 500;
  const WINDOW_KEY = 'agentry-chart-window';
  const WINDOWS = {
    '5m': { label: '5 min', seconds: 300, step: 1 },
    '1h': { label: '1 h', seconds: 3600, step: 10 },
    '1d': { label: '1 day', seconds: 86400, step: 300 }
  };
  const PRIORITIES = [['CRITICAL', '#cf222e'], ['HIGH', '#bc4c00'], ['NORMAL', '#0969da'], ['LOW', '#8c959f']];
  // Outcomes as the chart groups them: the run states at finish each one sums.
  const OUTCOMES = [
    ['succeeded', '#1a7f37', ['succeeded']],
    ['failed', '#cf222e', ['failed', 'timed_out', 'lost']],
    ['cancelled', '#8250df', ['cancelled', 'rejected', 'over_budget']],
    ['skipped', '#8c959f', ['skipped']]
  ];
  const QUEUE_COLORS = ['#0969da', '#bc4c00', '#1a7f37', '#8250df', '#cf222e', '#57606a'];
  const MAX_QUEUES = QUEUE_COLORS.length;
  const MAX_AGENTS = 8;

  let windowKey = '1h';
  try { const w = localStorage.getItem(WINDOW_KEY); if (WINDOWS[w]) windowKey = w; } catch (e) { /* default */ }
  let hist = null;           // the last GET /api/stats answer for windowKey
  let until = 0;             // what hist counted ends here (ms)
  let generation = 0;        // of history requests: a late answer for an older window is dropped
  const live = new Map();    // second start (ms) -> that second's counts, from `stats` messages
  const liveQueues = new Map(); // queue -> Map(second (ms) -> depth)
  let latestAt = 0;          // the newest live second's start (ms)
  let timer = null;
  let lastDraw = 0;
  let force = true;
  const drawn = {};          // chart name -> what it was last drawn from
  const charts = {};

  const sum = (a) => a.reduce((x, y) => x + (y || 0), 0);
  const zeros = (n) => new Array(n).fill(0);

  // ----- data -----
  async function loadHistory() {
    const g = ++generation;
    const w = WINDOWS[windowKey];
    const res = await A.api('GET', '/api/stats?window=' + w.seconds + 's&step=' + w.step + 's', undefined, 'reading the charts');
    if (g !== generation) return;
    const status = document.getElementById('charts-status');
    if (!res || !res.ok || !res.body) {
      if (status) status.textContent = 'history unavailable' + (res && res.text ? ': ' + res.text : '');
      return;
    }
    hist = res.body;
    until = Date.parse(hist.until) || 0;
    for (const s of [...live.keys()]) if (s < until) live.delete(s);
    if (status) status.textContent = '';
    force = true;
    schedule();
  }

  function onStats() {
    const m = A.data.stats;
    if (!m || !Array.isArray(m.seconds)) return;
    for (const s of m.seconds) {
      const at = Date.parse(s.at);
      if (isNaN(at)) continue;
      live.set(at, s);
      if (at > latestAt) latestAt = at;
    }
    const at = Date.parse(m.at);
    if (!isNaN(at) && m.queues && typeof m.queues === 'object') {
      for (const name of Object.keys(m.queues)) {
        if (!liveQueues.has(name)) liveQueues.set(name, new Map());
        liveQueues.get(name).set(at + 1000, Number(m.queues[name]) || 0);
      }
    }
    // Keep a day at most (the longest window).
    const oldest = latestAt - 86400 * 1000 - 300 * 1000;
    for (const s of [...live.keys()]) if (s < oldest) live.delete(s);
    for (const q of liveQueues.values()) for (const s of [...q.keys()]) if (s < oldest) q.delete(s);
    schedule();
  }

  // Every series over the window's steps: the history, then the live seconds after it.
  function compute() {
    const w = WINDOWS[windowKey];
    const stepMs = w.step * 1000;
    const n = Math.ceil(w.seconds / w.step);
    const present = Math.max(until, latestAt + 1000);
    const last = Math.floor(present / stepMs) * stepMs;
    const starts = [];
    for (let i = 0; i < n; i++) starts.push(last - (n - 1 - i) * stepMs);
    const index = new Map(starts.map((s, i) => [s, i]));
    const out = {
      starts: starts, step: w.step,
      events: Object.fromEntries(PRIORITIES.map(([p]) => [p, zeros(n)])),
      runs: Object.fromEntries(OUTCOMES.map(([o]) => [o, zeros(n)])),
      waits: zeros(n), gaveUp: zeros(n), waitSum: zeros(n), waitMax: new Array(n).fill(null), queues: {}
    };
    const add = (i, events, runs, lw) => {
      for (const [p] of PRIORITIES) out.events[p][i] += Number(events && events[p]) || 0;
      for (const [o, , states] of OUTCOMES) for (const s of states) out.runs[o][i] += Number(runs && runs[s]) || 0;
      if (!lw) return;
      out.waits[i] += Number(lw.waits) || 0;
      out.gaveUp[i] += Number(lw.gave_up) || 0;
      out.waitSum[i] += Number(lw.wait_seconds) || 0;
      if (lw.wait_seconds_max !== null && lw.wait_seconds_max !== undefined) out.waitMax[i] = Math.max(out.waitMax[i] || 0, Number(lw.wait_seconds_max));
    };
    if (hist && hist.step_seconds === w.step) {
      (hist.steps || []).forEach((iso, j) => {
        const i = index.get(Date.parse(iso));
        if (i === undefined) return;
        const pick = (o) => Object.fromEntries(Object.keys(o || {}).map((k) => [k, (o[k] || [])[j]]));
        const lw = hist.lock_waits || {};
        add(i, pick(hist.events), pick(hist.runs), {
          waits: (lw.waits || [])[j], gave_up: (lw.gave_up || [])[j], wait_seconds: (lw.wait_seconds || [])[j],
          wait_seconds_max: (lw.wait_seconds_max || [])[j]
        });
      });
      const series = (hist.queues && hist.queues.series) || {};
      for (const name of Object.keys(series)) {
        const v = (out.queues[name] = new Array(n).fill(null));
        (hist.steps || []).forEach((iso, j) => {
          const i = index.get(Date.parse(iso));
          if (i !== undefined && series[name][j] !== null && series[name][j] !== undefined) v[i] = series[name][j];
        });
      }
    }
    for (const [s, sec] of live) {
      if (s < until) continue;
      const i = index.get(Math.floor(s / stepMs) * stepMs);
      if (i !== undefined) add(i, sec.events, sec.runs, sec.lock_waits);
    }
    for (const [name, samples] of liveQueues) {
      const v = out.queues[name] || (out.queues[name] = new Array(n).fill(null));
      for (const [s, depth] of samples) {
        const i = index.get(Math.floor(s / stepMs) * stepMs);
        if (i !== undefined) v[i] = Math.max(v[i] === null ? 0 : v[i], depth);
      }
    }
    return out;
  }

  // ----- drawing -----
  function schedule() {
    if (timer) return;
    timer = setTimeout(draw, Math.max(0, REDRAW_MS - (Date.now() - lastDraw)));
  }

  function mark(c, points, total, latest) {
    c.fig.dataset.points = String(points);
    c.fig.dataset.total = String(Math.round(total * 1000) / 1000);
    c.fig.dataset.latest = String(Math.round(latest * 1000) / 1000);
  }

  // Draws chart `name` when `key` (what it is drawn from) differs from the last time.
  function redraw(name, key, paint) {
    const c = charts[name];
    if (!force && drawn[name] === key) return;
    drawn[name] = key;
    paint(c);
  }

  function draw() {
    timer = null;
    lastDraw = Date.now();
    const section = document.getElementById('charts');
    if (!section || A.current() !== 'overview' || section.clientWidth === 0) return;
    const d = compute();
    const rate = (v) => v.map((x) => x / d.step);
    const width = section.clientWidth;
    const w = WINDOWS[windowKey];
    const withSeconds = w.seconds <= 3600;
    const perStep = w.step === 1 ? 'per second' : 'per ' + (w.step >= 60 ? w.step / 60 + ' min' : w.step + ' s');

    const events = PRIORITIES.map(([p, color]) => ({ name: p, color: color, values: rate(d.events[p]) }));
    redraw('events', width + JSON.stringify([d.starts[0], events]), (c) => {
      C.line(c, { starts: d.starts, series: events, yLabel: 'events/s', withSeconds: withSeconds, unit: '/s', empty: 'no events in this window' });
      const counts = PRIORITIES.map(([p]) => d.events[p]);
      mark(c, d.starts.length, sum(counts.map(sum)), sum(counts.map((v) => v[v.length - 1])) / d.step);
    });

    const runs = OUTCOMES.map(([o, color]) => ({ name: o, color: color, values: rate(d.runs[o]) }));
    redraw('runs', width + JSON.stringify([d.starts[0], runs]), (c) => {
      C.line(c, { starts: d.starts, series: runs, yLabel: 'runs/s', withSeconds: withSeconds, unit: '/s', empty: 'no runs finished in this window' });
      const counts = OUTCOMES.map(([o]) => d.runs[o]);
      mark(c, d.starts.length, sum(counts.map(sum)), sum(counts.map((v) => v[v.length - 1])) / d.step);
    });

    const agents = ((hist && hist.durations) || []).filter((x) => A.matchAgent(String(x.agent_id)))
      .sort((a, b) => b.p95_seconds - a.p95_seconds).slice(0, MAX_AGENTS);
    redraw('durations', width + JSON.stringify(agents), (c) => {
      C.bars(c, {
        rows: agents.map((x) => ({ label: String(x.agent_id), values: [x.p50_seconds, x.p95_seconds], note: x.runs + ' runs' })),
        series: [{ name: 'p50', color: '#0969da' }, { name: 'p95', color: '#54aeff' }],
        xLabel: 'seconds', unit: ' s', empty: 'no runs finished in this window'
      });
      mark(c, agents.length, sum(agents.map((x) => x.runs)), agents.length ? agents[0].p95_seconds : 0);
    });

    const names = Object.keys(d.queues).filter((q) => A.matchAgent(q.replace(/^agentry\.agent\./, '')))
      .map((q) => [q, Math.max(0, ...d.queues[q].map((v) => v || 0))]).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, MAX_QUEUES);
    const queues = names.map(([q], k) => ({ name: q.replace(/^agentry\.agent\./, ''), color: QUEUE_COLORS[k], values: d.queues[q] }));
    redraw('queues', width + JSON.stringify([d.starts[0], queues]), (c) => {
      C.line(c, { starts: d.starts, series: queues, yLabel: 'messages', withSeconds: withSeconds, empty: 'no queue samples in this window' });
      const latest = (v) => { for (let i = v.length - 1; i >= 0; i--) if (v[i] !== null) return v[i]; return 0; };
      mark(c, sum(queues.map((q) => q.values.filter((v) => v !== null).length)), sum(queues.map((q) => sum(q.values))), sum(queues.map((q) => latest(q.values))));
    });

    const locks = [{ name: 'waited', color: '#bc4c00', values: d.waits }, { name: 'gave up', color: '#cf222e', values: d.gaveUp }];
    redraw('locks', width + JSON.stringify([d.starts[0], locks]), (c) => {
      C.line(c, { starts: d.starts, series: locks, yLabel: 'waits ' + perStep, withSeconds: withSeconds, empty: 'no lock waits in this window' });
      mark(c, d.starts.length, sum(d.waits), d.waits[d.waits.length - 1]);
    });

    const avg = d.waitSum.map((s, i) => (d.waits[i] ? s / d.waits[i] : null));
    const times = [{ name: 'mean', color: '#8250df', values: avg }, { name: 'longest', color: '#cf222e', values: d.waitMax }];
    redraw('lockwait', width + JSON.stringify([d.starts[0], times]), (c) => {
      C.line(c, { starts: d.starts, series: times, yLabel: 'seconds', withSeconds: withSeconds, unit: ' s', empty: 'no lock waits in this window' });
      mark(c, avg.filter((v) => v !== null).length, sum(d.waitSum), Math.max(0, ...d.waitMax.map((v) => v || 0)));
    });
    force = false;
  }

  // ----- the section -----
  function build() {
    const section = document.getElementById('charts');
    if (!section) return;
    const specs = [
      ['events', 'Events per second by priority', 'Events written to the event log per second, one line per priority.'],
      ['runs', 'Runs finished per second by outcome', 'Runs that finished per second: succeeded; failed (failed, timed out, lost); cancelled (cancelled, rejected, over budget); skipped.'],
      ['durations', 'Run duration by agent (p50, p95)', 'The median and 95th percentile of each agent\u2019s run durations over the window, the slowest first.'],
      ['queues', 'Queue depths', 'Messages ready in each agent\u2019s queue, the deepest first, as this endpoint sampled them since it started.'],
      ['locks', 'Lock waits', 'Lock requests that had to wait, per step, and how many of those gave up.'],
      ['lockwait', 'Lock wait time', 'How long the lock requests that waited waited: the mean and the longest per step.']
    ];
    const buttons = Object.keys(WINDOWS).map((k) => el('button', {
      type: 'button', 'data-testid': 'chart-window', 'data-window': k, 'aria-pressed': String(k === windowKey),
      text: WINDOWS[k].label, onclick: () => choose(k)
    }));
    const grid = el('div', { class: 'chart-grid' });
    for (const [name, title, description] of specs) {
      charts[name] = C.figure(name, title, description);
      grid.appendChild(charts[name].fig);
    }
    section.replaceChildren(
      el('div', { class: 'chart-head' }, [
        el('h2', { text: 'Activity' }),
        el('div', { class: 'chart-windows', role: 'group', 'aria-label': 'Chart window' }, buttons),
        el('span', { class: 'muted', id: 'charts-status', role: 'status' })
      ]),
      grid);
  }

  function choose(k) {
    if (!WINDOWS[k] || k === windowKey) return;
    windowKey = k;
    try { localStorage.setItem(WINDOW_KEY, k); } catch (e) { /* not kept */ }
    for (const b of document.querySelectorAll('[data-testid=chart-window]')) b.setAttribute('aria-pressed', String(b.dataset.window === k));
    hist = null;
    until = 0;
    force = true;
    schedule();
    loadHistory();
  }

  document.addEventListener('DOMContentLoaded', () => {
    build();
    // A (re)connection's snapshot: read the history again, which fills what was missed meanwhile.
    A.on('snapshot', loadHistory);
    A.on('stats', onStats);
    A.onAgent(() => { force = true; schedule(); });
    let resizing = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { force = true; schedule(); }, 150);
    });
    window.addEventListener('hashchange', () => { force = true; schedule(); });
  });
})();
