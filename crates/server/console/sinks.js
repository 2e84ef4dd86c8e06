// Sinks: the list, and the create/edit form generated from GET /v1/sink-kinds, with the
// filter/transform editor and its live preview (POST /v1/sinks/preview).
import { api, get, getAll, post, session } from './api.js';
import { h, clear, badge, table, toast } from './dom.js';
import { field, objectFields, placeServerError } from './form.js';

export async function sinksPage(main) {
  const sinks = await getAll('/v1/sinks', 'items', 1000);
  clear(main,
    h('div.row.spread', {}, h('h1', {}, 'Sinks'), h('a.button', { href: '#/sinks/new' }, 'New sink')),
    table([
      ['Name', (s) => h('a', { href: `#/sinks/${s.id}` }, s.name)],
      ['Kind', (s) => s.kind],
      ['Tenant', (s) => s.tenant || 'all tenants'],
      ['Format', (s) => s.format],
      ['State', (s) => (s.paused ? badge('paused') : badge('enabled', 'ok'))],
      ['', (s) => h('a', { href: `#/sinks/${s.id}/edit`, 'aria-label': `Edit ${s.name}` }, 'Edit')],
    ], sinks, 'No sinks yet.'));
}

let kindsCache = null;
async function kinds() {
  if (!kindsCache) kindsCache = (await get('/v1/sink-kinds')).kinds;
  return kindsCache;
}

