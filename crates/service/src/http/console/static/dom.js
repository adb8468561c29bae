// Building the page safely and saying things the same way everywhere: element constructors that only ever set
// text (never HTML, so data from the API cannot inject markup), and the formats for times, durations, numbers,
// kinds, verdicts and states. State is always spelt out in words with a symbol; colour only adds to it.

const SVG = 'http://www.w3.org/2000/svg';

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: `h('a', {href: '#/'}, 'Overview')`. */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** An SVG element. */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);

/**
 * Replaces `target`'s content with `nodes`, keeping keyboard focus on the element with the same `data-key` so a
 * poll never throws a keyboard user back to the top of the page.
 */
export function replace(target, ...nodes) {
  const focused = document.activeElement;
  const key = focused && target.contains(focused) ? focused.getAttribute('data-key') : null;
  target.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  if (key) {
    const again = target.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

const pad = (n) => String(n).padStart(2, '0');

/** `2026-03-10 09:05:00 UTC`; event times and wall-clock times alike are shown in UTC. */
export function time(ms, { seconds = true, zone = true } = {}) {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? `:${pad(d.getUTCSeconds())}` : ''}`;
  const text = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${clock}`;
  return zone ? `${text} UTC (${ukTime(ms, seconds)})` : text;
}

const UK = (seconds) => new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/London', hour: '2-digit', minute: '2-digit', second: seconds ? '2-digit' : undefined,
  hourCycle: 'h23', timeZoneName: 'short',
});

/** The same instant as a UK clock reads it (`10:05:00 BST` in summer, `09:05:00 GMT` in winter). */
export function ukTime(ms, seconds = true) {
  try {
    return `${UK(seconds).format(new Date(ms))} UK`;
  } catch {
    return 'UK time unavailable';
  }
}

/** A window: `2026-03-10 09:04:40 – 10:00:00 UTC`, the date repeated only when it changes. */
export function span(startMs, endMs) {
  const start = time(startMs, { zone: false });
  const end = time(endMs, { zone: false });
  return start.slice(0, 10) === end.slice(0, 10)
    ? `${start} – ${end.slice(11)} UTC`
    : `${start} – ${end} UTC`;
}

/** A window for a table cell: start on one line, `– end` on the next, so narrow columns stay readable. */
export function spanCell(startMs, endMs) {
  const [start, end] = span(startMs, endMs).split(' – ');
  return [h('span', { class: 'nowrap' }, start), h('br'), h('span', { class: 'nowrap' }, `– ${end}`)];
}

/** Only the clock: `09:05:00`. */
export function clock(ms) {
  const d = new Date(ms);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** `45 s`, `8 min 20 s`, `2 h 05 min`, `3 d 4 h`. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '-';
  const total = Math.max(0, Math.round(ms / 1000));
  const [d, hr, min, sec] = [Math.floor(total / 86400), Math.floor(total / 3600) % 24,
    Math.floor(total / 60) % 60, total % 60];
  if (d > 0) return `${d} d ${hr} h`;
  if (hr > 0) return `${hr} h ${pad(min)} min`;
  if (min > 0) return `${min} min ${pad(sec)} s`;
  return `${sec} s`;
}

