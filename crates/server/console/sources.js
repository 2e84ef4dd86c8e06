// Sources (operator): what auditrelay listens for or fetches (syslog listeners, outbox tables).
// Each source's health at a glance, pause/resume/delete, and a create form generated from
// `GET /v1/source-kinds`, like the sink forms from `GET /v1/sink-kinds`.
import { api, get, getAll, post } from './api.js';
import { h, clear, table, toast, confirmDialog, badge, fmtNum } from './dom.js';
import { field, objectFields, placeServerError } from './form.js';

export async function sourcesPage(main) {
  const [sources, kinds] = await Promise.all([getAll('/v1/sources', 'items', 5000), get('/v1/source-kinds')]);
  const health = await Promise.all(sources.map((s) => get(`/v1/sources/${s.id}/health`).catch(() => null)));
  const rows = sources.map((s, i) => ({ ...s, health: health[i] }));
  const act = (s, verb) => async () => {
    await post(`/v1/sources/${s.id}/${verb}`, {});
    toast(`Source ${verb === 'pause' ? 'paused' : 'resumed'}.`);
    sourcesPage(main);
  };
  clear(main, h('h1', {}, 'Sources'),
    h('p.muted', {}, 'Every event a source appends goes through the same validation, deduplication, limits and durability as POST /v1/events.'),
    table([
      ['Name', (s) => s.name],
      ['Kind', (s) => s.kind],
      ['Tenant', (s) => s.tenant || '—'],
      ['State', (s) => badge(s.health?.state || 'unknown')],
      ['Received', (s) => fmtNum(s.health?.received)],
      ['Appended', (s) => fmtNum(s.health?.appended)],
      ['Malformed', (s) => fmtNum(s.health?.malformed)],
      ['Last error', (s) => s.health?.last_error || '—'],
      ['', (s) => h('span.actions', {},
        h('button.secondary', { type: 'button', on: { click: act(s, s.paused ? 'resume' : 'pause') } }, s.paused ? 'Resume' : 'Pause'),
        h('button.danger', { type: 'button', on: { click: async () => {
          if (!(await confirmDialog(`Delete source ${s.name}? It stops at once; events already appended stay in the log.`))) return;
          await api('DELETE', `/v1/sources/${s.id}`);
          toast('Source deleted.');
          sourcesPage(main);
        } } }, 'Delete'))],
    ], rows, 'No sources yet.'),
    createForm(main, kinds.kinds));
}

function createForm(main, kinds) {
  const kindF = field('kind', 'Kind', { kind: 'enum', values: kinds.map((k) => k.kind) }, { value: kinds[0]?.kind, required: true });
  const nameF = field('name', 'Name', { kind: 'text', schema: { minLength: 1, maxLength: 256 } }, { required: true });
  const tenantF = field('tenant', 'Tenant', { kind: 'text', schema: { pattern: '^[a-z0-9_-]{1,64}$' } }, { hint: 'The tenant its events are appended to.' });
  const cfgBox = h('fieldset', {}, h('legend', {}, 'Settings'));
  const secBox = h('fieldset', {}, h('legend', {}, 'Secrets (write-only)'));
  let cfg = null;
  let secrets = [];
  const lay = () => {
    const k = kinds.find((x) => x.kind === kindF.read()) || kinds[0];
    if (!k) return;
    cfg = objectFields('config', k.config_schema);
    cfgBox.replaceChildren(h('legend', {}, `${k.kind} settings`), cfg.el);
    secrets = k.secrets.map((s) => field(`secrets.${s.name}`, s.name, { kind: 'text', secret: true, schema: {} }, { required: s.required, hint: s.required ? 'Required.' : 'Optional.' }));
    secBox.hidden = !secrets.length;
    secBox.replaceChildren(h('legend', {}, 'Secrets (write-only)'), ...secrets.map((f) => f.el));
  };
  kindF.input.addEventListener('change', lay);
  lay();
  const err = h('div.error', { role: 'alert' });
  return h('form.panel', { novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const all = [nameF, tenantF, ...cfg.fields(), ...secrets];
    if (!all.every((f) => f.valid())) return;
    const body = { name: nameF.read(), kind: kindF.read(), config: cfg.read() };
    if (tenantF.read()) body.tenant = tenantF.read();
    const sec = {};
    for (const f of secrets) { const v = f.read(); if (v) sec[f.path.slice('secrets.'.length)] = v; }
    if (Object.keys(sec).length) body.secrets = sec;
    try {
      await post('/v1/sources', body);
      toast('Source created.');
      sourcesPage(main);
    } catch (e) { placeServerError(all, e, err); }
  } } }, h('h2', {}, 'New source'), h('div.two', {}, kindF.el, nameF.el), tenantF.el, cfgBox, secBox, err,
  h('button', { type: 'submit' }, 'Create source'));
}
