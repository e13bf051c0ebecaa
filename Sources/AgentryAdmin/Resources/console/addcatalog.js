// "+ Add Agent", the "From the catalog" tab: the configured catalog's bundles (GET /api/catalog?q=), one entry per
// bundle id with its versions, what it holds and asks for, and who signed it; Install (POST /api/bundles/install)
// installs the chosen version with its dependencies and shows the installer's report, or why it refused, in the
// bundle's entry. addagent.js owns the dialog. See core.js for the Agentry API.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el, dash, list } = A;
  const $ = (id) => document.getElementById(id);
  let loaded = false;
  let loading = 0;

  function status(kind, text) {
    const s = $('add-catalog-status');
    s.className = 'add-status ' + (kind || '');
    s.dataset.kind = kind || '';
    s.textContent = text || '';
  }

  // Highest version first (numeric parts compared as numbers; a pre-release below its release).
  function compareVersions(a, b) {
    const parse = (v) => {
      const [core, pre] = String(v).split('+')[0].split(/-(.*)/s);
      return { nums: core.split('.').map((n) => Number(n) || 0), pre: pre || '' };
    };
    const x = parse(a), y = parse(b);
    for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return (y.nums[i] || 0) - (x.nums[i] || 0);
    if (x.pre === y.pre) return 0;
    if (!x.pre) return -1;
    if (!y.pre) return 1;
    return x.pre < y.pre ? 1 : -1;
  }

  // The catalog's entries (one per bundle version), grouped by id, each group's versions highest first.
  function group(entries) {
    const byID = new Map();
    for (const e of entries) {
      if (!byID.has(e.id)) byID.set(e.id, []);
      byID.get(e.id).push(e);
    }
    return [...byID.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])))
      .map(([id, versions]) => ({ id: id, versions: versions.sort((a, b) => compareVersions(a.version, b.version)) }));
  }

  function permissionsText(p) {
    if (!p || typeof p !== 'object') return '';
    return Object.keys(p).sort().map((area) => area + ': ' + list(p[area]).join(', ')).join('; ');
  }
  function signerNode(s) {
    if (!s) return el('span', { class: 'refused', 'data-testid': 'bundle-signer', 'data-trusted': 'false', text: 'unsigned' });
    const who = s.comment ? s.comment + ' (' + s.fingerprint + ')' : s.fingerprint;
    return el('span', { 'data-testid': 'bundle-signer', 'data-trusted': s.trusted ? 'true' : 'false' }, [
      el('span', { class: 'mono', text: dash(who) }),
      ' ',
      s.trusted ? el('span', { class: 'badge trust-yes', text: 'trusted' }) : el('span', { class: 'badge trust-no', text: 'not trusted here' })
    ]);
  }
  function facts(e) {
    const rows = [
      ['Agents', list(e.agents).map((a) => a.id + ' ' + a.version).join(', ')],
      ['Depends on', list(e.dependencies).map((d) => d.id + ' ' + d.range).join(', ')],
      ['Permissions', permissionsText(e.permissions)],
      ['Approvals asked', list(e.approvals).join(', ')],
      ['Skills', list(e.skills).join(', ')],
      ['Author', [e.author, e.license].filter((x) => x).join(', ')],
      ['Needs Agentry', e.min_agentry_version ? '\u2265 ' + e.min_agentry_version : '']
    ];
    const items = [];
    for (const [k, v] of rows) {
      items.push(el('dt', { text: k }));
      items.push(el('dd', { 'data-fact': k.toLowerCase().replace(/ /g, '-'), class: v ? null : 'muted', text: v || 'none' }));
    }
    items.push(el('dt', { text: 'Signed by' }));
    items.push(el('dd', null, [signerNode(e.signer)]));
    return el('dl', { class: 'facts' }, items);
  }

  // One bundle id: its versions to choose from, the chosen version's facts, Publish and Install, and the report.
  function card(g) {
    const key = 'bundle-' + A.token(g.id);
    const chosen = () => g.versions.find((v) => v.version === select.value) || g.versions[0];
    const describe = (e) => [el('p', { class: 'bundle-desc', text: dash(e.description) }), facts(e)];
    const select = el('select', { id: key + '-version', 'data-testid': 'bundle-version', onchange: () => { body.replaceChildren(...describe(chosen())); } },
      g.versions.map((v) => el('option', { value: v.version, text: v.version + (v.installed ? ' (installed)' : '') })));
    const body = el('div', null, describe(g.versions[0]));
    const publish = el('input', { type: 'checkbox', id: key + '-publish', 'data-testid': 'bundle-publish' });
    const report = el('div', { class: 'install-report', role: 'status', 'aria-live': 'polite', 'data-testid': 'install-report' });
    const button = el('button', { type: 'button', class: 'ok', 'data-testid': 'bundle-install', text: 'Install' });
    button.addEventListener('click', () => install(g.id, select.value, publish.checked, button, report));
    return el('article', { class: 'bundle', 'data-testid': 'bundle', 'data-bundle-id': g.id }, [
      el('div', { class: 'bundle-head' }, [
        el('h3', { class: 'mono', text: g.id }),
        el('label', { for: key + '-version', text: 'Version' }), select,
        g.versions.some((v) => v.installed) ? el('span', { class: 'badge state-running', text: 'installed' }) : null
      ]),
      body,
      el('div', { class: 'add-row' }, [
        el('span', null, [publish, ' ', el('label', { for: key + '-publish', text: 'publish its agents after installing' })]),
        button
      ]),
      report
    ]);
  }

  function render(answer) {
    const entries = list(answer.bundles);
    const groups = group(entries);
    $('add-catalog-list').replaceChildren(...groups.map(card));
    const q = $('add-catalog-q').value.trim();
    const where = answer.catalog ? ' in ' + answer.catalog : '';
    if (!groups.length) status('', q ? 'No bundle matches \u201c' + q + '\u201d' + where + '.' : 'The catalog' + where + ' is empty.');
    else status('', groups.length + (groups.length === 1 ? ' bundle' : ' bundles') + ' (' + entries.length + (entries.length === 1 ? ' version)' : ' versions)') + where + (q ? ' matching \u201c' + q + '\u201d' : '') + '.');
  }

  async function load() {
    const ticket = ++loading;
    const q = $('add-catalog-q').value.trim();
    status('', 'Reading the catalog\u2026');
    const answer = await A.api('GET', '/api/catalog' + (q ? '?q=' + encodeURIComponent(q) : ''), undefined, 'catalog');
    if (ticket !== loading) return;
    if (!answer) { status('error', 'Nothing sent.'); return; }
    if (!answer.ok) {
      $('add-catalog-list').replaceChildren();
      status('error', answer.text);
      return;
    }
    loaded = true;
    render(answer.body || {});
  }

  // The installer's report: each bundle version installed (or found installed), dependencies first, with its agents,
  // where its files went and what it asks for; then the dependencies that registered versions met.
  function reportNodes(body) {
    const items = list(body.reports).map((r) => el('li', { 'data-testid': 'installed-bundle', 'data-bundle-id': r.bundle_id, 'data-version': r.version, 'data-outcome': r.outcome }, [
      el('span', { class: 'mono', text: r.bundle_id + ' ' + r.version }),
      ' — ' + (r.outcome === 'unchanged' ? 'installed already, unchanged' : dash(r.outcome)) + (r.previous_version ? ' (beside ' + r.previous_version + ')' : ''),
      el('span', { class: 'sub', text: 'agents: ' + (list(r.agents).map((a) => a.id + ' ' + a.version + (a.registration === 'created' ? ' (new draft)' : '')).join(', ') || 'none') }),
      list(r.published).length ? el('span', { class: 'sub', text: 'published: ' + list(r.published).map((p) => p.agent_id + ' ' + p.version).join(', ') }) : null,
      permissionsText(r.permissions) || list(r.approvals).length
        ? el('span', { class: 'sub', text: 'asks for ' + [permissionsText(r.permissions), list(r.approvals).length ? 'approval of ' + list(r.approvals).join(', ') : ''].filter((x) => x).join('; ') })
        : null,
      r.directory ? el('span', { class: 'sub mono', text: r.directory }) : null
    ]));
    const met = list(body.already_installed).map((d) => d.agent + ' ' + d.version);
    return [
      el('p', { class: 'ok-text', text: dash(body.message) }),
      items.length ? el('ul', { class: 'installed' }, items) : null,
      met.length ? el('p', { class: 'sub', text: 'Met by what is registered here: ' + met.join(', ') }) : null
    ];
  }

  async function install(id, version, publish, button, report) {
    button.disabled = true;
    report.className = 'install-report';
    report.dataset.kind = '';
    report.replaceChildren(el('p', { class: 'muted', text: 'Installing ' + id + ' ' + version + (publish ? ' and publishing it' : '') + '\u2026' }));
    try {
      const answer = await A.api('POST', '/api/bundles/install', { id: id, version: version, publish: publish }, 'install');
      if (!answer) { report.replaceChildren(el('p', { class: 'refused', text: 'Nothing sent: no admin token.' })); return; }
      if (answer.ok) {
        report.dataset.kind = 'ok';
        report.replaceChildren(...reportNodes(answer.body || {}).filter((n) => n));
        A.notice('ok', 'Installed ' + id + ' ' + version);
      } else {
        report.dataset.kind = 'error';
        report.className = 'install-report error';
        report.replaceChildren(el('p', { class: 'refused', text: 'Not installed: ' + answer.text }));
      }
    } finally {
      button.disabled = false;
    }
  }

  A.addAgentTab('catalog', () => { if (!loaded) load(); });
  document.addEventListener('DOMContentLoaded', () => {
    $('add-catalog-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
    let timer = null;
    $('add-catalog-q').addEventListener('input', () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(load, 300);
    });
  });
})();