/** Grouped digits: `12,345`; rates keep one decimal. A value that rounds to zero is `0`, never `-0.0`. */
export function num(value, decimals = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  const scale = 10 ** decimals;
  const rounded = Math.round(Number(value) * scale) / scale;
  return (rounded === 0 ? 0 : rounded).toLocaleString('en-GB', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

const KINDS = {
  backlog: 'Backlog',
  request_storm: 'Request storm',
  reject_storm: 'Reject storm',
  alert_storm: 'Alert storm',
};
export const kind = (name) => KINDS[name] || name;

const VERDICTS = {
  registered_change: ['⚑', 'Registered change', 'verdict-registered'],
  dcc_change: ['⚑', 'DCC change', 'verdict-dcc'],
  expected_impact: ['✓', 'Expected impact', 'verdict-expected'],
  unregistered_change_suspected: ['⚠', 'Unregistered change suspected', 'verdict-unregistered'],
};

/** A verdict as symbol and words, coloured as a second cue. */
export function verdict(name) {
  const [symbol, words, style] = VERDICTS[name] || ['?', name, ''];
  return h('span', { class: `badge ${style}` }, h('span', { 'aria-hidden': 'true' }, symbol), ` ${words}`);
}

/** The glossary's words for each verdict, for text that names one (the timeline's transitions). */
const VERDICT_WORDS = Object.fromEntries(Object.entries(VERDICTS).map(([name, [, words]]) => [name, words]));

/** `text` with every verdict name in it replaced by the glossary's words. */
export function verdictWords(text) {
  return String(text).replace(/\b(registered_change|dcc_change|expected_impact|unregistered_change_suspected)\b/g,
    (name) => `“${VERDICT_WORDS[name]}”`).replaceAll(' -> ', ' → ');
}

const DELIVERY = {
  OK: ['✓', 'Delivering', 'messages wait for no more than a moment', 'state-resolved'],
  STOP: ['■', 'Stopped', 'no delivery attempted at all while messages wait', 'state-open'],
  STALL: ['✗', 'Stalled', 'deliveries attempted, all failing', 'state-open'],
  WARN: ['▲', 'Falling behind', 'some deliveries succeed, fewer than arrive', 'verdict-registered'],
};

/** A delivery state in the glossary's words, its code (STOP, STALL, WARN) kept in brackets to match alerts. */
export function delivery(code) {
  const known = DELIVERY[code];
  if (!known) return code || '-';
  const [symbol, words, meaning, style] = known;
  return h('span', { class: `badge ${style}`, title: meaning },
    h('span', { 'aria-hidden': 'true' }, symbol), ` ${words}`, code === 'OK' ? '' : ` (${code})`);
}

/** What a delivery state means, in a phrase. */
export const deliveryMeaning = (code) => (DELIVERY[code] ? DELIVERY[code][2] : '');

const CATEGORIES = {
  dcc_maintenance: 'DCC maintenance',
};

/** A change category as people write it (`dcc_maintenance` is `DCC maintenance`). */
export const category = (name) => CATEGORIES[name] || name;

/** A change status as words (`in_progress` is `in progress`). */
export const status = (name) => String(name || '').replaceAll('_', ' ');

/** Open or resolved, as symbol and words. */
export function state(resolved) {
  return resolved
    ? h('span', { class: 'badge state-resolved' }, h('span', { 'aria-hidden': 'true' }, '✓'), ' Resolved')
    : h('span', { class: 'badge state-open' }, h('span', { 'aria-hidden': 'true' }, '●'), ' Open');
}

/** A User as a link to its page; `*` is the network. `place` keeps focus keys unique when a User is listed twice. */
/** The User directory as last fetched: EUI-64 -> { name, role }. */
let names = new Map();

export function setNames(entries) {
  names = new Map((entries || []).filter((e) => e.name).map((e) => [e.user, e]));
}

const ROLES = { supplier: 'supplier', network_operator: 'network operator', other_user: 'other User' };

/** `Acme Energy (supplier)` for a User the directory names, else ''. */
export function partyName(id) {
  const entry = names.get(id);
  if (!entry) return '';
  return entry.role ? `${entry.name} (${ROLES[entry.role] || entry.role})` : entry.name;
}

/** An EUI-64 that may break after its fourth group in a narrow column (the text copies whole). */
export function eui(id) {
  const groups = String(id).split('-');
  if (groups.length !== 8) return id;
  // Two unbreakable halves: a hyphen inside either is never a line break.
  return [h('span', { class: 'nowrap' }, `${groups.slice(0, 4).join('-')}-`), h('wbr'),
    h('span', { class: 'nowrap' }, groups.slice(4).join('-'))];
}

export function user(id, count, place = '') {
  if (id === '*') return h('span', { class: 'mono' }, `* network-wide${count ? ` (${count} Users)` : ''}`);
  const link = h('a', { class: 'mono eui', href: `#/user/${encodeURIComponent(id)}`, 'data-key': `user-${place}${id}` }, eui(id));
  const name = partyName(id);
  return name ? h('span', { class: 'user-named' }, link, h('span', { class: 'party' }, name)) : link;
}

/** A change ID with its title and contact beside it, as everywhere an ID appears. */
export function changeLabel(id, title, contact) {
  return h('span', {}, h('span', { class: 'mono' }, id), title ? ` ${title}` : '',
    contact ? h('span', { class: 'contact' }, ` · contact ${contact}`) : '');
}

/** A flow's API name in words. */
export function flow(name) {
  return {
    requests: 'Requests (User → DSP)',
    rejected: 'Rejected requests',
    queued_responses: 'Queued responses',
    queued_alerts: 'Queued alerts',
    delivered: 'Delivered',
  }[name] || name;
}

/**
 * Text as the API and the docs write it, with `code` in backticks: each backticked part becomes a <code> element,
 * so no raw backtick reaches the page.
 */
export function prose(text) {
  return String(text).split('`').map((part, i) => (i % 2 ? h('code', {}, part) : part)).filter((part) => part !== '');
}

/** A message for the status line at the foot of the page (announced politely to screen readers). */
export function say(text) {
  const status = document.getElementById('status');
  if (status) status.textContent = text;
}

/** A short error panel for a view that could not load. */
export function failure(error) {
  return h('div', { class: 'panel error', role: 'alert' }, h('p', {}, prose(error.message || String(error))));
}
