// The User page: the User's state now against its baselines (depth, oldest waiting message, delivery, each flow's
// rate and ratio), its recent incidents and its registered changes. Refreshed with every poll.

import { api, apiAll, withQuery } from './api.js';
import { asOf, figures, periodControls, periodQuery, showPeriodEnd } from './outcomes.js';
import {
  category, changeLabel, delivery, duration, failure, flow, h, kind, num, partyName, replace, span, state as openState,
  status, time, verdict,
} from './dom.js';

/** A flow this far above or below its baseline is called out in words, not only by the ratio. */
const HIGH_RATIO = 4;
const LOW_RATIO = 0.25;
/** Below this baseline (per second) a drop is noise, not news. */
const LOW_FLOOR = 1;

export function mount(container, id) {
  const state = {
    id, busy: false, stopped: false, keys: {}, now: h('div'), incidents: h('div'), changes: h('div'), outcomes: h('div'),
    heading: h('h1', {}, 'User ', h('span', { class: 'mono' }, id)), days: 90, to: null,
  };
  const period = periodControls(state, 'u', () => {
    state.keys.outcomes = null;
    refresh(state);
  });
  container.append(
    h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' › User'),
    state.heading,
    h('section', { class: 'panel', 'aria-labelledby': 'h-now' }, h('h2', { id: 'h-now' }, 'Now, against baseline'), state.now),
    h('section', { class: 'panel', 'aria-labelledby': 'h-incidents' },
      h('h2', { id: 'h-incidents' }, 'Recent incidents'), state.incidents),
    h('section', { class: 'panel', 'aria-labelledby': 'h-outcomes' },
      h('h2', { id: 'h-outcomes' }, 'Change outcomes'), period, state.outcomes),
    h('section', { class: 'panel', 'aria-labelledby': 'h-changes' },
      h('h2', { id: 'h-changes' }, 'Registered changes'), state.changes));
  state.now.append(h('p', { class: 'muted' }, 'Loading…'));
  document.title = `User ${id} · Stormwatch`;
  return state;
}

export function stop(state) {
  state.stopped = true;
}

export async function refresh(state) {
  if (state.busy) return;
  state.busy = true;
  try {
    const id = encodeURIComponent(state.id);
    const [now, incidents, changes, outcomes] = await Promise.all([
      api(`/api/v1/users/${id}`).catch((error) => (error.status === 404 ? null : Promise.reject(error))),
      apiAll(withQuery('/api/v1/incidents', { user: state.id })),
      apiAll(withQuery('/api/v1/changes', { user: state.id })),
      apiAll(withQuery(`/api/v1/outcomes/${id}`, periodQuery(state)), { key: 'changes' }),
    ]);
    if (state.stopped) return;
    const draw = (part, value, render) => {
      const key = JSON.stringify(value);
      if (state.keys[part] !== key) {
        state.keys[part] = key;
        replace(state[part], render(value));
      }
    };
    // The directory's name arrives with the first poll, after the page was mounted.
    draw('heading', partyName(state.id), (name) => ['User ', h('span', { class: 'mono' }, state.id),
      name ? h('span', { class: 'party' }, ` ${name}`) : '']);
    draw('now', now, current);
    draw('incidents', incidents, recent);
    draw('changes', changes, registered);
    showPeriodEnd(state, outcomes);
    draw('outcomes', outcomes, (o) => [
      h('p', { class: 'meta' }, `${o.from} to ${o.to}, ${asOf(o)}.`),
      figures(o.figures, `No changes registered by this User and no incidents of it from ${o.from} to ${o.to}.`)]);
  } catch (error) {
    if (!state.stopped && error.status !== 401) replace(state.now, failure(error));
  } finally {
    state.busy = false;
  }
}

