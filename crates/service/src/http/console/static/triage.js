// What operators do on the incident page, and its record: acknowledging, notes, confirming or rejecting a suspect
// (each an audited POST under /api/v1/incidents/{id}/...), the ranked suspects those judgements apply to, and the
// timeline of the incident's states and of every action taken.

import { api } from './api.js';
import { changeLabel, h, prose, replace, say, time, verdictWords } from './dom.js';

const base = (state) => `/api/v1/incidents/${encodeURIComponent(state.id)}`;

/** The triage panel's fixed parts (forms keep what is typed across polls); `draw` fills in the rest. */
export function mount(state) {
  const ack = h('div', { class: 'ack' });
  const notes = h('div', { class: 'notes' });
  const text = h('textarea', { id: 'note-text', name: 'text', rows: 3, 'aria-describedby': 'note-error' });
  const error = h('p', { id: 'note-error', class: 'field-error', role: 'alert' });
  const form = h('form', { class: 'note-form', novalidate: true },
    h('label', { for: 'note-text' }, 'Add a note'), text, error,
    h('button', { type: 'submit' }, 'Add note'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const triaged = await api(`${base(state)}/notes`, { method: 'POST', body: { text: text.value } });
      text.value = '';
      text.removeAttribute('aria-invalid');
      error.textContent = '';
      say('Note added.');
      update(state, triaged);
    } catch (failure) {
      replace(error, prose(failure.message));
      text.setAttribute('aria-invalid', 'true');
      text.focus();
    }
  });
  const readOnly = h('p', { class: 'muted', hidden: true }, 'Read-only: triage needs an ops token.');
  const panel = h('section', { 'aria-labelledby': 'h-triage', class: 'panel triage p-triage' },
    h('h2', { id: 'h-triage' }, 'Triage'), ack, readOnly, form, h('h3', {}, 'Notes'), notes);
  return { panel, ack, notes, form, readOnly };
}

/** Puts a fresh triage answer (from a POST) in place and redraws. */
function update(state, triaged) {
  if (!state.data) return;
  state.data.triage = triaged;
  state.redraw();
}

async function act(state, path, body, done) {
  try {
    const triaged = await api(`${base(state)}${path}`, { method: 'POST', body });
    say(done);
    update(state, triaged);
  } catch (failure) {
    say(`Not saved: ${failure.message}`);
  }
}

/** Draws the triage panel, the suspects and the timeline of `incident` (the freshest copy of its record). */
export function draw(state, changed, who, incident) {
  const { triage } = state.data;
  const ops = !who || who.role === 'ops';
  const parts = state.triage;
  parts.form.hidden = !ops;
  parts.readOnly.hidden = ops;
  if (changed('ack', [triage.acknowledged, ops])) replace(parts.ack, acknowledgement(state, triage, ops));
  if (changed('notes', triage.notes)) {
    replace(parts.notes, triage.notes.length
      ? h('ul', { class: 'note-list' }, triage.notes.map((n) => h('li', {},
        h('p', {}, n.text), h('p', { class: 'muted' }, `${n.actor}, ${time(n.at_ms)}`))))
      : h('p', { class: 'muted' }, 'No notes yet.'));
  }
  if (changed('suspects', [incident.suspects, incident.verdict, triage.judgements, ops])) {
    replace(state.suspects, suspects(state, incident, triage, ops));
  }
  if (changed('timeline', [incident.onset, incident.detected, incident.resolved, triage.history, triage.log])) {
    replace(state.timeline, timeline(incident, triage));
  }
}

function acknowledgement(state, triage, ops) {
  const ack = triage.acknowledged;
  if (ack) {
    return h('p', { class: 'badge ack-done' }, h('span', { 'aria-hidden': 'true' }, '✓'),
      ` Acknowledged by ${ack.actor} at ${time(ack.at_ms)}${ack.text ? `: ${ack.text}` : ''}`);
  }
  return h('div', {},
    h('p', { class: 'badge ack-missing' }, h('span', { 'aria-hidden': 'true' }, '⚠'), ' Not acknowledged'),
    ops ? h('button', {
      type: 'button', id: 'acknowledge', 'data-key': 'acknowledge',
      onclick: () => act(state, '/acknowledge', {}, 'Incident acknowledged.'),
    }, 'Acknowledge') : '');
}

const JUDGEMENTS = [['confirmed', 'Confirm', '✓'], ['rejected', 'Reject', '✗']];

