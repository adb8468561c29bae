// Calls to the Stormwatch API: the bearer token kept in this tab's session storage, JSON both ways, and errors that
// keep the API's `field` so forms can show them beside the input at fault.

const KEY = 'stormwatch.token';

export const token = () => sessionStorage.getItem(KEY);
export const setToken = (value) => sessionStorage.setItem(KEY, value);
export const clearToken = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.field = body && typeof body.field === 'string' ? body.field : null;
  }
}

/** Fetches `path`; resolves to the parsed JSON, rejects with an ApiError. A 401 also tells the app to sign in. */
export async function api(path, options = {}) {
  return (await apiPage(path, options)).data;
}

/** Like `api`, with the next page's cursor (the `X-Next-Cursor` header; null on the last page). */
async function apiPage(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const secret = token();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, { error: `Stormwatch cannot be reached (${error.message})` });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text.trim() || `HTTP ${response.status}` };
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent('stormwatch:unauthorized'));
    throw new ApiError(response.status, data);
  }
  return { data, next: response.headers.get('X-Next-Cursor') };
}

/** Most pages a list view follows; past them it shows what it has (lists page at 1,000 items at most). */
const MAX_PAGES = 20;

/**
 * Every page of a list route, at its largest page size, joined: arrays end to end; an object's `key` array
 * (`changes` of the schedule, `owners` of outcomes) joined and its `rows` merged.
 */
export async function apiAll(path, { key = null, limit = 1000 } = {}) {
  const join = path.includes('?') ? '&' : '?';
  let first = null;
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const url = `${path}${join}limit=${limit}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const { data, next } = await apiPage(url);
    if (first === null) {
      first = data;
    } else if (Array.isArray(first)) {
      first.push(...data);
    } else if (key) {
      first[key].push(...data[key]);
      if (Array.isArray(first.rows)) {
        // The timeline's rows: the DCC first, then Users in EUI-64 order, as the API lists them.
        const dccFirst = (a, b) => (a === 'DCC' ? -1 : b === 'DCC' ? 1 : a < b ? -1 : a > b ? 1 : 0);
        first.rows = [...new Set([...first.rows, ...data.rows])].sort(dccFirst);
      }
    }
    if (next === null) break;
    cursor = next;
  }
  return first;
}

/** `path` with the query parameters that have a value. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
