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
export async function api(path, { method = 'GET', body } = {}) {
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
  return data;
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
