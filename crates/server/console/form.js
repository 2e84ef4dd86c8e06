// Form fields generated from a JSON Schema (the `config_schema` of GET /v1/sink-kinds), with
// validation as you type and a place for the server's own error on each field. Covers what the
// sink kinds use: strings (patterns, lengths, URIs), integers, booleans, enums (also written as
// oneOf/anyOf of consts, with null for "default"), string lists, free objects as JSON, and a
// top-level if/then/else that switches the fields by a discriminator (sentinel's `mode`).
import { h } from './dom.js';

let uid = 0;

export function resolve(schema, root) {
  let s = schema || {};
  for (let i = 0; i < 8 && s.$ref; i++) {
    const path = s.$ref.replace(/^#\//, '').split('/');
    let t = root;
    for (const p of path) t = t?.[p];
    s = { ...(t || {}), ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== '$ref')) };
  }
  return s;
}

/** What input a property needs: {kind: 'text'|'number'|'bool'|'enum'|'list'|'json', ...}. */
export function describe(prop, root) {
  let s = resolve(prop, root);
  if (s.if && s.then && s.else) {
    const t = resolve(s.then, root);
    if (t.type === 'array' || (Array.isArray(t.type) && t.type.includes('array'))) return { kind: 'list', schema: resolve(t.items, root) };
    s = { ...resolve(s.else, root), description: s.description, default: s.default };
  }
  const branches = s.anyOf || s.oneOf;
  if (branches) {
    const real = branches.map((b) => resolve(b, root)).filter((b) => b.type !== 'null');
    const consts = real.flatMap((b) => ('const' in b ? [b.const] : b.enum ? b.enum : []));
    if (consts.length && real.every((b) => 'const' in b || b.enum)) return { kind: 'enum', values: consts.filter((v) => v !== null) };
    if (real.length === 1) return describe({ ...real[0], description: s.description ?? real[0].description, default: s.default ?? real[0].default }, root);
    return { kind: 'text', schema: {}, mixed: real.some((b) => b.type === 'integer') };
  }
  if (s.enum) return { kind: 'enum', values: s.enum.filter((v) => v !== null) };
  const types = [].concat(s.type || 'string').filter((t) => t !== 'null');
  const type = types[0];
  if (type === 'boolean') return { kind: 'bool' };
  if (type === 'integer' || type === 'number') return { kind: 'number', schema: s, integer: type === 'integer' };
  if (type === 'array') return { kind: 'list', schema: resolve(s.items, root) };
  if (type === 'object') return { kind: 'json', schema: s };
  return { kind: 'text', schema: s };
}

/** Client-side check of one value; returns a message or ''. */
function check(desc, raw, required) {
  if (raw === '' || raw === undefined) return required ? 'Required.' : '';
  const s = desc.schema || {};
  if (desc.kind === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n) || (desc.integer && !Number.isInteger(n))) return desc.integer ? 'A whole number.' : 'A number.';
    if (s.minimum !== undefined && n < s.minimum) return `At least ${s.minimum}.`;
    if (s.maximum !== undefined && n > s.maximum) return `At most ${s.maximum}.`;
    return '';
  }
  if (desc.kind === 'json') {
    try { const v = JSON.parse(raw); if (typeof v !== 'object' || Array.isArray(v) || v === null) return 'A JSON object.'; } catch (e) { return `Not JSON: ${e.message}`; }
    return '';
  }
  const values = desc.kind === 'list' ? raw.split(/[\n,]/).map((x) => x.trim()).filter(Boolean) : [raw];
  for (const v of values) {
    if (s.minLength !== undefined && v.length < s.minLength) return `At least ${s.minLength} characters.`;
    if (s.maxLength !== undefined && v.length > s.maxLength) return `At most ${s.maxLength} characters.`;
    if (s.format === 'uri' && !/^[a-z][a-z0-9+.-]*:/i.test(v)) return 'A URL such as https://host/path.';
    if (s.pattern) {
      let re = null;
      try { re = new RegExp(s.pattern, 'u'); } catch { /* a pattern JS cannot read: the server checks it */ }
      if (re && !re.test(v)) return `Not a valid value${desc.kind === 'list' ? ` (${v})` : ''}.`;
    }
  }
  return '';
}

/**
 * One labelled field. `path` (e.g. `config.url`) is where the server's errors land.
 * Returns {el, path, read(): value|undefined, setError(msg), valid(): bool, input}.
 */
