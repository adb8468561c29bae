// The incident chart, drawn by hand as SVG: queue depth (top panel) and the User's flows per second (bottom
// panel) over the incident's life (per second around onset and detection, then per 10 s, then per minute); above them a lane per change window (hatched, labelled, suspect or ruled out), with
// suspect windows also shaded across both panels; onset and detection as labelled vertical lines. Lines differ by dash pattern as well as colour, and a table of the same data sits
// under the chart for anyone who cannot see it.

import { clock, h, num, s, time } from './dom.js';

const FLOWS = [
  // key, label, colour (Okabe-Ito, safe for colour-blind readers), dash pattern
  ['requests', 'Requests', '#0072B2', null],
  ['queued', 'Queued to User', '#E69F00', '7 4'],
  ['delivered', 'Delivered', '#009E73', '2 3'],
  ['delivery_failed', 'Delivery failed', '#D55E00', '10 3 2 3'],
];
const DEPTH_COLOUR = '#1d3557';
const MARGIN = { left: 70, right: 18 };
const LANE_H = 20;
const MAX_LANES = 5;
const TITLE_H = 26;
const DEPTH_H = 150;
const GAP = 44;
const FLOW_H = 110;
const AXIS_H = 30;

/**
 * Sums the points of every User in the series (one User for most incidents). A point covers `step_s` seconds
 * (1 around onset and detection, then 10, then 60 for a long incident): flows become per-second rates over it,
 * depth is the deepest queue in it.
 */
export function combine(series) {
  const byTs = new Map();
  for (const { points } of series || []) {
    for (const p of points) {
      const per = Math.max(p.seconds || p.step_s || 1, 1);
      const sum = byTs.get(p.ts) || { ts: p.ts, step_s: per, depth: 0, requests: 0, queued: 0, delivered: 0, delivery_failed: 0 };
      sum.depth += p.depth;
      sum.requests += p.requests / per;
      sum.queued += (p.queued_responses + p.queued_alerts) / per;
      sum.delivered += p.delivered / per;
      sum.delivery_failed += p.delivery_failed / per;
      byTs.set(p.ts, sum);
    }
  }
  return [...byTs.values()].sort((a, b) => a.ts - b.ts);
}

/** A round step giving about `count` ticks up to `max`. */
function step(max, count) {
  const raw = Math.max(max, 1) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= raw);
}

