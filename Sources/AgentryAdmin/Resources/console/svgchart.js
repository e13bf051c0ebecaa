// Drawing for the overview's charts (charts.js): line charts over time and a bar chart per agent, in SVG made here
// (no library), sized to their box so they hold at a phone's width. Each chart has a title (its figcaption, which
// the SVG is labelled by), axis labels, a legend with each series' latest value, and the values at a point on hover
// or, with the keyboard, on focus (arrow keys, Home, End). Offers window.AgentryCharts = { figure, line, bars }.
(function () {
  'use strict';
  const A = window.Agentry;
  const { el } = A;
  const NS = 'http://www.w3.org/2000/svg';
  const HEIGHT = 180;
  const M = { left: 46, right: 10, top: 10, bottom: 36 };

  function svg(tag, attrs, children) {
    const e = document.createElementNS(NS, tag);
    for (const k of Object.keys(attrs || {})) {
      if (k === 'text') e.textContent = String(attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
    }
    for (const c of children || []) if (c) e.appendChild(c);
    return e;
  }

  // 1, 2 or 5 times a power of ten at or above v (the top of a y axis).
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return '\u2014';
    const a = Math.abs(v);
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    if (a >= 10) return v.toFixed(1);
    return String(Number(v.toFixed(2)));
  }
  const p2 = (n) => String(n).padStart(2, '0');
  function clock(ms, seconds) {
    const d = new Date(ms);
    return p2(d.getHours()) + ':' + p2(d.getMinutes()) + (seconds ? ':' + p2(d.getSeconds()) : '');
  }
  function utc(ms) { return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'); }

  // A chart's frame, made once: <figure data-testid=chart data-chart=NAME> with its caption, plot and legend.
  function figure(name, title, description) {
    const id = 'chart-' + name;
    const plot = el('div', { class: 'chart-plot' });
    const tip = el('div', { class: 'chart-tip', role: 'status', 'aria-live': 'polite', hidden: true });
    plot.appendChild(tip);
    const fig = el('figure', { class: 'chart', 'data-testid': 'chart', 'data-chart': name, id: id }, [
      el('figcaption', { id: id + '-title', text: title }),
      el('p', { class: 'sr-only', id: id + '-desc', text: description }),
      plot,
      el('ul', { class: 'legend', 'data-testid': 'legend' })
    ]);
    return { name: name, fig: fig, plot: plot, tip: tip, cursor: null, focused: false, view: null };
  }

  function legend(c, items) {
    const ul = c.fig.querySelector('.legend');
    ul.replaceChildren(...items.map((it) => el('li', { 'data-series': it.name }, [
      el('span', { class: 'swatch', style: 'background:' + it.color, 'aria-hidden': 'true' }),
      it.name + ' ', el('b', { text: it.value })
    ])));
  }

  function showTip(c) {
    const v = c.view;
    if (!v || c.cursor === null || v.count === 0) { c.tip.hidden = true; return; }
    const i = Math.max(0, Math.min(v.count - 1, c.cursor));
    c.cursor = i;
    const lines = v.tipLines(i);
    c.tip.replaceChildren(...lines.map((l, k) => el(k === 0 ? 'strong' : 'div', { text: l })));
    c.tip.hidden = false;
    const x = v.xOf(i);
    const left = Math.min(Math.max(0, x + 8), Math.max(0, v.width - 170));
    c.tip.style.left = left + 'px';
    if (v.cursorLine) {
      v.cursorLine.setAttribute('x1', x);
      v.cursorLine.setAttribute('x2', x);
      v.cursorLine.setAttribute('visibility', 'visible');
    }
  }
  function hideTip(c) {
    c.cursor = null;
    c.tip.hidden = true;
    if (c.view && c.view.cursorLine) c.view.cursorLine.setAttribute('visibility', 'hidden');
  }

  // Hover and keyboard on the plot's SVG: the point under the pointer, or moved with the arrow keys.
  function interact(c, root, pointIndex) {
    root.addEventListener('pointermove', (e) => {
      const r = root.getBoundingClientRect();
      c.cursor = pointIndex(e.clientX - r.left, e.clientY - r.top);
      showTip(c);
    });
    root.addEventListener('pointerleave', () => { if (!c.focused) hideTip(c); });
    root.addEventListener('focus', () => { c.focused = true; if (c.cursor === null && c.view) c.cursor = c.view.count - 1; showTip(c); });
    root.addEventListener('blur', () => { c.focused = false; hideTip(c); });
    root.addEventListener('keydown', (e) => {
      if (!c.view) return;
      const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 };
      if (e.key === 'Home') c.cursor = 0;
      else if (e.key === 'End') c.cursor = c.view.count - 1;
      else if (moves[e.key]) c.cursor = (c.cursor === null ? c.view.count - 1 : c.cursor) + moves[e.key];
      else if (e.key === 'Escape') { hideTip(c); return; }
      else return;
      e.preventDefault();
      showTip(c);
    });
  }

  function frame(c, width, height) {
    const root = svg('svg', {
      width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, role: 'img', tabindex: 0,
      'aria-labelledby': 'chart-' + c.name + '-title', 'aria-describedby': 'chart-' + c.name + '-desc'
    });
    root.appendChild(svg('title', { text: c.fig.querySelector('figcaption').textContent }));
    return root;
  }

  // A line chart over time. spec: { starts: [ms], series: [{name, color, values: [number|null]}], yLabel,
  // withSeconds (tick labels with seconds), unit (after values in the tooltip), empty (text when nothing to show) }.
  function line(c, spec) {
    const width = Math.max(260, Math.floor(c.plot.clientWidth));
    const n = spec.starts.length;
    const pw = width - M.left - M.right;
    const ph = HEIGHT - M.top - M.bottom;
    let max = 0;
    for (const s of spec.series) for (const v of s.values) if (v !== null && v > max) max = v;
    const top = niceMax(max);
    const xOf = (i) => M.left + (n <= 1 ? pw : (i * pw) / (n - 1));
    const yOf = (v) => M.top + ph - (v / top) * ph;
    const root = frame(c, width, HEIGHT);
    const axes = svg('g', { class: 'axes' });
    for (const f of [0, 0.5, 1]) {
      const y = yOf(top * f);
      axes.appendChild(svg('line', { x1: M.left, x2: width - M.right, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid' }));
      axes.appendChild(svg('text', { x: M.left - 4, y: y + 4, 'text-anchor': 'end', text: fmt(top * f) }));
    }
    const ticks = n > 1 ? [0, Math.round((n - 1) / 3), Math.round((2 * (n - 1)) / 3), n - 1] : [0];
    for (const i of ticks) {
      const x = xOf(i);
      axes.appendChild(svg('line', { x1: x, x2: x, y1: M.top + ph, y2: M.top + ph + 4, class: 'axis' }));
      const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
      axes.appendChild(svg('text', { x: x, y: M.top + ph + 15, 'text-anchor': anchor, text: clock(spec.starts[i], spec.withSeconds) }));
    }
    axes.appendChild(svg('text', { x: M.left + pw / 2, y: HEIGHT - 4, 'text-anchor': 'middle', class: 'axis-label', text: 'time (local)' }));
    axes.appendChild(svg('text', {
      x: 0, y: 0, transform: 'translate(11 ' + (M.top + ph / 2) + ') rotate(-90)', 'text-anchor': 'middle', class: 'axis-label', text: spec.yLabel
    }));
    root.appendChild(axes);
    for (const s of spec.series) {
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        d += (pen ? 'L' : 'M') + xOf(i).toFixed(1) + ' ' + yOf(v).toFixed(1);
        pen = true;
      });
      if (d) root.appendChild(svg('path', { d: d, fill: 'none', stroke: s.color, 'stroke-width': 1.6, 'data-series': s.name }));
    }
    if (spec.empty && max === 0) {
      root.appendChild(svg('text', { x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle', class: 'empty-note', text: spec.empty }));
    }
    const cursorLine = svg('line', { y1: M.top, y2: M.top + ph, class: 'cursor', visibility: 'hidden' });
    root.appendChild(cursorLine);
    c.view = {
      count: n, width: width, xOf: xOf, cursorLine: cursorLine,
      tipLines: (i) => [clock(spec.starts[i], true) + ' (' + utc(spec.starts[i]) + ')']
        .concat(spec.series.map((s) => s.name + ': ' + fmt(s.values[i]) + (spec.unit || '')))
    };
    interact(c, root, (x) => (n <= 1 ? 0 : Math.round(((x - M.left) / pw) * (n - 1))));
    c.plot.replaceChildren(root, c.tip);
    legend(c, spec.series.map((s) => {
      let latest = null;
      for (let i = s.values.length - 1; i >= 0 && latest === null; i--) latest = s.values[i];
      return { name: s.name, color: s.color, value: fmt(latest) + (spec.unit || '') };
    }));
    if (c.cursor !== null) showTip(c);
  }

  // Horizontal bars, two per row (one row per item). spec: { rows: [{label, values: [number], note}],
  // series: [{name, color}], xLabel, unit, empty }.
  function bars(c, spec) {
    const width = Math.max(260, Math.floor(c.plot.clientWidth));
    const rowH = 30;
    const rows = spec.rows;
    const height = M.top + Math.max(1, rows.length) * rowH + M.bottom;
    const pw = width - 12 - M.right;
    let max = 0;
    for (const r of rows) for (const v of r.values) if (v > max) max = v;
    const top = niceMax(max);
    const xOf = (v) => 12 + (v / top) * pw;
    const root = frame(c, width, height);
    const base = M.top + Math.max(1, rows.length) * rowH;
    for (const f of [0, 0.5, 1]) {
      const x = xOf(top * f);
      root.appendChild(svg('line', { x1: x, x2: x, y1: M.top, y2: base, class: f === 0 ? 'axis' : 'grid' }));
      root.appendChild(svg('text', { x: x, y: base + 15, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle', text: fmt(top * f) }));
    }
    root.appendChild(svg('text', { x: 12 + pw / 2, y: height - 4, 'text-anchor': 'middle', class: 'axis-label', text: spec.xLabel }));
    rows.forEach((r, i) => {
      const y = M.top + i * rowH;
      const g = svg('g', { 'data-row': r.label });
      g.appendChild(svg('text', { x: 14, y: y + 11, class: 'bar-label', text: r.label }));
      r.values.forEach((v, k) => {
        g.appendChild(svg('rect', { x: 12, y: y + 14 + k * 7, width: Math.max(1, xOf(v) - 12), height: 6, fill: spec.series[k].color }));
      });
      root.appendChild(g);
    });
    if (!rows.length && spec.empty) {
      root.appendChild(svg('text', { x: 12 + pw / 2, y: M.top + rowH / 2 + 4, 'text-anchor': 'middle', class: 'empty-note', text: spec.empty }));
    }
    c.view = {
      count: rows.length, width: width, xOf: () => 12, cursorLine: null,
      tipLines: (i) => [rows[i].label].concat(spec.series.map((s, k) => s.name + ': ' + fmt(rows[i].values[k]) + (spec.unit || '')))
        .concat(rows[i].note ? [rows[i].note] : [])
    };
    if (!rows.length) c.view.count = 0;
    interact(c, root, (x, y) => Math.max(0, Math.min(rows.length - 1, Math.floor((y - M.top) / rowH))));
    c.plot.replaceChildren(root, c.tip);
    legend(c, spec.series.map((s, k) => ({
      name: s.name, color: s.color, value: rows.length ? fmt(Math.max(...rows.map((r) => r.values[k]))) + (spec.unit || '') + ' max' : '\u2014'
    })));
    if (c.cursor !== null && rows.length) showTip(c);
    else if (!rows.length) hideTip(c);
  }

  window.AgentryCharts = { figure: figure, line: line, bars: bars, fmt: fmt };
})();
