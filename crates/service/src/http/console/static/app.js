// The console's entry point: sign-in with an API token, routing by the URL's #fragment to one view at a time,
// and the live loop. Every few seconds it polls the cheap overview endpoint (network strip and open incidents)
// and lets the current view refresh; it pauses while the tab is hidden and never runs two polls at once.

import { api, apiAll, clearToken, setToken, token } from './api.js';
import { h, num, prose, replace, say, setNames, time } from './dom.js';
import * as overview from './overview.js';
import * as incident from './incident.js';
import * as user from './user.js';
import * as changes from './changes.js';
import * as schedule from './schedule.js';
import * as outcomes from './outcomes.js';

const POLL_MS = 3000;

const views = [
  [/^#?\/?$/, overview, 'overview'],
  [/^#\/incident\/(.+)$/, incident, 'overview'],
  [/^#\/user\/(.+)$/, user, 'overview'],
  [/^#\/changes$/, changes, 'changes'],
  [/^#\/schedule$/, schedule, 'schedule'],
  [/^#\/outcomes$/, outcomes, 'outcomes'],
];

let current = null; // { view, param, state }
let polling = false;
let latest = null; // the last overview answer
let namesFetched = 0;
let namesKey = null;
const NAMES_EVERY_MS = 60_000;

const $ = (id) => document.getElementById(id);

function showSignIn(message) {
  clearToken();
  current = null;
  $('session').hidden = true;
  $('strip').hidden = true;
  $('view').replaceChildren();
  $('sign-in').hidden = false;
  replace($('token-error'), prose(message || ''));
  $('token').value = '';
  $('token').focus();
  document.title = 'Sign in · Stormwatch';
}

async function signIn(event) {
  event.preventDefault();
  const secret = $('token').value.trim();
  if (!secret) {
    $('token-error').textContent = 'Paste a token first.';
    $('token').setAttribute('aria-invalid', 'true');
    $('token').focus();
    return;
  }
  setToken(secret);
  try {
    latest = await api('/api/v1/console/overview');
  } catch (error) {
    showSignIn(error.status === 401 ? 'That token is unknown or revoked.' : error.message);
    return;
  }
  $('token').removeAttribute('aria-invalid');
  $('sign-in').hidden = true;
  start();
}

function renderStrip(data) {
  const n = data.network;
  const item = (label, value, extra) => h('div', {
    class: `strip-item ${extra || ''}`, 'data-metric': label.toLowerCase().replaceAll(' ', '-'),
  }, h('dt', {}, label), h('dd', {}, value));
  const trouble = n.users_in_trouble > 0;
  replace($('strip'), h('dl', {},
    item('Event time', data.as_of ? time(data.as_of) : 'no telemetry yet'),
    item('Requests', `${num(n.requests_per_s, 1)}/s`),
    item('Queued', `${num(n.queued_per_s, 1)}/s`),
    item('Delivered', `${num(n.delivered_per_s, 1)}/s`),
    item('Waiting', num(n.depth)),
    item('Users', num(n.users)),
    item('Users in trouble', `${trouble ? '⚠ ' : ''}${num(n.users_in_trouble)}`, trouble ? 'alarm' : ''),
    item('Open incidents', num(n.open_incidents), n.open_incidents > 0 ? 'alarm' : '')));
  $('strip').hidden = false;
  const who = data.who;
  $('who').textContent = `Signed in as ${who.name} (${who.role}${who.user ? ` ${who.user}` : ''})`;
  $('session').hidden = false;
}

/** Shows the view the URL names. */
function route() {
  if (!token()) return showSignIn();
  const hash = location.hash || '#/';
  for (const [pattern, view, nav] of views) {
    const match = hash.match(pattern);
    if (!match) continue;
    if (current && current.view.stop) current.view.stop(current.state);
    const container = $('view');
    container.replaceChildren();
    const param = match[1] ? decodeURIComponent(match[1]) : null;
    current = { view, param, state: view.mount(container, param, { overview: latest, who: latest && latest.who }) };
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    // Move focus to the new view's heading so keyboard and screen-reader users start there.
    const heading = container.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
    refreshView();
    return;
  }
  location.hash = '#/';
}

/** Lets the current view fetch and draw what it shows; views skip a refresh while one is still running. */
async function refreshView() {
  const shown = current;
  if (!shown || !shown.view.refresh) return;
  try {
    await shown.view.refresh(shown.state, latest);
  } catch (error) {
    if (error.status !== 401) say(`Update failed: ${error.message}`);
  }
}

async function poll() {
  if (polling || !token() || document.hidden) return;
  polling = true;
  try {
    latest = await api('/api/v1/console/overview');
    // Names change rarely: the directory is fetched once a minute, not with every poll.
    if (Date.now() - namesFetched > NAMES_EVERY_MS) {
      const entries = await apiAll('/api/v1/directory').catch(() => []);
      const key = JSON.stringify(entries);
      namesFetched = Date.now();
      if (key !== namesKey) {
        namesKey = key;
        setNames(entries);
        // Views redraw only what changed in their data: forget what they drew so the names show now.
        if (current) Object.assign(current.state, { shown: null, keys: {} });
      }
    }
    renderStrip(latest);
    await refreshView();
    say(`Updated ${new Date().toLocaleTimeString('en-GB')}; the page refreshes every ${POLL_MS / 1000} s.`);
  } catch (error) {
    if (error.status !== 401) say(`Update failed: ${error.message}`);
  } finally {
    polling = false;
  }
}

function start() {
  route();
  poll();
}

window.addEventListener('stormwatch:unauthorized', () => showSignIn('The token was refused; sign in again.'));
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', poll);
document.addEventListener('DOMContentLoaded', () => {
  $('sign-in').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => showSignIn('Signed out.'));
  setInterval(poll, POLL_MS);
  if (token()) start();
  else showSignIn();
});