export async function sinkForm(main, id) {
  const [all, existing, tenants] = await Promise.all([
    kinds(),
    id ? get(`/v1/sinks/${id}`) : null,
    session.caps.operator && !id ? getAll('/v1/tenants', 'items', 1000) : [],
  ]);
  const editing = !!existing;
  const formError = h('div.error', { role: 'alert' });
  const status = h('p.muted', { 'aria-live': 'polite' });
  const kindBox = h('div');
  const preview = h('div', { 'aria-live': 'polite' });
  let fields = [];
  let config = null;
  let kind = existing?.kind || 'webhook';

  const fixed = [];
  const nameF = field('name', 'Name', { kind: 'text', schema: { minLength: 1, maxLength: 128 } }, { value: existing?.name, required: true });
  fixed.push(nameF);
  let tenantF = null;
  if (session.caps.operator && !editing) {
    tenantF = field('tenant', 'Tenant', { kind: 'enum', values: tenants.map((t) => t.id) },
      { hint: 'The tenant whose events the sink reads; "all tenants" makes an operator sink over every tenant.', placeholder: 'all tenants' });
    tenantF.input.options[0].textContent = 'All tenants';
    fixed.push(tenantF);
  }
  const kindF = editing ? null : field('kind', 'Kind', { kind: 'enum', values: all.map((k) => k.kind) }, { value: kind, required: true });
  if (kindF) fixed.push(kindF);
  const typesF = field('event_types', 'Event types', { kind: 'list', schema: { pattern: '^[a-z0-9_.*?-]{1,128}$' } },
    { value: existing?.event_types, hint: 'Globs such as decision.* — one per line; empty: every type.', placeholder: 'decision.*' });
  const filterF = field('filter', 'Filter (CEL)', { kind: 'textarea' },
    { value: existing?.filter, hint: 'Only events for which this is true are sent, e.g. event.severity >= 7', placeholder: 'event.severity >= 7' });
  const transformF = field('transform', 'Transform (JSON)', { kind: 'json' },
    { value: existing?.transform, hint: 'drop / redact / hash / rename / set, e.g. {"redact": ["actor.ip_address"]}', placeholder: '{"redact": ["actor.ip_address"]}' });
  const startF = editing ? null : field('start_at', 'Start at', { kind: 'enum', values: ['now', 'earliest'] }, { placeholder: 'now', hint: 'Where a new sink starts reading the log.' });
  const num = (path, label, max, value) => field(path, label, { kind: 'number', integer: true, schema: { minimum: path.endsWith('flush_interval_ms') ? 0 : 1, maximum: max } }, { value });
  const delivery = [
    num('batch.max_events', 'Batch: max events', 10000, existing?.batch?.max_events),
    num('batch.flush_interval_ms', 'Batch: flush interval (ms)', 3600000, existing?.batch?.flush_interval_ms),
    num('retry.max_attempts', 'Retry: max attempts', 100, existing?.retry?.max_attempts),
    num('retry.initial_backoff_ms', 'Retry: initial backoff (ms)', 3600000, existing?.retry?.initial_backoff_ms),
    num('retry.max_backoff_ms', 'Retry: max backoff (ms)', 86400000, existing?.retry?.max_backoff_ms),
    num('timeout_ms', 'Timeout (ms)', 300000, existing?.timeout_ms),
    field('on_exhausted', 'When retries are exhausted', { kind: 'enum', values: ['dead_letter', 'pause'] }, { value: existing?.on_exhausted, placeholder: 'dead_letter' }),
  ];
  let formatF = null;
  let secretFs = [];

  function layKind() {
    const k = all.find((x) => x.kind === kind);
    config = objectFields('config', k.config_schema, existing?.config || {});
    formatF = field('format', 'Format', { kind: 'enum', values: k.formats }, { value: existing?.format, placeholder: k.default_format });
    secretFs = k.secrets.map((s) => field(`secrets.${s.name}`, s.name, { kind: 'text', secret: true, schema: {} }, {
      hint: s.note || (s.required ? 'Required.' : 'Optional.'), secretSet: existing?.secrets_set?.includes(s.name),
      required: s.required && !existing?.secrets_set?.includes(s.name),
    }));
    clear(kindBox,
      h('fieldset', {}, h('legend', {}, `${kind} settings`), config.el),
      secretFs.length ? h('fieldset', {}, h('legend', {}, 'Secrets (write-only)'), secretFs.map((f) => f.el)) : null,
      formatF.el);
    fields = [...fixed, ...config.fields(), ...secretFs, formatF, typesF, filterF, transformF, startF, ...delivery].filter(Boolean);
    for (const f of fields) f.input.addEventListener('input', schedulePreview);
  }
  if (kindF) kindF.input.addEventListener('change', () => { kind = kindF.read() || 'webhook'; layKind(); schedulePreview(); });

  function definition() {
    const d = {};
    const put = (k, v) => { if (v !== undefined) d[k] = v; };
    put('name', nameF.read());
    if (!editing) { d.kind = kind; put('tenant', tenantF?.read()); put('start_at', startF.read()); }
    const cfg = config.read();
    if (editing) for (const k of Object.keys(existing.config || {})) if (!(k in cfg) && existing.config[k] !== null) cfg[k] = null;
    d.config = cfg;
    const secrets = {};
    for (const f of secretFs) { const v = f.read(); if (v !== undefined) secrets[f.path.slice(8)] = v; }
    if (Object.keys(secrets).length) d.secrets = secrets;
    put('format', formatF.read());
    d.event_types = typesF.read() || [];
    const filter = filterF.read();
    if (filter !== undefined) d.filter = filter; else if (editing && existing.filter) d.filter = null;
    const transform = transformF.read();
    if (transform !== undefined) d.transform = transform; else if (editing && existing.transform) d.transform = null;
    for (const f of delivery) {
      const v = f.read();
      if (v === undefined) continue;
      const [a, b] = f.path.split('.');
      if (b) { d[a] = d[a] || {}; d[a][b] = v; } else d[a] = v;
    }
    return d;
  }

  let previewTimer = null;
  let previewSeq = 0;
  function schedulePreview() { clearTimeout(previewTimer); previewTimer = setTimeout(runPreview, 400); }
  async function runPreview() {
    const seq = ++previewSeq;
    const sink = definition();
    if (editing) { sink.kind = existing.kind; if (existing.tenant) sink.tenant = existing.tenant; }
    for (const k of Object.keys(sink.config)) if (sink.config[k] === null) delete sink.config[k];
    if (sink.filter === null) delete sink.filter;
    if (sink.transform === null) delete sink.transform;
    if (!sink.name) sink.name = 'preview';
    if (!sink.config.url && kind === 'webhook') sink.config.url = 'https://preview.invalid/';
    try {
      const answer = await post('/v1/sinks/preview', { sink });
      if (seq !== previewSeq) return;
      const matched = answer.results.filter((r) => r.matched).length;
      clear(preview,
        h('p', { dataset: { preview: 'summary' } }, `${matched} of ${answer.results.length} recent events would be sent.`),
        answer.results.length ? h('ol.events', {}, answer.results.map((r) => h('li', { dataset: { matched: String(r.matched) } },
          h('details', {}, h('summary', {}, h('span', {}, `#${r.offset ?? '—'}`), r.matched ? badge('sent', 'ok') : badge('skipped', 'warn'),
            r.filter_error ? h('span.err', {}, r.filter_error) : null),
          h('div.body', {}, r.record ? h('pre', {}, r.record) : h('p.muted', {}, 'Not sent.')))))) : h('p.muted', {}, 'The tenant has no events yet.'));
    } catch (e) {
      if (seq !== previewSeq) return;
      clear(preview, h('p.err', { dataset: { preview: 'error' } }, e.detail?.field ? `${e.detail.field}: ${e.message}` : e.message));
    }
  }

  const submit = h('button', { type: 'submit' }, editing ? 'Save changes' : 'Create sink');
  const form = h('form', { novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    for (const f of fields) f.setError('');
    const bad = fields.filter((f) => !f.valid());
    if (bad.length) { bad[0].input.focus(); formError.textContent = 'Fix the marked fields.'; return; }
    submit.disabled = true;
    try {
      const saved = editing ? await api('PATCH', `/v1/sinks/${id}`, definition()) : await post('/v1/sinks', definition());
      if (saved.generated_secrets) {
        clear(main, h('h1', {}, 'Sink created'), secretsOnce(saved.generated_secrets), h('a.button', { href: `#/sinks/${saved.id}` }, 'Go to the sink'));
        return;
      }
      toast(editing ? 'Saved.' : 'Sink created.');
      location.hash = `#/sinks/${saved.id}`;
    } catch (e) {
      placeServerError(fields, e, formError);
    } finally { submit.disabled = false; }
  } } },
  fixed.map((f) => f.el), kindBox, typesF.el,
  h('fieldset', {}, h('legend', {}, 'Filter and transform'),
    h('div.two', {}, h('div', {}, filterF.el, transformF.el), h('div', {}, h('h2', { id: 'preview-h' }, 'Preview'), preview))),
  h('details.panel', {}, h('summary', {}, 'Delivery settings'), startF?.el, delivery.map((f) => f.el)),
  formError, h('div.row', {}, submit, h('a.button.secondary', { href: editing ? `#/sinks/${id}` : '#/sinks' }, 'Cancel')), status);
  layKind();
  clear(main, h('h1', {}, editing ? `Edit ${existing.name}` : 'New sink'), form);
  nameF.input.focus();
  runPreview();
  return () => clearTimeout(previewTimer);
}

export function secretsOnce(secrets) {
  return h('div.panel.secret-once', {}, h('p', {}, h('strong', {}, 'Shown once: '), 'store these now; the server keeps only what it needs and never shows them again.'),
    Object.entries(secrets).map(([k, v]) => h('div.field', {}, h('label', {}, k), h('div.row', {},
      h('code', { dataset: { secret: k } }, v),
      h('button.secondary', { type: 'button', on: { click: async () => { await navigator.clipboard?.writeText(v); toast('Copied.'); } } }, 'Copy')))));
}
