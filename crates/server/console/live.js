// Live events: the tenant's stream over SSE (GET /v1/stream). EventSource cannot send an
// Authorization header, so the stream is read with fetch and parsed here (text/event-stream:
// `id:` = offset, `data:` = the event). Reconnects resume with Last-Event-ID.
import { get, getAll, post, session } from './api.js';
import { h, clear, badge, fmtTime } from './dom.js';

const KEEP = 200;
// Minimal configs of kinds whose formats the "render as" view borrows (nothing is sent).
const SAMPLE = {
  syslog: { host: 'example.invalid' },
  webhook: { url: 'https://example.invalid/' },
  generic_https: { url: 'https://example.invalid/' },
  s3: { bucket: 'example', region: 'us-east-1' },
};

export async function live(main) {
  const tenants = session.caps.operator ? await getAll('/v1/tenants', 'items', 1000) : [];
  const kinds = session.caps.manage ? (await get('/v1/sink-kinds')).kinds : [];
  const tenantSel = session.caps.operator ? h('select#live-tenant', {}, tenants.map((t) => h('option', { value: t.id }, t.id))) : null;
  const typesIn = h('input#live-types', { placeholder: 'e.g. user.*, decision.rejected', autocomplete: 'off' });
  const pauseBtn = h('button.secondary', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const state = h('span.muted', { 'aria-live': 'polite' }, 'Connecting…');
  const list = h('ul.events', { 'aria-label': 'Events, newest first' });
  let paused = false;
  let held = [];
  let controller = null;
  let lastId = null;
  let stopped = false;
  let count = 0;

  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    pauseBtn.setAttribute('aria-pressed', String(paused));
    pauseBtn.textContent = paused ? `Resume (${held.length} held)` : 'Pause';
    if (!paused) { for (const e of held) show(e); held = []; }
  });
  const apply = h('button', { type: 'submit' }, 'Apply');
  const controls = h('form.panel.row', { on: { submit: (ev) => { ev.preventDefault(); lastId = null; list.replaceChildren(); connect(); } } },
    tenantSel ? h('div.field', {}, h('label', { for: 'live-tenant' }, 'Tenant'), tenantSel) : null,
    h('div.field', {}, h('label', { for: 'live-types' }, 'Types (globs, comma-separated)'), typesIn),
    apply, pauseBtn, state);
  if (tenantSel && !tenants.length) { clear(main, h('h1', {}, 'Live events'), h('p', {}, 'No tenants yet.')); return null; }
  clear(main, h('h1', {}, 'Live events'), controls, list);

  function show(ev) {
    count++;
    const li = h('li', { dataset: { offset: String(ev.offset), type: ev.type } });
    const renders = h('div');
    const formats = [...new Set(kinds.filter((k) => SAMPLE[k.kind]).flatMap((k) => k.formats))];
    li.append(h('details', {}, h('summary', {},
      h('span', {}, `#${ev.offset}`), h('span.type', {}, ev.type), badge(ev.outcome || 'unknown', ev.outcome === 'failure' ? 'bad' : ev.outcome === 'success' ? 'ok' : 'warn'),
      h('span.muted', {}, ev.actor?.id || ''), h('span.muted', {}, fmtTime(ev.occurred_at))),
    h('div.body', {}, h('pre', {}, JSON.stringify(ev, null, 2)),
      formats.length ? h('div.row', { role: 'group', 'aria-label': 'Render as' }, h('span.muted', {}, 'Render as:'),
        formats.map((f) => h('button.secondary', { type: 'button', on: { click: () => render(ev, f, renders) } }, f))) : null,
      renders)));
    list.prepend(li);
    while (list.children.length > KEEP) list.lastElementChild.remove();
  }

  async function render(ev, format, box) {
    const kind = kinds.find((k) => SAMPLE[k.kind] && k.formats.includes(format));
    const event = Object.fromEntries(Object.entries(ev).filter(([k]) => !['offset', 'tenant_id', 'received_at', 'chain', 'transformed'].includes(k)));
    const sink = { name: 'render', kind: kind.kind, config: SAMPLE[kind.kind], format };
    if (session.caps.operator && tenantSel) sink.tenant = tenantSel.value;
    try {
      const r = await post('/v1/sinks/preview', { sink, events: [event] });
      clear(box, h('p.muted', {}, `As ${format} (via a ${kind.kind} sink; offset and chain are added at delivery):`), h('pre', {}, r.results[0]?.record ?? '—'));
    } catch (e) { clear(box, h('p.err', {}, e.message)); }
  }

  async function connect() {
    if (controller) controller.abort();
    controller = new AbortController();
    const q = new URLSearchParams();
    if (tenantSel) q.set('tenant', tenantSel.value);
    if (typesIn.value.trim()) q.set('types', typesIn.value.split(',').map((s) => s.trim()).filter(Boolean).join(','));
    const headers = { Authorization: `Bearer ${session.token}`, Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = lastId;
    state.textContent = 'Connecting…';
    try {
      const res = await fetch(`/v1/stream?${q}`, { headers, signal: controller.signal });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        state.textContent = `Stream refused: ${body.error?.message || res.status}`;
        return;
      }
      state.textContent = 'Live';
      state.dataset.live = 'true';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + (buf[cut] === '\r' ? 4 : 2));
          const data = [];
          let id = null;
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            else if (line.startsWith('id:')) id = line.slice(3).trim();
          }
          if (!data.length) continue; // heartbeat comment
          if (id) lastId = id;
          let ev;
          try { ev = JSON.parse(data.join('\n')); } catch { continue; }
          if (paused) { held.push(ev); pauseBtn.textContent = `Resume (${held.length} held)`; } else show(ev);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      state.textContent = `Disconnected: ${e.message}`;
    }
    state.dataset.live = 'false';
    if (!stopped) { state.textContent = 'Reconnecting…'; setTimeout(() => { if (!stopped) connect(); }, 2000); }
  }
  connect();
  return () => { stopped = true; controller?.abort(); };
}
