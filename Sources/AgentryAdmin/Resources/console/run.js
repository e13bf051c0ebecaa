// A run's page (#/runs/<id>): its facts, its tree of delegated runs (with links both ways) and its feedback.
// See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, dash, short, list, finished, runLink, time, when, duration, badge, payloadText, jsonBlock, data } = A;
  const $ = (id) => document.getElementById(id);
  // How far the run tree is fetched: levels below the shown run, and runs in all.
  const TREE_DEPTH = 5;
  const TREE_NODES = 60;

  // ----- run detail -----
  // The run shown (from the address's #run=ID), the number of its latest reading, a pending re-reading, its tree.
  const detail = { id: null, seq: 0, timer: null, tree: null };

  function closeRun() {
    detail.id = null;
    detail.seq++;
    detail.tree = null;
    $('run-detail-body').replaceChildren();
  }
  // Fetches a run and, below it, its children's runs (TREE_DEPTH levels, TREE_NODES runs at most).
  async function fetchRun(id, depth, budget) {
    budget.nodes++;
    const answer = await A.api('GET', '/api/runs/' + encodeURIComponent(id), undefined, 'run ' + short(id));
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
    if (detail.id !== id) {
      // Another run: what was shown goes at once, so that nothing of it passes for this one's.
      detail.tree = null;
      $('run-detail-body').replaceChildren(el('p', { class: 'muted', text: 'Loading\u2026' }));
    }
    detail.id = id;
    $('run-detail-id').textContent = id;
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
      if (Object.keys(body).length === 0) { A.notice('error', 'Give a rating, a label or a comment.'); return; }
      submit.disabled = true;
      const answer = await A.api('POST', '/api/runs/' + encodeURIComponent(id) + '/feedback', body, 'feedback');
      submit.disabled = false;
      if (!answer) return;
      if (answer.ok && answer.body) {
        if (items.querySelector('[data-testid=feedback-none]')) items.replaceChildren();
        items.appendChild(feedbackItem(answer.body));
        form.reset();
        A.notice('ok', 'Feedback recorded on run ' + short(id));
      } else if (answer.status === 409) {
        form.hidden = true;
        status.hidden = false;
        status.setAttribute('data-testid', 'feedback-refused');
        status.textContent = 'This run takes no feedback: ' + answer.text;
      } else {
        A.notice('error', 'feedback on ' + short(id) + ': ' + answer.text);
      }
    } }, [rating, label, comment, submit]);
    A.api('GET', '/api/runs/' + encodeURIComponent(id) + '/feedback', undefined, 'feedback').then((answer) => {
      if (answer && answer.ok && answer.body) showList(list(answer.body.feedback));
      else items.replaceChildren(el('li', { class: 'refused', text: 'Cannot read the feedback: ' + (answer ? answer.text : 'no answer') }));
    });
    return el('div', { id: 'run-feedback', 'data-run-id': id }, [el('h3', { text: 'Feedback' }), items, form, status]);
  }

  A.view('run', {
    path: 'runs/:id',
    enter: (params) => {
      const id = String(params.id || '').toLowerCase();
      if (!/^[0-9a-f-]{36}$/.test(id)) {
        closeRun();
        $('run-detail-id').textContent = String(params.id || '');
        $('run-detail-body').replaceChildren(el('p', { class: 'refused', 'data-testid': 'run-error', text: 'Not a run id: ' + String(params.id || '') }));
        return;
      }
      showRun(id, false);
    },
    leave: closeRun
  });
  A.on('runs', () => { if (detail.id && (!detail.tree || treeUnfinished(detail.tree))) refreshRun(); });
  A.on('approvals', () => { if (detail.id) refreshRun(); });
  $('run-detail-close').addEventListener('click', () => { if (history.length > 1) history.back(); else A.go('#/'); });
})();