function yAxis(top, height, max, label, x0, x1) {
  const tick = step(max, 4);
  const limit = Math.ceil(Math.max(max, 1) / tick) * tick;
  const y = (v) => top + height - (v / limit) * height;
  const parts = [];
  for (let v = 0; v <= limit + tick / 2; v += tick) {
    parts.push(s('line', { x1: x0, x2: x1, y1: y(v), y2: y(v), class: 'grid' }));
    parts.push(s('text', { x: x0 - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, num(v)));
  }
  const title = s('text', { x: x0, y: top - 8, class: 'panel-title' }, label);
  return { y, parts, title };
}

/**
 * A point stands at the middle of the seconds it covers: drawn at their start, each per-minute point of a long
 * incident sat up to 30 s early, and the line stepped where the tiers meet.
 */
function line(points, x, y, key, attrs) {
  const at = (p) => x(p.ts + (Math.max(p.step_s || 1, 1) - 1) * 500);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${at(p).toFixed(1)},${y(p[key]).toFixed(1)}`).join('');
  return s('path', { d, fill: 'none', ...attrs });
}

/**
 * The figure for `incident` (with its `series`), shading `windows` ([{id, start, end, suspect}]) that overlap the
 * charted time, `width` pixels wide.
 */
export function chart(incident, windows, width) {
  const points = combine(incident.series);
  const several = (incident.series || []).length > 1;
  if (points.length < 2) {
    return h('p', { class: 'panel muted' },
      'No chart yet: the engine has not closed a second of this incident since it was stored.');
  }
  const t0 = points[0].ts;
  const t1 = points[points.length - 1].ts;
  const x0 = MARGIN.left;
  const x1 = Math.max(width, 560) - MARGIN.right;
  const x = (ts) => x0 + ((ts - t0) / Math.max(t1 - t0, 1)) * (x1 - x0);
  // Windows overlapping the charted time, suspects first; each gets a lane above the panels.
  const shown = windows
    .filter((w) => w.start <= t1 && w.end >= t0)
    .sort((a, b) => (a.suspect === b.suspect ? a.start - b.start : a.suspect ? -1 : 1));
  const lanes = shown.slice(0, MAX_LANES);
  const lanesTop = 6;
  const depthTop = lanesTop + lanes.length * LANE_H + TITLE_H;
  const flowTop = depthTop + DEPTH_H + GAP;
  const bottom = flowTop + FLOW_H;
  const height = bottom + AXIS_H;
  const maxDepth = Math.max(...points.map((p) => p.depth));
  const maxFlow = Math.max(...points.flatMap((p) => FLOWS.map(([key]) => p[key])));
  const depthAxis = yAxis(depthTop, DEPTH_H, maxDepth, `Queue depth (messages waiting)${several ? ', all Users' : ''}`, x0, x1);
  const flowAxis = yAxis(flowTop, FLOW_H, maxFlow, `Flows (messages per second)${several ? ', all Users' : ''}`, x0, x1);

  const svg = [];
  svg.push(s('title', { id: 'chart-title' }, `Queue depth and flows of ${incident.user} over the incident`));
  svg.push(s('desc', { id: 'chart-desc' }, describe(incident, points, windows)));
  svg.push(s('defs', {},
    s('pattern', { id: 'hatch-suspect', width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
      s('rect', { width: 8, height: 8, fill: '#f6e7b4' }),
      s('line', { x1: 0, y1: 0, x2: 0, y2: 8, stroke: '#c9a227', 'stroke-width': 3 })),
    s('pattern', { id: 'hatch-other', width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(-45)' },
      s('rect', { width: 8, height: 8, fill: '#eef0f3' }),
      s('line', { x1: 0, y1: 0, x2: 0, y2: 8, stroke: '#c3c8d0', 'stroke-width': 2 }))));

  // Suspect windows shade both panels (under the lines); every window gets a labelled, hatched bar in its lane.
  for (const window of lanes.filter((w) => w.suspect)) {
    const from = x(Math.max(window.start, t0));
    const width = Math.max(x(Math.min(window.end, t1)) - from, 2);
    for (const [top, panel] of [[depthTop, DEPTH_H], [flowTop, FLOW_H]]) {
      svg.push(s('rect', { x: from, y: top, width, height: panel, class: 'band band-suspect' }));
    }
  }
  if (lanes.length) {
    svg.push(s('text', { x: x0 - 6, y: lanesTop + 14, 'text-anchor': 'end', class: 'tick' }, 'Changes'));
  }
  lanes.forEach((window, lane) => {
    const from = x(Math.max(window.start, t0));
    const to = x(Math.min(window.end, t1));
    const y = lanesTop + lane * LANE_H;
    const before = window.start < t0 ? '◀ ' : '';
    const after = window.end > t1 ? ' ▶' : '';
    svg.push(s('rect', {
      x: from, y: y + 1, width: Math.max(to - from, 2), height: LANE_H - 3,
      fill: window.suspect ? 'url(#hatch-suspect)' : 'url(#hatch-other)', class: 'lane',
    }));
    svg.push(s('text', { x: from + 5, y: y + 13, class: window.suspect ? 'band-label suspect' : 'band-label' },
      `${before}${window.id}${window.suspect ? ' (suspect)' : ' (ruled out)'}${after}`));
  });
  if (shown.length > lanes.length) {
    svg.push(s('text', { x: x1, y: depthTop - TITLE_H + 14, 'text-anchor': 'end', class: 'tick' },
      `+${shown.length - lanes.length} more windows (listed below)`));
  }
  svg.push(...depthAxis.parts, ...flowAxis.parts);

  // Time axis under the bottom panel: a tick a minute for a short chart, coarser for a long one (about 12 ticks),
  // so labels never overlap.
  const tickMs = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440].map((m) => m * 60000)
    .find((ms) => (t1 - t0) / ms <= 12) || 1440 * 60000;
  const first = Math.ceil(t0 / tickMs) * tickMs;
  for (let ts = first; ts <= t1; ts += tickMs) {
    svg.push(s('line', { x1: x(ts), x2: x(ts), y1: bottom, y2: bottom + 5, class: 'axis' }));
    // A tick this close to the right edge would print over the `UTC` label (`11:0UTC` on a 2-hour chart).
    if (x(ts) > x1 - 40) continue;
    svg.push(s('text', { x: x(ts), y: bottom + 19, 'text-anchor': 'middle', class: 'tick' }, clock(ts).slice(0, 5)));
  }
  svg.push(s('text', { x: x1, y: bottom + 19, 'text-anchor': 'end', class: 'tick' }, 'UTC'));

  const depthPath = line(points, x, depthAxis.y, 'depth', { stroke: DEPTH_COLOUR, 'stroke-width': 2.5, class: 'depth-line' });
  const area = `${depthPath.getAttribute('d')}L${x(t1)},${depthTop + DEPTH_H}L${x(t0)},${depthTop + DEPTH_H}Z`;
  svg.push(s('path', { d: area, fill: DEPTH_COLOUR, 'fill-opacity': 0.12 }), depthPath);
  for (const [key, , colour, dash] of FLOWS) {
    svg.push(line(points, x, flowAxis.y, key, {
      stroke: colour, 'stroke-width': 2, 'stroke-dasharray': dash, class: `flow-line flow-${key}`,
    }));
  }

  // Onset, detection and resolution as labelled vertical lines through both panels.
  const marks = [
    [incident.onset, 'onset', '6 4'],
    [incident.detected, `detected +${Math.round((incident.detected - incident.onset) / 1000)} s`, null],
    [incident.resolved, 'resolved', '2 2'],
  ];
  const shownMarks = marks.filter(([ts]) => ts !== null && ts !== undefined && ts >= t0 && ts <= t1)
    .map(([ts, label, dash]) => ({ ts, label, dash }));
  shownMarks.forEach((mark, index) => {
    const { ts, label, dash } = mark;
    svg.push(s('line', { x1: x(ts), x2: x(ts), y1: depthTop - 4, y2: bottom, class: 'marker', 'stroke-dasharray': dash }));
    // On a long chart onset and detection are a few pixels apart and their labels printed over each other: a
    // label with the next marker closer than its own width goes left of its line, or, with no room there, is
    // said with the next one (`onset, detected +75 s`).
    const width = label.length * 7 + 8;
    const next = shownMarks[index + 1];
    const crowded = next && x(next.ts) - x(ts) < width;
    if (crowded && x(ts) - x0 < width) {
      next.label = `${label}, ${next.label}`;
      return;
    }
    svg.push(s('text', crowded
      ? { x: x(ts) - 4, y: depthTop + DEPTH_H + 16, 'text-anchor': 'end', class: 'marker-label' }
      : { x: x(ts) + 4, y: depthTop + DEPTH_H + 16, class: 'marker-label' }, label));
  });

  // Titles last, so their halo keeps them readable over the marker lines.
  svg.push(depthAxis.title, flowAxis.title);

  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
    h('li', {}, swatch(DEPTH_COLOUR, null, 3), 'Queue depth'),
    FLOWS.map(([, label, colour, dash]) => h('li', {}, swatch(colour, dash, 2), label)),
    h('li', {}, bandSwatch('hatch-suspect'), 'Suspect change window (also shaded)'),
    h('li', {}, bandSwatch('hatch-other'), 'Change window ruled out'));

  return h('figure', { class: 'chart' },
    s('svg', {
      width: x1 + MARGIN.right, height, viewBox: `0 0 ${x1 + MARGIN.right} ${height}`, role: 'img',
      'aria-labelledby': 'chart-title chart-desc', id: 'incident-chart',
    }, svg),
    legend,
    h('figcaption', {}, describe(incident, points, windows)),
    dataTable(points));
}

function swatch(colour, dash, width) {
  return s('svg', { width: 30, height: 12, 'aria-hidden': 'true', class: 'swatch' },
    s('line', { x1: 1, x2: 29, y1: 6, y2: 6, stroke: colour, 'stroke-width': width, 'stroke-dasharray': dash }));
}

function bandSwatch(pattern) {
  return s('svg', { width: 30, height: 12, 'aria-hidden': 'true', class: 'swatch' },
    s('rect', { width: 30, height: 12, fill: `url(#${pattern})`, stroke: '#999' }));
}

/** The chart in one or two sentences. */
function describe(incident, points, windows) {
  const peak = points.reduce((best, p) => (p.depth > best.depth ? p : best), points[0]);
  const at = (ts) => points.find((p) => p.ts >= ts) || points[points.length - 1];
  const covering = windows.filter((w) => w.start <= incident.onset && incident.onset <= w.end).map((w) => w.id);
  return `From ${clock(points[0].ts)} to ${clock(points[points.length - 1].ts)} UTC: ` +
    `${num(at(incident.onset).depth)} waiting at the onset (${clock(incident.onset)}), ` +
    `${num(peak.depth)} at the peak (${clock(peak.ts)}); detected at ${clock(incident.detected)}. ` +
    (covering.length > 1 ? `Change windows ${covering.join(', ')} cover the onset.`
      : covering.length ? `Change window ${covering[0]} covers the onset.` : 'No change window covers the onset.');
}

/** The same data every 10th point (10 s where the chart is per second), as a table behind a disclosure. */
function dataTable(points) {
  const rows = points.filter((p, i) => i % 10 === 0 || i === points.length - 1).map((p) => h('tr', {},
    h('th', { scope: 'row' }, time(p.ts)),
    ['depth', ...FLOWS.map(([key]) => key)].map((key) => h('td', { class: 'num' }, num(p[key])))));
  return h('details', { class: 'chart-data' }, h('summary', {}, 'Chart data as a table (every 10th point)'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Second'), h('th', { scope: 'col' }, 'Depth'),
        FLOWS.map(([, label]) => h('th', { scope: 'col' }, `${label}/s`)))),
      h('tbody', {}, rows))));
}
