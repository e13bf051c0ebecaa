// "+ Add Agent" (the Agents section's button): a modal <dialog> with two tabs. "Paste or upload YAML" (this file)
// checks a definition (POST /api/agents/validate) or registers it as a draft (POST /api/agents/register), and shows
// each problem against its line: the text with line numbers, the line marked, the message under it, and a list whose
// entries put the textarea's caret on the problem. "From the catalog" is addcatalog.js, which registers itself with
// A.addAgentTab('catalog', enter). See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, dash } = A;
  const $ = (id) => document.getElementById(id);
  // The server takes bodies up to 1 MiB.
  const MAX_BYTES = 1 << 20;
  const tabEnter = {};
  let opener = null;

  // ----- the dialog and its tabs -----
  // `from`: where the focus goes back to on closing (default: what has it now).
  function open(tab, from) {
    const dialog = $('add-agent');
    opener = from || document.activeElement;
    if (!dialog.open) dialog.showModal();
    select(tab || 'yaml', true);
  }
  function close() {
    const dialog = $('add-agent');
    if (dialog.open) dialog.close();
  }
  function tabs() { return [...document.querySelectorAll('#add-agent [role=tab]')]; }
  function select(name, focus) {
    for (const t of tabs()) {
      const on = t.id === 'add-tab-' + name;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) {
      const first = name === 'yaml' ? $('add-yaml') : $('add-catalog-q');
      if (first) first.focus();
    }
    if (tabEnter[name]) {
      try { tabEnter[name](); } catch (err) { console.error('console: add agent tab ' + name, err); }
    }
  }
  // Arrow keys, Home and End move between the tabs (the WAI-ARIA tabs pattern); Enter and Space choose by click.
  function tabKeys(e) {
    const all = tabs();
    const i = all.indexOf(e.target);
    let next = -1;
    if (e.key === 'ArrowRight') next = (i + 1) % all.length;
    else if (e.key === 'ArrowLeft') next = (i - 1 + all.length) % all.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = all.length - 1;
    if (next < 0) return;
    e.preventDefault();
    all[next].focus();
    select(all[next].id.replace('add-tab-', ''), false);
  }

  // ----- the text: lines and offsets -----
  function lines(text) { return text.split(/\r\n|\r|\n/); }
  // The offset in `text` of 1-based line and column (column past the line's end: its end).
  function offset(text, line, column) {
    const all = lines(text);
    let at = 0;
    const n = Math.max(1, Math.min(line, all.length));
    for (let i = 0; i < n - 1; i++) at += all[i].length + 1;
    return at + Math.max(0, Math.min((column || 1) - 1, all[n - 1].length));
  }
  // Puts the caret on a problem's line (at its column) and scrolls the textarea to show it.
  function goTo(line, column) {
    const area = $('add-yaml');
    const at = offset(area.value, line, column);
    area.focus();
    area.setSelectionRange(at, at);
    const height = parseFloat(getComputedStyle(area).lineHeight) || 16;
    area.scrollTop = Math.max(0, (line - 1) * height - area.clientHeight / 3);
  }

  // ----- results -----
  function status(kind, text) {
    const s = $('add-yaml-status');
    s.className = 'add-status ' + (kind || '');
    s.dataset.kind = kind || '';
    s.textContent = text || '';
  }
  function problemText(p) {
    return (p.path ? p.path + ': ' : '') + dash(p.message) + (p.suggestion ? '; ' + p.suggestion : '');
  }
  function where(p) {
    if (!p.line) return 'The whole definition';
    return 'Line ' + p.line + (p.column ? ', column ' + p.column : '');
  }
  // The list of problems (each puts the caret on its line) and the text as checked, numbered, with each problem's
  // line marked and its messages under it.
  function showProblems(text, problems) {
    const list = el('ol', { class: 'problems', 'data-testid': 'add-problems' }, problems.map((p) =>
      el('li', null, [el('button', {
        type: 'button', class: 'link', 'data-testid': 'add-problem', 'data-line': p.line || '', 'data-column': p.column || '',
        title: p.line ? 'Put the cursor on line ' + p.line : null,
        onclick: () => { if (p.line) goTo(p.line, p.column); }
      }, [el('strong', { text: where(p) }), ': ' + problemText(p)])])));
    const byLine = {};
    for (const p of problems) if (p.line) (byLine[p.line] = byLine[p.line] || []).push(p);
    const rows = lines(text).map((line, i) => {
      const n = i + 1;
      const here = byLine[n] || [];
      const notes = here.map((p) => el('div', { class: 'line-problem', 'data-testid': 'line-problem', 'data-line': n }, [
        p.column ? el('span', { class: 'caret', 'aria-hidden': 'true', text: ' '.repeat(Math.max(0, p.column - 1)) + '^' }) : null,
        el('span', { class: 'msg', text: problemText(p) })
      ]));
      return el('tr', { 'data-line': n, class: here.length ? 'bad' : null }, [
        el('td', { class: 'ln', 'aria-label': here.length ? 'line ' + n + ', with a problem' : null, text: String(n) }),
        el('td', null, [el('code', { text: line || ' ' })].concat(notes))
      ]);
    });
    const listing = el('div', { class: 'listing', 'data-testid': 'add-listing', tabindex: '0', 'aria-label': 'The definition as checked, with line numbers' }, [
      el('table', null, [el('tbody', null, rows)])
    ]);
    $('add-yaml-result').replaceChildren(el('h3', { text: problems.length === 1 ? '1 problem' : problems.length + ' problems' }), list,
      el('h3', { text: 'As checked' }), listing);
    const first = listing.querySelector('tr.bad');
    if (first) listing.scrollTop = Math.max(0, first.offsetTop - listing.clientHeight / 3);
  }
  function clearResult() {
    $('add-yaml-result').replaceChildren();
    delete $('add-yaml-result').dataset.stale;
  }

  // ----- check and register -----
  let busy = false;
  async function send(register) {
    if (busy) return;
    const text = $('add-yaml').value;
    if (!text.trim()) { status('error', 'Paste a definition or read a file first.'); return; }
    if (new Blob([text]).size > MAX_BYTES) { status('error', 'The definition is larger than 1 MiB, the most the admin API takes.'); return; }
    busy = true;
    for (const id of ['add-yaml-check', 'add-yaml-register']) $(id).disabled = true;
    status('', register ? 'Registering\u2026' : 'Checking\u2026');
    try {
      const path = register ? '/api/agents/register' : '/api/agents/validate';
      const answer = await A.api('POST', path, text, register ? 'registration' : 'check', 'application/yaml');
      if (!answer) { status('error', 'Nothing sent: no admin token.'); return; }
      const body = answer.body || {};
      const problems = body.error && Array.isArray(body.error.problems) ? body.error.problems : null;
      if (answer.ok) {
        clearResult();
        if (register) {
          status('ok', dash(body.message) + ': ' + dash(body.agent_id) + ' ' + dash(body.version) +
            ' is a draft. It is listed under Agents; publish it to run it (agentry agents publish ' + dash(body.agent_id) + ').');
          A.notice('ok', 'Registered ' + dash(body.agent_id) + ' ' + dash(body.version) + ' as a draft');
        } else {
          status(body.outcome === 'conflict' ? 'error' : 'ok', dash(body.message));
        }
      } else if (answer.status === 422 && problems) {
        status('error', (problems.length === 1 ? 'One problem' : problems.length + ' problems') + ': nothing was registered.');
        showProblems(text, problems);
      } else {
        clearResult();
        status('error', (register ? 'Not registered: ' : 'Not checked: ') + answer.text);
      }
    } finally {
      busy = false;
      for (const id of ['add-yaml-check', 'add-yaml-register']) $(id).disabled = false;
    }
  }

  // A file's text goes into the textarea (it is sent from there, as pasted text is).
  async function readFile(input) {
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > MAX_BYTES) { status('error', file.name + ' is larger than 1 MiB, the most the admin API takes.'); return; }
    try {
      const text = await file.text();
      $('add-yaml').value = text;
      clearResult();
      status('', 'Read ' + file.name + ' (' + lines(text).length + ' lines). Check it, or register it as a draft.');
    } catch (e) {
      status('error', 'Cannot read ' + file.name + ': ' + (e && e.message ? e.message : e));
    } finally {
      input.value = '';
    }
  }

  A.addAgentTab = (name, enter) => { tabEnter[name] = enter; };
  A.openAddAgent = open;

  document.addEventListener('DOMContentLoaded', () => {
    const dialog = $('add-agent');
    $('add-agent-open').addEventListener('click', (e) => open('yaml', e.currentTarget));
    dialog.querySelector('[data-close]').addEventListener('click', close);
    // Escape closes it (the browser's cancel does so for a modal dialog; this covers keys sent to the dialog by script).
    dialog.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !e.defaultPrevented) { e.preventDefault(); close(); }
    });
    // A click on the backdrop (outside the dialog's box) closes it too.
    dialog.addEventListener('click', (e) => { if (e.target === dialog) close(); });
    // Focus goes back to what opened it.
    dialog.addEventListener('close', () => {
      if (opener && document.contains(opener) && typeof opener.focus === 'function') opener.focus();
      opener = null;
    });
    for (const t of tabs()) {
      t.addEventListener('click', () => select(t.id.replace('add-tab-', ''), false));
      t.addEventListener('keydown', tabKeys);
    }
    $('add-yaml-check').addEventListener('click', () => send(false));
    $('add-yaml-form').addEventListener('submit', (e) => { e.preventDefault(); send(true); });
    $('add-yaml-file').addEventListener('change', (e) => readFile(e.target));
    $('add-yaml').addEventListener('input', () => {
      const result = $('add-yaml-result');
      if (result.firstChild && !result.dataset.stale) {
        result.dataset.stale = 'true';
        status('', 'The text changed since it was checked: Check again.');
      }
    });
  });
})();
