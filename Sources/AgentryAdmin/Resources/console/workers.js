// Workers and instances, on the overview (#/): the workers, live ones first, with their heartbeat's age (ticking),
// labels, running tasks and memory; and the agent instances, where those of stopped or lost workers are folded into
// one "N stopped instances" row that opens on click (or Enter / Space: it is a button). The status WebSocket's
// `workers` and `instances` kinds feed them. See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, short, token, list, when, fill, count, data } = A;
  const matchAgent = (id) => A.matchAgent(id);

  let workersAt = Date.now(); // when the latest workers list arrived: heartbeat ages tick from there
  let showStale = false; // whether the instances of stopped or lost workers are shown

  function mib(bytes) {
    if (typeof bytes !== 'number') return '\u2014';
    return (bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0) + ' MiB';
  }

  function age(w) {
    if (typeof w.heartbeat_age_ms !== 'number') return '\u2014';
    const ms = w.heartbeat_age_ms + Date.now() - workersAt;
    if (ms < 1000) return 'now';
    return (ms < 60000 ? Math.floor(ms / 1000) + ' s' : A.duration(ms)) + ' ago';
  }

  function live(w) { return w.alive === true; }

  function workerState(w) {
    if (live(w)) return w.status;
    return w.status === 'running' || w.status === 'stopping' ? 'silent' : w.status;
  }

  function renderWorkers() {
    const all = list(data.workers).slice().sort((a, b) => (live(b) ? 1 : 0) - (live(a) ? 1 : 0) ||
      String(b.started_at || '').localeCompare(String(a.started_at || '')));
    const liveCount = all.filter(live).length;
    const rows = all.map((w) => {
      const labels = Object.keys(w.labels || {}).sort().map((k) => k + '=' + w.labels[k]);
      return el('tr', {
        'data-testid': 'worker', 'data-worker-id': w.worker_id, 'data-alive': live(w) ? 'true' : 'false',
        'data-rss': typeof w.rss_bytes === 'number' ? w.rss_bytes : '', class: live(w) ? null : 'gone'
      }, [
        el('td', null, [el('span', { class: 'mono', text: dash(w.worker_id) }), el('span', { class: 'sub', text: 'pid ' + dash(w.pid) + ' \u00b7 ' + dash(w.version) })]),
        td(dash(w.host), 'mono'),
        el('td', null, [A.badge('worker', workerState(w))]),
        el('td', { 'data-testid': 'heartbeat-age', title: w.heartbeat_at || null }, [el('span', { class: 'age', text: age(w) }),
          live(w) ? null : el('span', { class: 'sub' }, [w.stopped_at ? 'gone ' : 'last ', when(w.stopped_at || w.heartbeat_at)])]),
        el('td', null, labels.length ? labels.map((l) => el('span', { class: 'label mono', text: l })) : [el('span', { class: 'muted', text: '\u2014' })]),
        td(dash(w.running_tasks), 'num'),
        td(mib(w.rss_bytes), 'num', typeof w.rss_bytes === 'number' ? w.rss_bytes + ' bytes' : null)
      ]);
    });
    fill('workers-body', rows, 7, 'No workers');
    count('count-workers', liveCount, all.length);
  }

  // Ages tick every second between the lists the WebSocket sends (only the cells' text changes).
  function tick() {
    if (A.current() !== 'overview') return;
    const byID = {};
    for (const w of list(data.workers)) byID[w.worker_id] = w;
    for (const row of document.querySelectorAll('#workers-body tr[data-testid=worker]')) {
      const w = byID[row.dataset.workerId];
      const cell = w && row.querySelector('.age');
      if (cell) cell.textContent = age(w);
    }
  }

  function instanceRow(i, stale) {
    return el('tr', {
      'data-testid': 'instance', 'data-agent-id': dash(i.agent_id), 'data-state': dash(i.state), 'data-instance-id': i.instance_id,
      'data-worker-id': i.worker_id, 'data-stale': stale ? 'true' : null, class: stale ? 'gone' : null
    }, [
      td(dash(i.agent_id), 'mono'),
      td(dash(i.version), 'mono'),
      td(dash(i.worker_id), 'mono'),
      el('td', null, [el('span', { class: 'badge state-' + token(i.state), text: dash(i.state), title: i.error || null })]),
      td(i.current_task ? short(i.current_task) : '\u2014', 'mono', i.current_task || null),
      td(dash(i.running_tasks), 'num'),
      td(dash(i.prefetch), 'num')
    ]);
  }

  function renderInstances() {
    // The fold's button is drawn anew: it keeps the focus it had (a click, Enter or Space on it).
    const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.testid === 'stale-instances';
    const all = list(data.instances);
    const workers = list(data.workers);
    // Without the workers list (an older endpoint), every instance counts as a live worker's.
    const liveWorkers = new Set(workers.filter(live).map((w) => w.worker_id));
    const staleOf = (i) => workers.length > 0 && !liveWorkers.has(i.worker_id);
    const shown = all.filter((i) => matchAgent(i.agent_id)).sort((a, b) =>
      String(a.agent_id).localeCompare(String(b.agent_id)) || String(a.worker_id).localeCompare(String(b.worker_id)));
    const current = shown.filter((i) => !staleOf(i));
    const stale = shown.filter(staleOf);
    const rows = current.map((i) => instanceRow(i, false));
    if (stale.length > 0) {
      const toggle = el('button', {
        type: 'button', class: 'link', 'data-testid': 'stale-instances', 'aria-expanded': showStale ? 'true' : 'false',
        'aria-controls': 'instances-body', 'data-count': stale.length,
        text: (showStale ? '\u25be ' : '\u25b8 ') + stale.length + ' stopped instance' + (stale.length === 1 ? '' : 's') +
          ' (of workers that stopped or were lost)',
        onclick: () => { showStale = !showStale; renderInstances(); }
      });
      rows.push(el('tr', { class: 'fold', 'data-testid': 'stale-instances-row' }, [el('td', { colspan: 7 }, [toggle])]));
      if (showStale) for (const i of stale) rows.push(instanceRow(i, true));
    }
    fill('instances-body', rows, 7, A.agent() ? 'No instances of this agent' : 'No instances');
    count('count-instances', current.length, shown.length);
    const again = focused && document.querySelector('[data-testid=stale-instances]');
    if (again) again.focus();
  }

  A.on('workers', () => {
    workersAt = Date.now();
    renderWorkers();
    renderInstances();
  });
  A.on('instances', renderInstances);
  A.onAgent(renderInstances);
  setInterval(tick, 1000);
})();
