// The change register: the list with its filters (User, status, window), and a form that registers a notice
// through POST /api/v1/changes. The API does all validation; a 400 names the field, and the message is shown
// beside that input, which is marked invalid and focused.

import { api, apiAll, withQuery } from './api.js';
import { category, failure, h, prose, replace, say, spanCell, status, user } from './dom.js';

const CATEGORIES = ['network', 'certificate', 'endpoint', 'application', 'device', 'campaign', 'dcc_maintenance', 'other'];
const STATUSES = ['planned', 'in_progress', 'completed', 'cancelled', 'rolled_back'];

/** A labelled input with a hint and an error line tied to it. */
function field(name, label, control, hint, prefix = 'f') {
  const id = `${prefix}-${name.replace('.', '-')}`;
  control.id = id;
  control.name = name;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  return h('div', { class: 'field', 'data-field': name },
    h('label', { for: id }, label),
    hint ? h('p', { id: `${id}-hint`, class: 'hint' }, hint) : '',
    control,
    h('p', { id: `${id}-error`, class: 'field-error' }));
}

const select = (options, blank, label = (o) => o) => h('select', {},
  blank !== undefined ? h('option', { value: '' }, blank) : '',
  options.map((o) => h('option', { value: o }, label(o))));
const input = (attrs) => h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...attrs });

export function mount(container) {
  const state = { busy: false, stopped: false, key: null, filter: {}, list: h('div'), highlight: null };
  const filter = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Filter changes' },
    field('user', 'User', input({ placeholder: 'EUI-64 or DCC' }), null, 'q'),
    field('status', 'Status', select(STATUSES, 'any', status), null, 'q'),
    field('from', 'Window from', input({ placeholder: '2026-03-10T09:00:00Z' }), null, 'q'),
    field('to', 'Window to', input({ placeholder: '2026-03-10T18:00:00Z' }), null, 'q'),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    state.filter = Object.fromEntries(new FormData(filter));
    state.key = null;
    refresh(state);
  });
  filter.addEventListener('reset', () => {
    state.filter = {};
    state.key = null;
    setTimeout(() => refresh(state));
  });
  state.filterForm = filter;
  const form = registerForm(state);
  container.append(
    h('h1', {}, 'Change register'),
    h('div', { class: 'columns changes-layout' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-list' }, h('h2', { id: 'h-list' }, 'Registered changes'),
        filter, state.list),
      h('section', { class: 'panel', 'aria-labelledby': 'h-register' },
        h('h2', { id: 'h-register' }, 'Register a change'), form)));
  document.title = 'Change register · Stormwatch';
  return state;
}

export function stop(state) {
  state.stopped = true;
}

