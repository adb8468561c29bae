// The forward schedule of change (DP083): a timeline of a day or a week with one row per owner, the DCC's on top,
// each change a bar placed by its window (marked when it carries warnings), and below it the same changes as a
// table with status, expected impact, warnings and outcome, so nothing is only in the picture. Filters: start
// day, span, owner, category. A User token sees its own changes and the DCC's.

import { apiAll, withQuery } from './api.js';
import { category, failure, h, replace, spanCell, status, user } from './dom.js';

const DAY_MS = 86_400_000;
const CATEGORIES = ['network', 'certificate', 'endpoint', 'application', 'device', 'campaign', 'dcc_maintenance', 'other'];
const WARNING_LABELS = {
  dcc_maintenance_overlap: 'overlaps DCC maintenance',
  bcdr_test_overlap: 'overlaps a BCDR test',
  high_risk_pile_up: 'high-risk pile-up',
  morning_peak: 'morning peak',
  scheduled_reads: 'overnight reads',
  undeclared_impact: 'no declared impact',
  short_window: 'short window',
};
const OUTCOMES = {
  pending: 'pending', cancelled: 'cancelled', clean: '✓ clean', expected_impact: '✓ expected impact',
  suspected: '? suspected', attributed: '⚠ caused incident',
};

const startOfDay = (ms) => ms - (ms % DAY_MS);
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

function labelled(name, label, control) {
  control.id = `s-${name}`;
  control.name = name;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

export function mount(container) {
  // The first day is the event-time day of the data the service holds, known from the first poll (see refresh).
  const day = h('input', { type: 'date' });
  const state = {
    busy: false, stopped: false, key: null, filter: { day: '', span: 'week' }, body: h('div'), day, anchor: h('p', { class: 'meta' }),
  };
  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Schedule filters' },
    labelled('day', 'From (UTC day)', day),
    labelled('span', 'Span', h('select', {}, h('option', { value: 'week' }, 'week'), h('option', { value: 'day' }, 'day'))),
    labelled('user', 'Owner', h('input', { type: 'text', placeholder: 'EUI-64 or DCC', autocomplete: 'off', spellcheck: 'false' })),
    labelled('category', 'Category', h('select', {}, h('option', { value: '' }, 'any'), CATEGORIES.map((c) => h('option', { value: c }, category(c))))),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Show')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    state.filter = Object.fromEntries(new FormData(form));
    if (!state.filter.day) state.filter.day = state.day.value || isoDay(Date.now());
    state.key = null;
    refresh(state);
  });
  container.append(
    h('h1', {}, 'Forward schedule of change'),
    h('section', { class: 'panel', 'aria-labelledby': 'h-sched' },
      h('h2', { id: 'h-sched' }, 'User and DCC changes'),
      h('p', { class: 'meta' }, 'DCC changes on top, then each User; times in UTC. ⚠ marks a change with warnings. ',
        'Calendar clients subscribe to ', h('code', {}, '/api/v1/schedule.ics?key=…'),
        ' (same filters) with a read-only calendar key from ', h('code', {}, 'stormwatch tokens add --role calendar'), '.'),
      form, state.anchor, state.body));
  document.title = 'Schedule · Stormwatch';
  return state;
}

export function stop(state) {
  state.stopped = true;
}

/** The day a view opens on: the event time of the data the service holds, or the wall clock before any telemetry. */
export function anchorDay(overview) {
  return isoDay(startOfDay((overview && overview.as_of) || Date.now()));
}

/** Says which clock the default day came from. */
export function anchorText(overview) {
  return overview && overview.as_of
    ? `Opens on the event-time day of the data the service holds (${isoDay(overview.as_of)}); pick another day to move.`
    : 'No telemetry yet: opens on today by the wall clock.';
}