function suspects(state, incident, triage, ops) {
  if (!incident.suspects.length) {
    return h('p', {}, h('span', { 'aria-hidden': 'true' }, '⚠ '),
      'No registered change explains this incident: an unregistered change is suspected.');
  }
  const standing = new Map(triage.judgements.map((j) => [j.change, j]));
  // Under this verdict no change scored enough to explain the incident: the nearest ones are ruled out, and
  // calling them suspects (or ranking them "#1") would read as evidence for them.
  const ruledOut = incident.verdict === 'unregistered_change_suspected';
  const list = h('ol', { class: 'suspects' }, incident.suspects.map((suspect, index) => {
    const judged = standing.get(suspect.change);
    const controls = ops ? h('div', { class: 'judge', role: 'group', 'aria-label': `Judge ${suspect.change}` },
      JUDGEMENTS.map(([value, label, symbol]) => {
        const pressed = judged && judged.judgement === value;
        return h('button', {
          type: 'button', 'aria-pressed': pressed ? 'true' : 'false', 'data-key': `${value}-${suspect.change}`,
          class: `judge-${value}`,
          onclick: () => act(state, `/suspects/${encodeURIComponent(suspect.change)}`,
            { judgement: pressed ? 'undecided' : value },
            pressed ? `Judgement on ${suspect.change} withdrawn.` : `${suspect.change} marked ${value}.`),
        }, h('span', { 'aria-hidden': 'true' }, `${symbol} `), pressed ? `${label}ed` : label);
      })) : '';
    return h('li', { class: 'suspect', 'data-change': suspect.change },
      h('h3', {}, h('span', { class: 'rank' }, ruledOut ? 'Ruled out:' : `#${index + 1}`), ' ',
        changeLabel(suspect.change, suspect.title, suspect.contact)),
      h('p', { class: 'score-line' },
        h('meter', { min: 0, max: 1, low: 0.2, high: 0.5, optimum: 1, value: suspect.score }),
        ` score ${suspect.score.toFixed(2)}${index === 0 && suspect.score >= 0.5 ? ' (explains the incident)' : ''}`),
      h('ul', { class: 'reasons' }, suspect.reasons.map((reason) => h('li', {}, prose(reason)))),
      judged ? h('p', { class: `judged judged-${judged.judgement}` },
        `${judged.judgement === 'confirmed' ? '✓ Confirmed' : '✗ Rejected'} by ${judged.actor} at ${time(judged.at_ms)}`)
        : h('p', { class: 'muted' }, 'Not judged by an operator yet.'),
      controls);
  }));
  if (!ruledOut) return list;
  return h('div', {},
    h('p', {}, h('span', { 'aria-hidden': 'true' }, '⚠ '),
      'No registered change explains this incident: an unregistered change is suspected. ',
      'The nearest registered changes below were ruled out; their reasons say why (see the glossary).'),
    list);
}

/** States in event time, then every recorded transition and action in the order the store wrote them. */
function timeline(incident, triage) {
  const entries = [{ label: 'Anomaly began (estimated onset)', event: incident.onset, kind: 'state' }];
  const history = triage.history.length ? triage.history : [
    { state: 'opened', event_ms: incident.detected, detail: 'opened', at_ms: null },
    ...(incident.resolved ? [{ state: 'resolved', event_ms: incident.resolved, detail: 'resolved', at_ms: null }] : []),
  ];
  const recorded = [
    ...history.map((row) => ({ at: row.at_ms, event: row.event_ms, kind: 'state', label: sentence(row.detail) })),
    ...triage.log.map((row) => ({ at: row.at_ms, kind: 'action', label: action(row) })),
  ].sort((a, b) => (a.at || 0) - (b.at || 0));
  return h('ol', { class: 'timeline' }, [...entries, ...recorded].map((entry) => h('li', { class: `tl-${entry.kind}` },
    h('span', { class: 'tl-kind' }, entry.kind === 'state' ? 'State' : 'Action'),
    h('span', { class: 'tl-label' }, entry.label),
    h('span', { class: 'tl-time muted' }, [
      entry.event ? `event time ${time(entry.event)}` : '',
      entry.at ? `recorded ${time(entry.at)}` : '',
    ].filter(Boolean).join(' · ')))));
}

const sentence = (text) => verdictWords(text.charAt(0).toUpperCase() + text.slice(1));

function action(row) {
  switch (row.action) {
    case 'acknowledge': return `Acknowledged by ${row.actor}${row.text ? `: ${row.text}` : ''}`;
    case 'note': return `Note by ${row.actor}: ${row.text}`;
    default: return `${row.change} ${row.judgement === 'undecided' ? 'judgement withdrawn' : row.judgement} by ${row.actor}` +
      `${row.text ? `: ${row.text}` : ''}`;
  }
}
