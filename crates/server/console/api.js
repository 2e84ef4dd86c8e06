// The API client: the token lives in sessionStorage (gone when the tab closes) and only ever
// travels in the Authorization header, never in a URL.

const KEY = 'auditrelay.token';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_error';
    this.detail = e.detail || {};
  }
}

export const session = {
  token: sessionStorage.getItem(KEY),
  caps: null, // {operator, manage, read, ingest, tenant}
};

export function setToken(token) {
  session.token = token;
  if (token) sessionStorage.setItem(KEY, token); else sessionStorage.removeItem(KEY);
}

export async function api(method, path, body, { token = session.token, signal } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && token === session.token) window.dispatchEvent(new CustomEvent('auditrelay:unauthorized'));
    throw err;
  }
  return data;
}

export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b, o) => api('POST', p, b === undefined ? {} : b, o);

/** Every page of a list route (bounded: `max` items). */
export async function getAll(path, field = 'items', max = 5000) {
  const out = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await get(`${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page[field]);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

/**
 * What a token may do, found by asking (there is no "who am I" route): the operator lists
 * tenants; a tenant key's scopes show as 200 or 403 on a route of each scope. Nothing is
 * stored: the ingest probe sends an event without `type`, which is refused either way.
 */
export async function probe(token) {
  const status = async (method, path, body) => {
    try { await api(method, path, body, { token }); return 200; } catch (e) { return e.status || 0; }
  };
  const tenants = await status('GET', '/v1/tenants?limit=1');
  if (tenants === 401) throw new ApiError(401, { error: { message: 'This token is not accepted.' } });
  if (tenants === 200) return { operator: true, manage: true, read: true, ingest: true, tenant: null };
  const [manage, read, ingest] = await Promise.all([
    status('GET', '/v1/sinks?limit=1'),
    status('GET', '/v1/events?limit=1'),
    status('POST', '/v1/events', {}),
  ]);
  return { operator: false, manage: manage === 200, read: read === 200, ingest: ingest === 400, tenant: null };
}

/** `tenant=` for the operator's calls that need one; a tenant key's is implied. */
export function tenantQuery(tenant) {
  return session.caps.operator && tenant ? `tenant=${encodeURIComponent(tenant)}` : '';
}