export async function refresh(state, overview) {
  if (state.busy || state.stopped) return;
  if (!state.filter.day) {
    // Wait for the first poll: it brings the event time to open on.
    if (!overview) return;
    state.filter.day = anchorDay(overview);
    state.day.value = state.filter.day;
    replace(state.anchor, anchorText(overview));
  }
  state.busy = true;
  try {
    const from = Date.parse(`${state.filter.day}T00:00:00Z`);
    const start = Number.isFinite(from) ? from : startOfDay(Date.now());
    const days = state.filter.span === 'day' ? 1 : 7;
    const params = { from: new Date(start).toISOString(), to: new Date(start + days * DAY_MS).toISOString() };
    if (state.filter.user) params.user = state.filter.user.trim();
    if (state.filter.category) params.category = state.filter.category;
    const schedule = await apiAll(withQuery('/api/v1/schedule', params), { key: 'changes' });
    const key = JSON.stringify(schedule);
    if (key !== state.key && !state.stopped) {
      state.key = key;
      replace(state.body, timeline(schedule, start, days, state.body.clientWidth || 900), list(schedule));
    }
  } catch (error) {
    if (!state.stopped && error.status !== 401) replace(state.body, failure(error));
  } finally {
    state.busy = false;
  }
}

/** Places `node` from `a` to `b` (fractions of the span) with CSSOM, which the page's style policy allows. */
function place(node, a, b) {
  node.style.left = `${(Math.max(0, a) * 100).toFixed(3)}%`;
  node.style.width = `${(Math.max(0.004, Math.min(1, b) - Math.max(0, a)) * 100).toFixed(3)}%`;
  return node;
}

/** A bar is never narrower than this many pixels, so its id stays readable however short its window. */
const MIN_BAR_PX = 150;
/** Height of one lane of bars, in rem (bars of one owner that would overlap go in lanes below each other). */
const LANE_REM = 1.75;

/** The label a bar shows, and the pixels it needs (bold 0.78rem text, about 7.5 px a character, and padding). */
function label(change) {
  const text = `${change.warnings.length ? '⚠ ' : ''}${change.id}`;
  return { text, px: Math.max(MIN_BAR_PX, text.length * 7.5 + 22) };
}

/**
 * Each change's place and lane in its owner's row: a bar is at least as wide as its label (up to 40 % of the
 * track, past which the label ends in an ellipsis and the tooltip has it), so short windows close together would
 * cover each other; each goes in the first lane where it starts after the last bar ends.
 */
function lanes(changes, start, total, trackPx) {
  const ends = [];
  return changes
    .map((change) => {
      const least = Math.min(label(change).px / Math.max(trackPx, 1), 0.4);
      const b = (Date.parse(change.end) - start) / total;
      // A short window near the end of the span is drawn ending there, not running off it.
      const a = Math.min(Math.max(0, (Date.parse(change.start) - start) / total), Math.max(0, 1 - least));
      return { change, a, b, least, shown: Math.max(b, a + least) };
    })
    .sort((x, y) => x.a - y.a)
    .map((bar) => {
      let lane = ends.findIndex((end) => end <= bar.a);
      if (lane < 0) lane = ends.push(0) - 1;
      ends[lane] = bar.shown;
      return { ...bar, lane };
    });
}