export function field(path, label, desc, { value, required, hint, placeholder, secretSet } = {}) {
  const id = `f${++uid}`;
  const err = h('div.error', { id: `${id}-err`, role: 'alert' });
  const hintEl = hint ? h('div.hint', { id: `${id}-hint` }, hint) : null;
  const describedBy = [hintEl && `${id}-hint`, `${id}-err`].filter(Boolean).join(' ');
  let input;
  if (desc.kind === 'bool') {
    input = h('input', { id, type: 'checkbox', checked: value === true, 'aria-describedby': describedBy });
  } else if (desc.kind === 'enum') {
    input = h('select', { id, 'aria-describedby': describedBy },
      required ? null : h('option', { value: '' }, placeholder ? `default (${placeholder})` : '—'),
      desc.values.map((v) => h('option', { value: String(v), selected: value !== undefined && String(value) === String(v) }, String(v))));
  } else if (desc.kind === 'list' || desc.kind === 'json' || desc.kind === 'textarea') {
    const text = value === undefined || value === null ? '' : desc.kind === 'json' ? JSON.stringify(value, null, 2)
      : Array.isArray(value) ? value.join('\n') : String(value);
    input = h('textarea', { id, rows: desc.kind === 'json' ? 4 : 3, placeholder: placeholder || '', 'aria-describedby': describedBy, value: text, spellcheck: 'false' });
  } else {
    const type = desc.secret ? 'password' : desc.kind === 'number' ? 'number' : desc.schema?.format === 'uri' ? 'url' : 'text';
    input = h('input', { id, type, autocomplete: desc.secret ? 'new-password' : 'off', 'aria-describedby': describedBy,
      placeholder: secretSet ? 'set — leave blank to keep' : placeholder || '', value: value === undefined || value === null ? '' : String(value) });
    if (desc.kind === 'number') { if (desc.schema?.minimum !== undefined) input.min = desc.schema.minimum; if (desc.schema?.maximum !== undefined) input.max = desc.schema.maximum; }
  }
  if (required) input.setAttribute('aria-required', 'true');
  input.name = path;
  const labelEl = desc.kind === 'bool'
    ? h('label.check', { for: id }, input, label)
    : h('label', { for: id }, label, required ? h('span', { 'aria-hidden': 'true' }, ' *') : null);
  const el = h('div.field', { dataset: { path } }, labelEl, desc.kind === 'bool' ? null : input, hintEl, err);
  const raw = () => (desc.kind === 'bool' ? input.checked : input.value.trim());
  const setError = (msg) => {
    err.textContent = msg || '';
    if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  };
  const validate = () => { if (desc.kind === 'bool') return ''; const m = check(desc, raw(), required); setError(m); return m; };
  input.addEventListener('input', validate);
  input.addEventListener('change', validate);
  return {
    el, path, input, setError,
    valid: () => !validate(),
    read() {
      const r = raw();
      if (desc.kind === 'bool') return r ? true : value === true ? false : undefined;
      if (r === '') return undefined;
      if (desc.kind === 'number') return Number(r);
      if (desc.kind === 'json') { try { return JSON.parse(r); } catch { return undefined; } }
      if (desc.kind === 'list') return r.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);
      if (desc.kind === 'text' && desc.mixed && /^\d+$/.test(r)) return Number(r);
      return r;
    },
  };
}

/**
 * The fields of an object schema (`config`), re-laid when a discriminator changes.
 * Returns {el, fields(): [field], read(): object}.
 */
export function objectFields(prefix, schema, values = {}) {
  const root = schema;
  const box = h('div');
  let current = [];
  let discriminator = null;
  const top = resolve(schema, root);
  const cond = top.if?.properties && Object.entries(top.if.properties).find(([, v]) => 'const' in v);

  function lay(vals) {
    let s = top;
    if (cond) {
      const [key, { const: when }] = cond;
      const chosen = discriminator ? discriminator.read() : vals[key];
      s = resolve(chosen === when ? top.then : top.else, root);
    }
    const required = new Set(s.required || []);
    current = [];
    const els = [];
    for (const [name, prop] of Object.entries(s.properties || {})) {
      if (cond && name === cond[0]) continue;
      const desc = describe(prop, root);
      const p = resolve(prop, root);
      const def = p.default ?? (prop.default);
      const f = field(`${prefix}.${name}`, name, desc, {
        value: vals[name], required: required.has(name), hint: p.description || prop.description,
        placeholder: def === undefined || def === null ? '' : typeof def === 'object' ? JSON.stringify(def) : String(def),
      });
      current.push(f);
      els.push(f.el);
    }
    box.replaceChildren(...els);
  }

  const wrap = h('div');
  if (cond) {
    const key = cond[0];
    const desc = describe(top.properties?.[key] || { enum: [cond[1].const] }, root);
    discriminator = field(`${prefix}.${key}`, key, desc, { value: values[key], hint: top.description, placeholder: String(top.properties?.[key]?.default ?? '') });
    discriminator.input.addEventListener('change', () => { const v = readAll(); lay(v); });
    wrap.append(discriminator.el);
  }
  wrap.append(box);
  lay(values);

  function readAll() {
    const out = {};
    for (const f of [discriminator, ...current].filter(Boolean)) {
      const v = f.read();
      if (v !== undefined) out[f.path.slice(prefix.length + 1)] = v;
    }
    return out;
  }
  return { el: wrap, fields: () => [discriminator, ...current].filter(Boolean), read: readAll };
}

/** Puts a server error on the field it names (`detail.field`, longest matching path). */
export function placeServerError(fields, err, fallback) {
  const name = err.detail?.field;
  if (name) {
    const parts = name.split('.');
    for (let n = parts.length; n > 0; n--) {
      const path = parts.slice(0, n).join('.');
      const f = fields.find((x) => x.path === path);
      if (f) { f.setError(err.message); f.input.focus(); return f; }
    }
  }
  fallback.textContent = err.message;
  return null;
}
