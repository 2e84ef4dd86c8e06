// Integrity: the signing key, the latest signed checkpoint, and a check of the live log in
// this browser: the hash chain recomputed over an export (SHA-256 of the previous value and
// the RFC 8785 form of each event), and the checkpoint's Ed25519 signature (docs/integrity.md).
import { get, getAll, session, tenantQuery } from './api.js';
import { h, clear, fmtNum, fmtTime } from './dom.js';

export async function integrityPage(main) {
  const key = await get('/v1/integrity/key');
  const tenants = session.caps.operator ? await getAll('/v1/tenants', 'items', 5000) : [];
  const tenantSel = session.caps.operator ? h('select#int-tenant', {}, tenants.map((t) => h('option', { value: t.id }, t.id))) : null;
  const cpBox = h('div');
  const out = h('div', { 'aria-live': 'polite' });
  const verifyBtn = h('button', { type: 'button' }, 'Verify the live log');
  let latest = null;

  async function loadCheckpoint() {
    const q = tenantQuery(tenantSel?.value);
    const all = tenantSel && !tenantSel.value ? [] : await getAll(`/v1/integrity/checkpoints${q ? `?${q}` : ''}`, 'checkpoints', 100000);
    latest = all[all.length - 1] || null;
    clear(cpBox, latest ? h('dl', {}, h('dt', {}, 'Tenant'), h('dd', {}, latest.tenant_id), h('dt', {}, 'Offset'), h('dd', {}, fmtNum(latest.offset)),
      h('dt', {}, 'Chain'), h('dd', {}, h('code', {}, latest.chain)), h('dt', {}, 'Signed at'), h('dd', {}, fmtTime(latest.signed_at)))
      : h('p.muted', {}, 'No checkpoint yet (one is signed every minute while the log moves).'));
  }
  tenantSel?.addEventListener('change', () => { clear(out); loadCheckpoint(); });
  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    clear(out, h('p.muted', {}, 'Verifying…'));
    try { clear(out, await verify(tenantSel?.value, key, latest)); } catch (e) { clear(out, h('p.err', { dataset: { verify: 'error' } }, e.message)); }
    verifyBtn.disabled = false;
  });

  clear(main, h('h1', {}, 'Integrity'),
    h('div.panel', {}, h('h2', {}, 'Signing key'), h('p', {}, `${key.algorithm}: `, h('code', {}, key.public_key)),
      h('p.muted', {}, 'Record this key out of band: a key read from the server under examination proves less.')),
    tenantSel ? h('div.field', {}, h('label', { for: 'int-tenant' }, 'Tenant'), tenantSel) : null,
    h('div.panel', {}, h('h2', {}, 'Latest checkpoint'), cpBox),
    h('div.panel', {}, verifyBtn, out));
  if (tenantSel && !tenants.length) { clear(cpBox, h('p.muted', {}, 'No tenants yet.')); verifyBtn.disabled = true; return null; }
  await loadCheckpoint();
  return null;
}

/** RFC 8785: members sorted by UTF-16 code units, ECMAScript number and string forms. */
export function jcs(v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(',')}}`;
}

const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

async function verify(tenant, key, checkpoint) {
  if (!crypto.subtle) throw new Error('This browser offers no Web Crypto here (it needs HTTPS or localhost).');
  const q = tenantQuery(tenant);
  const res = await fetch(`/v1/export${q ? `?${q}` : ''}`, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!res.ok) throw new Error(`Export refused: HTTP ${res.status}`);
  const started = performance.now();
  const enc = new TextEncoder();
  let prev = new Uint8Array(32);
  let last = null;
  let n = 0;
  let chainAtCheckpoint = null;
  const lines = (await res.text()).split('\n').filter(Boolean);
  for (const line of lines) {
    const ev = JSON.parse(line);
    const stated = ev.chain;
    delete ev.chain;
    if (last === null && ev.offset !== 1) throw new Error(`The log starts at offset ${ev.offset} (a purged prefix): this check starts at 1 only; use auditrelay verify with the checkpoint.`);
    if (last !== null && ev.offset !== last + 1) return result(false, `Gap or reordering: offset ${ev.offset} follows ${last}.`);
    const canonical = enc.encode(jcs(ev));
    const buf = new Uint8Array(32 + canonical.length);
    buf.set(prev, 0);
    buf.set(canonical, 32);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    if (hex(digest) !== stated) return result(false, `The event at offset ${ev.offset} does not match its chain value (altered or inserted).`);
    prev = digest;
    last = ev.offset;
    n++;
    if (checkpoint && ev.offset === checkpoint.offset) chainAtCheckpoint = stated;
  }
  const notes = [`${fmtNum(n)} events, offsets 1–${last ?? 0}, chain intact (${Math.round(performance.now() - started)} ms).`];
  if (checkpoint) {
    const msg = `auditrelay-checkpoint-v1\n${checkpoint.tenant_id}\n${checkpoint.offset}\n${checkpoint.chain}\n${checkpoint.signed_at}\n`;
    let ok = false;
    try {
      const pub = await crypto.subtle.importKey('raw', b64(key.public_key), { name: 'Ed25519' }, false, ['verify']);
      ok = await crypto.subtle.verify({ name: 'Ed25519' }, pub, b64(checkpoint.signature), enc.encode(msg));
    } catch (e) { return result(false, `${notes[0]} The checkpoint signature could not be checked here: ${e.message}`); }
    if (!ok) return result(false, `${notes[0]} The latest checkpoint's signature is NOT valid.`);
    if (chainAtCheckpoint !== checkpoint.chain) return result(false, `${notes[0]} The log's chain at offset ${checkpoint.offset} differs from the signed checkpoint: history was rewritten.`);
    notes.push(`The checkpoint at offset ${checkpoint.offset} is signed by the key above and matches the log.`);
  } else notes.push('No checkpoint to compare with yet.');
  return result(true, notes.join(' '));
}

function result(ok, text) {
  return h('p', { dataset: { verify: ok ? 'ok' : 'failed' }, class: ok ? '' : 'err' }, h('strong', {}, ok ? 'Verified. ' : 'Failed. '), text);
}