function current(view) {
  if (!view) return h('p', { class: 'muted' }, 'No telemetry seen for this User since the service started.');
  const anomalies = view.anomalies.length
    ? h('span', { class: 'badge state-open' }, h('span', { 'aria-hidden': 'true' }, '⚠ '), view.anomalies.map(kind).join(', '))
    : h('span', { class: 'badge state-resolved' }, h('span', { 'aria-hidden': 'true' }, '✓ '), 'Within baseline');
  const facts = [
    ['As of (event time)', time(view.as_of)],
    ['Anomalies', anomalies],
    ['On watch (not paged yet)', (view.watch || []).length
      ? view.watch.map((w) => `${kind(w.kind)} since ${time(w.since)}, onset ${time(w.onset)}`).join('; ')
      : 'none'],
    ['Waiting', num(view.depth)],
    ['Oldest waiting', view.backlog_age_s ? duration(view.backlog_age_s * 1000) : '-'],
    ['Delivery', delivery(view.delivery_state)],
    ['Last delivery', view.last_delivery ? time(view.last_delivery) : 'none seen'],
  ];
  const rows = view.flows.map((f) => {
    const high = f.ratio !== null && f.ratio >= HIGH_RATIO;
    const low = f.ratio !== null && f.ratio <= LOW_RATIO && f.baseline >= LOW_FLOOR;
    return h('tr', {},
      h('th', { scope: 'row' }, flow(f.flow)),
      h('td', { class: 'num' }, `${num(f.rate, 1)}/s`),
      h('td', { class: 'num' }, `${num(f.baseline, 1)}/s`),
      h('td', { class: 'num' }, f.ratio === null ? 'no baseline' : `×${num(f.ratio, 1)}`),
      h('td', {}, high ? h('span', { class: 'badge state-open' }, '▲ far above baseline')
        : low ? h('span', { class: 'badge state-open' }, '▼ far below baseline') : 'near baseline'));
  });
  return h('div', {},
    h('dl', { class: 'facts' }, facts.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value)))),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', {}, '10-second mean rates against each flow\'s learned baseline.'),
      h('thead', {}, h('tr', {}, ['Flow', 'Rate', 'Baseline', 'Ratio', 'State'].map((n) => h('th', { scope: 'col' }, n)))),
      h('tbody', {}, rows))));
}

function recent(incidents) {
  if (!incidents.length) return h('p', { class: 'muted' }, 'No incidents recorded for this User.');
  const newest = [...incidents].sort((a, b) => b.onset - a.onset).slice(0, 20);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', {}, `${newest.length} most recent of ${incidents.length}, newest first.`),
    h('thead', {}, h('tr', {}, ['Incident', 'Kind', 'Onset', 'State', 'Peak depth', 'Verdict', 'Top suspect']
      .map((n) => h('th', { scope: 'col' }, n)))),
    h('tbody', {}, newest.map((i) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/incident/${encodeURIComponent(i.id)}` }, i.id)),
      h('td', {}, kind(i.kind)),
      h('td', {}, time(i.onset)),
      h('td', {}, openState(i.resolved)),
      h('td', { class: 'num' }, num(i.peak_depth)),
      h('td', {}, verdict(i.verdict)),
      h('td', {}, i.suspects[0]
        ? h('span', {}, changeLabel(i.suspects[0].change, i.suspects[0].title, i.suspects[0].contact),
          ` (${i.suspects[0].score.toFixed(2)})`)
        : '-'))))));
}

function registered(changes) {
  if (!changes.length) return h('p', { class: 'muted' }, 'No changes registered by this User.');
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Change', 'Title', 'Category', 'Window', 'Status'].map((n) => h('th', { scope: 'col' }, n)))),
    h('tbody', {}, changes.map((c) => h('tr', {},
      h('th', { scope: 'row', class: 'mono' }, c.id),
      h('td', {}, c.title, c.contact ? h('p', { class: 'meta' }, `contact ${c.contact}`) : ''),
      h('td', {}, category(c.category)),
      h('td', {}, span(Date.parse(c.start), Date.parse(c.end))),
      h('td', {}, status(c.status)))))));
}
