// The incident page: what happened (summary and the chart over the incident's life), why (ranked suspects with every
// reason, and the nearby changes the correlator ruled out, with its reasons), what has been done (triage panel and
// timeline). It refreshes with every poll; each part redraws only when its own data changed.

import { api } from './api.js';
import { chart } from './chart.js';
import {
  category, changeLabel, delivery, deliveryMeaning, duration, failure, h, kind, num, partyName, prose, replace, spanCell,
  state as openState, status, time, user, verdict,
} from './dom.js';
import * as triage from './triage.js';

export function mount(container, id) {
  const part = (name) => h('div', { class: `part-${name}` });
  const state = {
    id,
    stopped: false,
    busy: false,
    keys: {},
    heading: h('h1', {}, `Incident ${id}`),
    summary: part('summary'),
    chart: part('chart'),
    suspects: part('suspects'),
    nearby: part('nearby'),
    timeline: part('timeline'),
    data: null,
  };
  state.triage = triage.mount(state);
  state.redraw = () => draw(state);
  state.onResize = () => {
    clearTimeout(state.resizeTimer);
    state.resizeTimer = setTimeout(() => {
      state.keys.chart = null;
      draw(state);
    }, 200);
  };
  window.addEventListener('resize', state.onResize);
  container.append(
    h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' › ', id),
    state.heading,
    state.summary,
    // What happened and what else changed on the left, why and what was done on the right; one column on a
    // narrow screen (see .incident-grid in console.css for the order then).
    h('div', { class: 'incident-grid' },
      h('div', { class: 'stack' },
        h('section', { 'aria-labelledby': 'h-chart', class: 'panel p-chart' },
          h('h2', { id: 'h-chart' }, 'Queue and flows over the incident'), state.chart),
        h('section', { 'aria-labelledby': 'h-nearby', class: 'panel p-nearby' },
          h('h2', { id: 'h-nearby' }, 'Changes nearby that were ruled out'), state.nearby)),
      h('div', { class: 'stack' },
        h('section', { 'aria-labelledby': 'h-suspects', class: 'panel p-suspects' },
          h('h2', { id: 'h-suspects' }, 'Suspects, ranked'), state.suspects),
        state.triage.panel)),
    h('section', { 'aria-labelledby': 'h-timeline', class: 'panel' },
      h('h2', { id: 'h-timeline' }, 'Timeline'), state.timeline));
  state.summary.append(h('p', { class: 'muted' }, 'Loading…'));
  return state;
}

export function stop(state) {
  state.stopped = true;
  window.removeEventListener('resize', state.onResize);
}

export async function refresh(state, overview) {
  if (state.busy) return;
  state.busy = true;
  try {
    const base = `/api/v1/incidents/${encodeURIComponent(state.id)}`;
    const [incident, triaged, nearby] = await Promise.all([
      api(base), api(`${base}/triage`), api(`${base}/nearby-changes`)]);
    if (state.stopped) return;
    state.data = { incident, triage: triaged, nearby, overview };
    draw(state);
  } catch (error) {
    if (!state.stopped && error.status !== 401) replace(state.summary, failure(error));
    if (error.status === 404 || error.status === 403) return;
    throw error;
  } finally {
    state.busy = false;
  }
}

/** Redraws each part whose data changed since it was last drawn. */
export function draw(state) {
  const data = state.data;
  if (!data) return;
  const { nearby, overview } = data;
  // The stored record is rewritten when the incident opens, resolves or is re-correlated; while it is open, the
  // overview's copy from the engine has the current peak, depth and evidence.
  const live = overview && overview.incidents.find((i) => i.id === state.id);
  const incident = live ? { ...data.incident, ...live, series: data.incident.series } : data.incident;
  const changed = (part, value) => {
    const key = JSON.stringify(value);
    if (state.keys[part] === key) return false;
    state.keys[part] = key;
    return true;
  };
  const who = overview && overview.who;
  if (changed('heading', [incident.kind, incident.user, incident.resolved])) {
    const name = partyName(incident.user);
    replace(state.heading, `${kind(incident.kind)} · `, incident.user === '*' ? 'network-wide' : incident.user,
      name ? ` ${name}` : '', ' ', openState(incident.resolved));
    document.title = `${kind(incident.kind)} ${incident.user} · Stormwatch`;
  }
  const asOf = overview && overview.as_of;
  if (changed('summary', { ...incident, series: null })) replace(state.summary, summary(incident, asOf));
  // The open-for time moves every second: update it in place rather than redraw the summary.
  const openFor = state.summary.querySelector('[data-open-for]');
  if (openFor && asOf) openFor.textContent = duration(asOf - incident.onset);
  const windows = nearby.changes.map((c) => ({
    id: c.change.id, start: Date.parse(c.change.start), end: Date.parse(c.change.end), suspect: c.rank !== null,
  }));
  const width = state.chart.clientWidth || 900;
  if (changed('chart', [incident.series, windows, width, incident.resolved])) {
    replace(state.chart, chart(incident, windows, width));
  }
  triage.draw(state, changed, who, incident);
  if (changed('nearby', nearby)) replace(state.nearby, ruledOut(nearby));
}