/** Shows `message` under the input for `name` (an API field such as `end` or `expected.rate_factor`). */
function showError(form, name, message) {
  const box = form.querySelector(`[data-field="${CSS.escape(name)}"]`)
    || form.querySelector(`[data-field="${CSS.escape(name.split('.')[0])}"]`)
    || (name.startsWith('expected') && form.querySelector('[data-field="expected.direction"]'));
  const text = message.replace(/^field `[^`]*`: /, '');
  if (!box) {
    replace(form.querySelector('.form-error'), prose(text));
    return;
  }
  const control = box.querySelector('input, select, textarea');
  replace(box.querySelector('.field-error'), prose(text));
  control.setAttribute('aria-invalid', 'true');
  control.focus();
}

function clearErrors(form) {
  for (const error of form.querySelectorAll('.field-error, .form-error')) error.textContent = '';
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

function registerForm(state) {
  const form = h('form', { class: 'register', novalidate: true },
    h('p', { class: 'form-error', role: 'alert' }),
    field('id', 'Change id', input({ placeholder: 'CHG-2026-0042' })),
    field('user', 'User', input({ placeholder: '90-B3-D5-1F-30-01-00-07' }), 'The EUI-64 of the User making it, or DCC.'),
    field('title', 'Title', input({})),
    field('category', 'Category', select(CATEGORIES, undefined, category)),
    field('status', 'Status', select(STATUSES, undefined, status)),
    field('start', 'Window start', input({ placeholder: '2026-03-10T09:00:00Z' }), 'RFC 3339 times, e.g. 2026-03-10T09:00:00Z.'),
    field('end', 'Window end', input({ placeholder: '2026-03-10T10:00:00Z' })),
    field('srvs', 'SRVs (optional)', input({ placeholder: '4.1.1, 11.3' })),
    field('contact', 'Contact (optional)', input({})),
    field('expected.direction', 'Declared traffic', select(['to_dsp', 'to_user'], 'none declared')),
    field('expected.rate_factor', 'Times normal, at most', input({ inputmode: 'decimal', placeholder: '2.5' })),
    h('p', { class: 'form-done', role: 'status' }),
    h('div', { class: 'form-warnings', role: 'status' }),
    h('button', { type: 'submit' }, 'Register change'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    form.querySelector('.form-done').textContent = '';
    replace(form.querySelector('.form-warnings'));
    const values = Object.fromEntries(new FormData(form));
    const notice = {
      id: values.id, user: values.user, title: values.title, category: values.category,
      start: values.start.trim(), end: values.end.trim(), status: values.status,
    };
    const srvs = values.srvs.split(',').map((x) => x.trim()).filter(Boolean);
    if (srvs.length) notice.srvs = srvs;
    if (values.contact.trim()) notice.contact = values.contact.trim();
    const direction = values['expected.direction'];
    const rate = values['expected.rate_factor'].trim();
    if (direction || rate) {
      // A number when it reads as one; otherwise the text as typed, so the API's message names the problem.
      notice.expected = { direction: direction || null, rate_factor: rate === '' ? null : (Number.isFinite(Number(rate)) ? Number(rate) : rate) };
    }
    try {
      const answer = await api('/api/v1/changes', { method: 'POST', body: notice });
      const [outcome] = answer.changes;
      const changed = (outcome.changed || []).map((c) => `${c.field}: ${c.before ?? '-'} → ${c.after ?? '-'}`);
      const done = outcome.outcome === 'created' ? `Registered ${outcome.id}.`
        : outcome.outcome === 'updated' ? `Updated ${outcome.id}, the fields given merged over it: ${changed.join('; ')}.`
          : `Unchanged: ${outcome.id} already says this.`;
      form.reset();
      form.querySelector('.form-done').textContent = done;
      // Warnings are advice, never a refusal: the change is stored; they are listed until the form is used again.
      const warnings = outcome.warnings || [];
      replace(form.querySelector('.form-warnings'), warnings.length
        ? [h('p', {}, `${warnings.length} warning${warnings.length === 1 ? '' : 's'} (the change is registered):`),
          h('ul', {}, warnings.map((w) => h('li', { 'data-kind': w.kind }, '⚠ ', w.message)))]
        : []);
      say(done);
      state.highlight = outcome.id;
      state.key = null;
      await refresh(state);
    } catch (error) {
      if (error.status === 400 && error.field !== null) showError(form, error.field, error.message);
      else replace(form.querySelector('.form-error'), prose(error.message));
    }
  });
  return form;
}

export async function refresh(state) {
  if (state.stopped) return;
  if (state.busy) {
    // A filter or registration during a poll: fetch again once this one is done.
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  const filter = state.filterForm;
  try {
    const changes = await apiAll(withQuery('/api/v1/changes', state.filter));
    clearErrors(filter);
    const key = JSON.stringify([changes, state.highlight]);
    if (key !== state.key && !state.stopped) {
      state.key = key;
      replace(state.list, table(changes, state.highlight));
    }
  } catch (error) {
    if (error.status === 400 && error.field) showError(filter, error.field, error.message);
    else if (error.status !== 401) replace(state.list, failure(error));
  } finally {
    state.busy = false;
  }
  if (state.again) await refresh(state);
}

function table(changes, highlight) {
  if (!changes.length) return h('p', { class: 'muted' }, 'No registered change matches.');
  const newest = [...changes].sort((a, b) => Date.parse(b.start) - Date.parse(a.start) || a.id.localeCompare(b.id));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'changes' },
    h('caption', {}, `${changes.length} change${changes.length === 1 ? '' : 's'}, latest window first.`),
    h('thead', {}, h('tr', {}, ['Change', 'User', 'Title and category', 'Window', 'Status']
      .map((n) => h('th', { scope: 'col' }, n)))),
    h('tbody', {}, newest.map((c) => h('tr', { 'data-change': c.id, class: c.id === highlight ? 'new' : null },
      h('th', { scope: 'row', class: 'mono' }, c.id, c.id === highlight ? h('span', { class: 'badge ack-done' }, ' new') : ''),
      h('td', {}, c.user === 'DCC' ? 'DCC' : user(c.user)),
      h('td', { class: 'title' }, c.title, h('p', { class: 'meta' }, category(c.category),
        c.expected ? ` · declares up to ${c.expected.rate_factor}× normal ${c.expected.direction} traffic` : '')),
      h('td', {}, spanCell(Date.parse(c.start), Date.parse(c.end))),
      h('td', { class: 'status' }, status(c.status)))))));
}
