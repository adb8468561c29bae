// Change outcomes across the network: per owner over a period, changes registered, the change failure rate (share
// of decided changes that caused an incident), incidents nobody registered a change for, and the median onset to
// detection and to acknowledgement. Sortable by any column (the API sorts); `ownerTable` also serves the User page.

import { apiAll, withQuery } from './api.js';
import { duration, failure, h, num, prose, replace, user } from './dom.js';

const COLUMNS = [
  ['owner', 'Owner'],
  ['changes_registered', 'Changes registered'],
  ['change_failure_rate', 'Change failure rate'],
  ['incidents', 'Incidents'],
  ['unregistered_change_suspected', 'Unregistered change suspected'],
  ['median_onset_to_detection_s', 'Median onset → detection'],
  ['median_onset_to_acknowledgement_s', 'Median onset → acknowledgement'],
];

export const rate = (r) => (r === null || r === undefined ? 'no change decided' : `${num(r * 100, 0)} %`);
const seconds = (s) => (s === null || s === undefined ? '–' : duration(s * 1000));

/** The figures of one owner as a definition list. */
export function figures(row, none = 'No changes or incidents in this period.') {
  if (!row) return h('p', { class: 'muted' }, none);
  const facts = [
    ['Changes registered', num(row.changes_registered)],
    ['Decided (window over)', num(row.changes_decided)],
    ['Caused incidents', num(row.changes_attributed)],
    ['Change failure rate', rate(row.change_failure_rate)],
    ['Incidents', num(row.incidents)],
    ['Unregistered change suspected', num(row.unregistered_change_suspected)],
    ['Median onset → detection', seconds(row.median_onset_to_detection_s)],
    ['Median onset → acknowledgement', seconds(row.median_onset_to_acknowledgement_s)],
  ];
  return h('dl', { class: 'facts outcome-facts' }, facts.map(([t, v]) => h('div', {}, h('dt', {}, t), h('dd', {}, v))));
}

/** `to` for the API from a picked day: the end of that UTC day; null (the service's now) when none is picked. */
const endOfDay = (day) => (day ? `${day}T23:59:59Z` : null);

/** Which clock an answer's period and judgements are reckoned on, in words. */
export function asOf(answer) {
  return answer.clock === 'event_time'
    ? `as of event time ${answer.now}, the latest the service has seen`
    : `as of the wall clock, ${answer.now} (no telemetry yet)`;
}

/**
 * The period controls both outcome views share: its length and the day it ends (blank: now, by the event time of
 * the data the service holds). `changed` runs after either moves.
 */
export function periodControls(state, prefix, changed) {
  const days = h('select', { id: `${prefix}-days`, name: 'days' },
    [7, 30, 90, 365].map((d) => h('option', { value: d, selected: d === state.days }, `${d} days`)));
  const to = h('input', { type: 'date', id: `${prefix}-to`, name: 'to' });
  days.addEventListener('change', () => {
    state.days = Number(days.value);
    changed();
  });
  to.addEventListener('change', () => {
    state.to = to.value || null;
    changed();
  });
  state.toInput = to;
  return h('div', { class: 'filters period' },
    h('div', { class: 'field' }, h('label', { for: days.id }, 'Period'), days),
    h('div', { class: 'field' }, h('label', { for: to.id }, 'Ending (UTC day)'), to));
}

/** The query of a period, and the picked day shown once the service says what "now" is. */
export function periodQuery(state) {
  return { days: state.days, to: endOfDay(state.to) };
}

export function showPeriodEnd(state, answer) {
  if (!state.to && state.toInput && answer.to) state.toInput.value = answer.to.slice(0, 10);
}

export function mount(container) {
  const state = {
    busy: false, stopped: false, key: null, sort: 'change_failure_rate', order: 'desc', days: 90, to: null, body: h('div'),
  };
  const controls = periodControls(state, 'o', () => {
    state.key = null;
    refresh(state);
  });
  container.append(
    h('h1', {}, 'Change outcomes'),
    h('section', { class: 'panel', 'aria-labelledby': 'h-outcomes' },
      h('h2', { id: 'h-outcomes' }, 'Per owner'),
      h('p', { class: 'meta' }, ...prose('A change is decided once its window and an hour after it have passed, by the event time of the data the service holds; until then it is pending. Failure rate = decided changes that caused an incident ÷ decided changes. `*` rows are network-wide incidents.')),
      controls,
      state.body));
  document.title = 'Change outcomes · Stormwatch';
  return state;
}

export function stop(state) {
  state.stopped = true;
}

export async function refresh(state) {
  if (state.busy || state.stopped) return;
  state.busy = true;
  try {
    const answer = await apiAll(withQuery('/api/v1/outcomes', { ...periodQuery(state), sort: state.sort, order: state.order }), { key: 'owners' });
    showPeriodEnd(state, answer);
    const key = JSON.stringify(answer);
    if (key !== state.key && !state.stopped) {
      state.key = key;
      replace(state.body, table(answer, state));
    }
  } catch (error) {
    if (!state.stopped && error.status !== 401) replace(state.body, failure(error));
  } finally {
    state.busy = false;
  }
}

function table(answer, state) {
  if (!answer.owners.length) {
    return h('p', { class: 'muted' }, `No changes or incidents from ${answer.from} to ${answer.to} (${asOf(answer)}).`);
  }
  const header = COLUMNS.map(([key, label]) => {
    const sorted = state.sort === key;
    const button = h('button', { type: 'button', class: 'sort', 'data-key': `sort-${key}`, 'data-sort': key },
      label, sorted ? (state.order === 'desc' ? ' ▼' : ' ▲') : '');
    button.addEventListener('click', () => {
      state.order = sorted && state.order === 'desc' ? 'asc' : 'desc';
      state.sort = key;
      state.key = null;
      refresh(state);
    });
    return h('th', { scope: 'col', 'aria-sort': sorted ? (state.order === 'desc' ? 'descending' : 'ascending') : null }, button);
  });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'outcomes' },
    h('caption', {}, `${answer.owners.length} owners, ${answer.from} to ${answer.to}, ${asOf(answer)}.`),
    h('thead', {}, h('tr', {}, header)),
    h('tbody', {}, answer.owners.map((r) => h('tr', { 'data-owner': r.owner },
      h('th', { scope: 'row' }, r.owner === 'DCC' || r.owner === '*' ? r.owner : user(r.owner)),
      h('td', { class: 'num' }, num(r.changes_registered)),
      h('td', { class: 'num' }, rate(r.change_failure_rate), h('p', { class: 'meta' }, `${r.changes_attributed} of ${r.changes_decided}`)),
      h('td', { class: 'num' }, num(r.incidents)),
      h('td', { class: 'num' }, num(r.unregistered_change_suspected)),
      h('td', { class: 'num' }, seconds(r.median_onset_to_detection_s)),
      h('td', { class: 'num' }, seconds(r.median_onset_to_acknowledgement_s)))))));
}
