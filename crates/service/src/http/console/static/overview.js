// The overview: every open incident, newest first, with User, kind, onset, duration, current and peak depth,
// verdict, top suspect and whether someone has acknowledged it; then the Users in trouble. It redraws from each
// poll of /api/v1/console/overview and only when something it shows has changed.

import { changeLabel, delivery, duration, h, kind, num, replace, time, user, verdict } from './dom.js';

export function mount(container) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading open incidents…'));
  container.append(h('h1', {}, 'Open incidents'), body);
  return { body, shown: null };
}

export async function refresh(state, overview) {
  if (!overview) return;
  // The event time moves every second; compare the rest so an unchanged list is left alone (and keeps focus).
  const key = JSON.stringify([overview.incidents, overview.users_in_trouble]);
  if (key === state.shown) {
    updateDurations(state, overview);
    return;
  }
  state.shown = key;
  replace(state.body, incidents(overview), troubled(overview));
}

/** Only the duration cells move while nothing else changes. */
function updateDurations(state, overview) {
  for (const incident of overview.incidents) {
    const cell = state.body.querySelector(`[data-duration="${CSS.escape(incident.id)}"]`);
    if (cell) cell.textContent = `for ${duration((overview.as_of || incident.onset) - incident.onset)}`;
  }
}

/** The clock alone when the onset falls on the current event-time day (the usual case), the full time otherwise. */
function onset(ms, asOf) {
  const full = time(ms, { zone: false });
  const today = asOf && time(asOf, { zone: false }).slice(0, 10) === full.slice(0, 10);
  return h('time', { datetime: new Date(ms).toISOString(), title: `${full} UTC` }, today ? full.slice(11) : full);
}

function topSuspect(incident) {
  const top = incident.suspects[0];
  if (!top) return h('span', { class: 'muted' }, 'none registered');
  const judged = incident.judgements[top.change];
  return h('span', {},
    changeLabel(top.change, top.title, top.contact),
    h('span', { class: 'score' }, ` score ${top.score.toFixed(2)}`),
    judged ? h('span', { class: `judged judged-${judged}` }, ` (${judged} by operator)`) : '');
}

function acknowledgement(incident) {
  const ack = incident.acknowledged;
  if (!ack) {
    return h('span', { class: 'badge ack-missing' }, h('span', { 'aria-hidden': 'true' }, '⚠'), ' Not acknowledged');
  }
  return h('span', { class: 'badge ack-done', title: `at ${time(ack.at_ms)}` },
    h('span', { 'aria-hidden': 'true' }, '✓'), ` Acknowledged by ${ack.actor}`,
    incident.notes ? ` · ${incident.notes} note${incident.notes === 1 ? '' : 's'}` : '');
}

function incidents(overview) {
  const list = overview.incidents;
  if (!list.length) {
    return h('p', { class: 'panel calm' }, h('span', { 'aria-hidden': 'true' }, '✓ '),
      `No open incidents. ${num(overview.network.users)} Users reporting.`);
  }
  // Duration sits under the onset and the peak under the depth now, so the verdict, top suspect and triage columns
  // fit a 1024 px laptop without scrolling.
  const rows = list.map((incident) => h('tr', { 'data-incident': incident.id },
    h('th', { scope: 'row' },
      h('a', { href: `#/incident/${encodeURIComponent(incident.id)}`, 'data-key': `incident-${incident.id}` },
        incident.id)),
    h('td', { class: 'who' }, user(incident.user, incident.users && incident.users.length)),
    h('td', { class: 'kind' }, kind(incident.kind)),
    h('td', {}, onset(incident.onset, overview.as_of), h('br'),
      h('span', { class: 'meta', 'data-duration': incident.id },
        `for ${duration((overview.as_of || incident.onset) - incident.onset)}`)),
    h('td', { class: 'num' }, num(incident.depth_now), h('br'),
      h('span', { class: 'meta' }, `peak ${num(incident.peak_depth)}`)),
    h('td', { class: 'wrap' }, verdict(incident.verdict)),
    h('td', { class: 'wrap suspect-cell' }, topSuspect(incident)),
    h('td', { class: 'wrap' }, acknowledgement(incident))));
  return h('section', { class: 'panel', 'aria-label': 'Open incidents' }, h('div', { class: 'table-wrap' }, h('table', { class: 'incidents' },
    h('caption', {}, `${list.length} open, newest first. Times are event time, UTC.`),
    h('thead', {}, h('tr', {},
      [['Incident'], ['User'], ['Kind'], ['Onset', 'duration'], ['Depth now', 'peak', 'num'], ['Verdict'], ['Top suspect'],
        ['Triage']].map(([name, under, style]) => h('th', { scope: 'col', class: style },
        name, under ? [h('br'), h('span', { class: 'meta' }, under)] : '')))),
    h('tbody', {}, rows))));
}

// An anomaly on watch is pending: shown before any incident opens, marked so nobody mistakes it for a page.
function anomalyText(u) {
  if (!u.anomalies.length) return 'in an open incident';
  const watched = new Set((u.watch || []).map((w) => w.kind));
  return u.anomalies.map((k) => (watched.has(k) ? `${kind(k)} (watch)` : kind(k))).join(', ');
}

function troubled(overview) {
  const users = overview.users_in_trouble;
  const heading = h('h2', {}, 'Users in trouble');
  if (!users.length) return h('section', { class: 'panel' }, heading, h('p', { class: 'muted' }, 'None.'));
  const rows = users.map((u) => h('tr', {},
    h('th', { scope: 'row' }, user(u.user, 0, 'trouble-')),
    h('td', {}, anomalyText(u)),
    h('td', { class: 'num' }, num(u.depth)),
    h('td', { class: 'num' }, u.backlog_age_s ? duration(u.backlog_age_s * 1000) : '-'),
    h('td', {}, delivery(u.delivery_state)),
    h('td', {}, u.last_delivery ? time(u.last_delivery) : 'never seen')));
  return h('section', { class: 'panel' }, heading, h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['User', 'Anomaly', 'Waiting', 'Oldest waiting', 'Delivery', 'Last delivery']
      .map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows))));
}