function summary(incident, asOf) {
  const e = incident.evidence || {};
  const items = [
    ['Verdict', verdict(incident.verdict)],
    ['User', user(incident.user, incident.users && incident.users.length)],
    ['Onset', time(incident.onset)],
    ['Detected', `${time(incident.detected)} (+${num((incident.detected - incident.onset) / 1000)} s)`],
    incident.resolved
      ? ['Resolved', `${time(incident.resolved)} after ${duration(incident.resolved - incident.onset)}`]
      : ['Open for', h('span', { 'data-open-for': '' }, asOf ? duration(asOf - incident.onset) : '-')],
    incident.depth_now !== undefined && ['Waiting now', num(incident.depth_now)],
    ['Peak depth', num(incident.peak_depth)],
    ['Depth at detection', num(e.depth_at_detection)],
    peak(incident),
    e.delivery_state && ['Delivery at detection', [delivery(e.delivery_state), h('br'), deliveryMeaning(e.delivery_state)]],
    e.failure_reason && ['Failures', `${num(e.failed_deliveries)} failed deliveries, mostly ${e.failure_reason}`],
    e.peak_backlog_age_s !== undefined && ['Oldest waiting at peak', duration(e.peak_backlog_age_s * 1000)],
    e.last_delivery && ['Last delivery before onset', time(e.last_delivery)],
    e.srvs && e.srvs.length && ['SRVs', e.srvs.join(', ')],
    e.alert_code && ['Alert code', e.alert_code],
    e.concurrent_users > 1 && ['Users hit at once', num(e.concurrent_users)],
  ].filter(Boolean);
  return h('dl', { class: 'facts' }, items.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))));
}

/** The anomalous flow's peak against its baseline, in the kind's own unit (a share for reject storms). */
function peak(incident) {
  const rate = (value) => `${num(value, 1)}/s`;
  const share = (value) => `${num(value * 100, 1)} %`;
  const [label, unit] = {
    backlog: ['Peak queued inflow', rate],
    request_storm: ['Peak request rate', rate],
    reject_storm: ['Peak reject share', share],
    alert_storm: ['Peak alert rate', rate],
  }[incident.kind] || ['Peak rate', rate];
  const ratio = incident.kind === 'backlog' ? '' : `, ×${num(incident.peak_ratio, 1)}`;
  return [label, `${unit(incident.peak_rate)} against a baseline of ${unit(incident.baseline_rate)}${ratio}`];
}

function ruledOut(nearby) {
  const others = nearby.changes.filter((c) => c.rank === null);
  if (!others.length) {
    return h('p', { class: 'muted' },
      `No other registered change has a window between ${time(nearby.from)} and ${time(nearby.to)}.`);
  }
  const rows = others.map((c) => h('tr', {},
    h('th', { scope: 'row' }, changeLabel(c.change.id, c.change.title, c.change.contact),
      h('p', { class: 'meta' }, `${category(c.change.category)} · ${status(c.change.status)} · by `, h('span', { class: 'mono' }, c.change.user))),
    h('td', {}, spanCell(Date.parse(c.change.start), Date.parse(c.change.end))),
    h('td', { class: 'num' }, c.score === null ? '-' : c.score.toFixed(2)),
    h('td', {}, h('strong', {}, prose(c.ruled_out)),
      c.reasons.length ? h('ul', { class: 'reasons' }, c.reasons.map((r) => h('li', {}, prose(r)))) : '')));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'nearby' },
    h('caption', {}, `Windows between ${time(nearby.from)} and ${time(nearby.to)}, as the correlator judged them.`),
    h('thead', {}, h('tr', {}, ['Change', 'Window', 'Score', 'Why not a suspect']
      .map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows)));
}