function timeline(schedule, start, days, width) {
  const total = days * DAY_MS;
  // The owner column is 13rem (208 px at the page's 15 px root size plus borders).
  const trackPx = Math.max(width - 210, 640);
  const ticks = days === 1
    ? Array.from({ length: 8 }, (_, i) => [i * 3 * 3_600_000, `${String(i * 3).padStart(2, '0')}:00`])
    : Array.from({ length: days }, (_, i) => [i * DAY_MS, new Date(start + i * DAY_MS).toUTCString().slice(0, 11)]);
  const axis = h('div', { class: 'sched-axis', 'aria-hidden': 'true' },
    ticks.map(([offset, text]) => place(h('span', { class: 'sched-tick' }, text), offset / total, (offset / total) + (1 / ticks.length))));
  const rows = schedule.rows.map((owner) => {
    const placed = lanes(schedule.changes.filter((c) => c.user === owner), start, total, trackPx);
    const track = h('div', { class: 'sched-track' });
    track.style.height = `${Math.max(1, ...placed.map((p) => p.lane + 1)) * LANE_REM + 0.4}rem`;
    for (const { change, a, b, least, lane } of placed) {
      const warned = change.warnings.length > 0;
      const text = `${change.id}: ${change.title} (${category(change.category)}, ${status(change.status)}; ${change.start} to ${change.end})${warned ? ` – ${change.warnings.length} warning(s)` : ''}`;
      const bar = place(h('span', {
        class: `sched-bar cat-${change.category} st-${change.status}${warned ? ' warned' : ''}`,
        title: text, 'data-change': change.id,
      }, label(change).text), a, b);
      bar.style.top = `${0.3 + lane * LANE_REM}rem`;
      bar.style.minWidth = `${(least * 100).toFixed(3)}%`;
      track.append(bar);
    }
    return h('div', { class: `sched-row${owner === 'DCC' ? ' dcc' : ''}`, 'data-owner': owner },
      h('div', { class: 'sched-owner' }, owner === 'DCC' ? 'DCC' : user(owner)), track);
  });
  return h('figure', { class: 'sched', 'aria-label': `Timeline of ${schedule.changes.length} changes; the table below lists them` },
    h('div', { class: 'sched-row sched-head' }, h('div', { class: 'sched-owner' }, 'Owner'), axis),
    rows.length ? rows : h('p', { class: 'muted' }, 'No change in this span.'));
}

// The warnings recorded at registration; below them, what changed since against the register as it is now.
function warningCell(c) {
  const item = (w, note) => h('li', { title: w.message, 'data-kind': w.kind },
    h('span', { class: 'badge state-open' }, `⚠ ${WARNING_LABELS[w.kind] || w.kind}`),
    h('p', { class: 'meta' }, note ? `${note}: ${w.message}` : w.message));
  const recorded = new Set(c.warnings.map((w) => w.kind));
  const current = new Set(c.current_warnings.map((w) => w.kind));
  const added = c.current_warnings.filter((w) => !recorded.has(w.kind));
  const cleared = c.warnings.filter((w) => !current.has(w.kind));
  const items = [
    ...c.warnings.filter((w) => current.has(w.kind)).map((w) => item(w)),
    ...cleared.map((w) => item(w, 'at registration, no longer')),
    ...added.map((w) => item(w, 'since registration')),
  ];
  return items.length ? h('ul', { class: 'warning-list' }, items) : '–';
}

function list(schedule) {
  if (!schedule.changes.length) return '';
  // Status under the id and the declared impact under the title: six columns fit a 1024 px laptop.
  return h('div', { class: 'table-wrap' }, h('table', { class: 'schedule-list' },
    h('caption', {}, `${schedule.changes.length} change${schedule.changes.length === 1 ? '' : 's'} from ${schedule.from} to ${schedule.to}, by window start.`),
    h('thead', {}, h('tr', {}, ['Change', 'Owner', 'Title', 'Window', 'Warnings', 'Outcome']
      .map((n) => h('th', { scope: 'col' }, n)))),
    h('tbody', {}, schedule.changes.map((c) => h('tr', { 'data-change': c.id },
      h('th', { scope: 'row' }, h('span', { class: 'mono' }, c.id), h('p', { class: 'meta' }, status(c.status))),
      h('td', {}, c.user === 'DCC' ? 'DCC' : user(c.user)),
      h('td', {}, c.title, h('p', { class: 'meta' }, category(c.category), ' · ',
        c.expected ? `declares up to ${c.expected.rate_factor}× ${c.expected.direction}` : 'no impact declared')),
      h('td', {}, spanCell(Date.parse(c.start), Date.parse(c.end))),
      h('td', { class: 'warnings' }, warningCell(c)),
      h('td', {}, OUTCOMES[c.outcome.outcome] || c.outcome.outcome,
        c.outcome.attributed && c.outcome.attributed.length
          ? h('p', { class: 'meta' }, c.outcome.attributed.map((id) => h('a', { href: `#/incident/${encodeURIComponent(id)}` }, id, ' ')))
          : ''))))));
}
