// Tenants and keys (operator): create tenants; create keys with scopes (the secret is shown
// once, with a copy button), revoke them; each tenant's retention policy.
import { api, get, getAll, post } from './api.js';
import { h, clear, table, toast, confirmDialog, fmtTime } from './dom.js';
import { field, placeServerError } from './form.js';
import { secretsOnce } from './sinks.js';

export async function tenantsPage(main) {
  const tenants = await getAll('/v1/tenants', 'items', 5000);
  const idF = field('id', 'Tenant id', { kind: 'text', schema: { pattern: '^[a-z0-9_-]{1,64}$' } }, { required: true, hint: '1–64 characters of a–z, 0–9, _ and -.' });
  const nameF = field('name', 'Display name', { kind: 'text', schema: { maxLength: 256 } }, {});
  const err = h('div.error', { role: 'alert' });
  const create = h('form.panel', { novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (![idF, nameF].every((f) => f.valid())) return;
    try {
      await post('/v1/tenants', { id: idF.read(), name: nameF.read() });
      toast('Tenant created.');
      tenantsPage(main);
    } catch (e) { placeServerError([idF, nameF], e, err); }
  } } }, h('h2', {}, 'New tenant'), h('div.two', {}, idF.el, nameF.el), err, h('button', { type: 'submit' }, 'Create tenant'));
  const detail = h('div');
  clear(main, h('h1', {}, 'Tenants & keys'),
    table([
      ['Tenant', (t) => h('button.secondary', { type: 'button', on: { click: () => showTenant(detail, t) } }, t.id)],
      ['Name', (t) => t.name],
      ['Created', (t) => fmtTime(t.created_at)],
    ], tenants, 'No tenants yet.'),
    create, detail);
}

async function showTenant(box, tenant) {
  const t = encodeURIComponent(tenant.id);
  const [keys, retention] = await Promise.all([getAll(`/v1/tenants/${t}/keys`, 'items', 5000), get(`/v1/tenants/${t}/retention`)]);
  const once = h('div');
  const nameF = field('name', 'Key name', { kind: 'text', schema: { maxLength: 256 } }, { hint: 'What the key is for, e.g. billing-service.' });
  const scopes = ['ingest', 'read', 'manage'].map((s) => ({ s, box: h('input', { type: 'checkbox', id: `scope-${s}`, value: s }) }));
  const keyErr = h('div.error', { role: 'alert' });
  const keyForm = h('form.panel', { on: { submit: async (ev) => {
    ev.preventDefault();
    keyErr.textContent = '';
    const chosen = scopes.filter((x) => x.box.checked).map((x) => x.s);
    if (!chosen.length) { keyErr.textContent = 'Choose at least one scope.'; scopes[0].box.focus(); return; }
    try {
      const k = await post(`/v1/tenants/${t}/keys`, { name: nameF.read() || '', scopes: chosen });
      await showTenant(box, tenant);
      box.querySelector('[data-once]').replaceChildren(secretsOnce({ [`key ${k.id} (${k.scopes.join(', ')})`]: k.key }));
    } catch (e) { keyErr.textContent = e.message; }
  } } }, h('h3', {}, 'New key'), nameF.el,
  h('fieldset', {}, h('legend', {}, 'Scopes'), scopes.map(({ s, box: b }) => h('label.check', { for: `scope-${s}` }, b, s))),
  keyErr, h('button', { type: 'submit' }, 'Create key'));

  const p = retention.policy;
  const num = (k, label) => field(`${k}`, label, { kind: 'number', integer: true, schema: { minimum: 1, maximum: 36500 } },
    { value: retention.overrides?.[k] ?? undefined, placeholder: String(retention.defaults[k]) });
  const rf = [num('active_days', 'Active days'), num('purge_after_days', 'Purge after days'), num('hard_limit_days', 'Hard limit days')];
  const autoPurge = field('auto_purge', 'Delete archived events automatically', { kind: 'bool' }, { value: p.auto_purge });
  const retErr = h('div.error', { role: 'alert' });
  const retForm = h('form.panel', { novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    retErr.textContent = '';
    if (!rf.every((f) => f.valid())) return;
    const body = { auto_purge: autoPurge.input.checked };
    for (const f of rf) { const v = f.read(); if (v !== undefined) body[f.path] = v; }
    try { await api('PUT', `/v1/tenants/${t}/retention`, body); toast('Retention saved.'); } catch (e) { placeServerError(rf, e, retErr); }
  } } }, h('h3', {}, 'Retention'),
  h('p.muted', {}, `In force: active ${p.active_days} d, ${p.auto_purge ? `purged after ${p.purge_after_days} d` : 'never purged'}, hard limit ${p.hard_limit_days} d. Empty fields follow the server default.`),
  h('div.grid', {}, rf.map((f) => f.el)), autoPurge.el, retErr, h('button', { type: 'submit' }, 'Save retention'));

  clear(box, h('h2', { tabindex: '-1' }, `Tenant ${tenant.id}`), h('div', { dataset: { once: '' } }, once),
    table([
      ['Key', (k) => h('code', {}, k.id)],
      ['Name', (k) => k.name],
      ['Scopes', (k) => k.scopes.join(', ')],
      ['Last used', (k) => fmtTime(k.last_used_at)],
      ['', (k) => (k.revoked_at ? `revoked ${fmtTime(k.revoked_at)}` : h('button.danger', { type: 'button', on: { click: async () => {
        if (!(await confirmDialog(`Revoke key ${k.name || k.id}? Clients using it are refused at once.`, 'Revoke'))) return;
        await api('DELETE', `/v1/tenants/${t}/keys/${k.id}`);
        toast('Key revoked.');
        showTenant(box, tenant);
      } } }, 'Revoke'))],
    ], keys, 'No keys yet.'),
    h('div.two', {}, keyForm, retForm));
  box.querySelector('h2').focus();
}
