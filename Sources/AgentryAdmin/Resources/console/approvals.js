// Pending approvals, with Approve and Reject, and the last few decided: on the overview (#/). See core.js.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, td, dash, short, token, list, runLink, when, relative, badge, fill, count, data } = A;
  const matchAgent = (id) => A.matchAgent(id);

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
        el('td', null, [when(a.requested_at), a.requested_at ? el('span', { class: 'sub', text: relative(a.requested_at) }) : null]),
        el('td', null, [el('span', { class: 'mono', text: dash(a.agent_id) }), el('span', { class: 'sub', text: dash(a.agent_version) })]),
        el('td', null, [el('span', { class: 'mono', text: dash(a.permission) }), el('span', { class: 'sub', text: a.requested_by === 'definition' ? 'by its definition' : 'asked by its handler' })]),
        td(dash(a.reason), 'clip', a.reason || null),
        el('td', null, [when(a.expires_at), a.expires_at ? el('span', { class: 'sub', text: relative(a.expires_at) }) : null]),
        el('td', null, [runLink(a.run_id)]),
        el('td', null, [el('div', { class: 'decide' }, [input].concat(buttons))])
      );
      return row;
    });
    fill('approvals-body', rows, 7, A.agent() ? 'No approvals waiting for this agent' : 'No approvals waiting');
    count('count-approvals', pending.length, pendingAll.length);
    if (focused) {
      const again = document.querySelector('input[data-approval-comment="' + token(focused) + '"]');
      if (again) again.focus();
    }
    const decided = all.filter((a) => a.state !== 'pending' && matchAgent(a.agent_id));
    const done = decided.map((a) => el('tr', { 'data-testid': 'decided-approval', 'data-approval-id': a.approval_id, 'data-state': dash(a.state), 'data-run-id': a.run_id }, [
      el('td', null, [when(a.decided_at), a.decided_at ? el('span', { class: 'sub', text: relative(a.decided_at) }) : null]),
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
    const answer = await A.api('POST', '/api/approvals/' + encodeURIComponent(id) + '/' + action, comment ? { comment: comment } : {}, action);
    if (answer && answer.ok && answer.body && answer.body.approval_id) {
      delete comments[id];
      // The decision shows at once; the live status confirms it.
      data.approvals = list(data.approvals).map((x) => (x.approval_id === id ? answer.body : x));
      renderApprovals();
      A.notice('ok', (action === 'approve' ? 'Approved' : 'Rejected') + ': ' + dash(a.permission) + ' for ' + dash(a.agent_id) + ' (run ' + short(a.run_id) + ')');
      return;
    }
    for (const b of row.querySelectorAll('button')) b.disabled = false;
    if (answer) A.notice('error', action + ' ' + short(id) + ': ' + answer.text);
  }

  A.on('approvals', renderApprovals);
  A.onAgent(renderApprovals);
})();
