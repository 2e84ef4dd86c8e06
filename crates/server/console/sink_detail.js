// One sink: health, actions (test, pause/resume, replay, delete), charts from
// GET /v1/sinks/{id}/stats, recent delivery attempts and dead letters (retry, delete).
import { api, get, post } from './api.js';
import { h, clear, badge, stat, table, toast, confirmDialog, fmtNum, fmtMs, fmtTime } from './dom.js';

const REFRESH_MS = 5000;

export async function sinkDetail(main, id) {
  const sink = await get(`/v1/sinks/${id}`);
  const healthBox = h('div.grid', { dataset: { health: '' } });
  const testOut = h('div', { 'aria-live': 'polite' });
  const chartsBox = h('div');
  const deliveriesBox = h('div');
  const deadBox = h('div');
  const replayOut = h('div', { 'aria-live': 'polite' });
  let windowSel = '1h';
  let stopped = false;
  let timer = null;

  const pauseBtn = h('button.secondary', { type: 'button' }, sink.paused ? 'Resume' : 'Pause');
  pauseBtn.addEventListener('click', async () => {
    const resume = pauseBtn.textContent === 'Resume';
    await post(`/v1/sinks/${id}/${resume ? 'resume' : 'pause'}`);
    pauseBtn.textContent = resume ? 'Pause' : 'Resume';
    toast(resume ? 'Resumed.' : 'Paused.');
    refresh();
  });
  const testBtn = h('button', { type: 'button' }, 'Send test');
  testBtn.addEventListener('click', async () => {
    testBtn.disabled = true;
    clear(testOut, h('p.muted', {}, 'Sending…'));
    try {
      const r = await post(`/v1/sinks/${id}/test`);
      clear(testOut, h('p', { dataset: { test: r.delivered ? 'delivered' : 'failed' } }, badge(r.outcome), ' ',
        `status ${r.status ?? '—'} · ${fmtMs(r.latency_ms)}`, r.error ? h('span.err', {}, ` · ${r.error}`) : null));
    } catch (e) { clear(testOut, h('p.err', {}, e.message)); } finally { testBtn.disabled = false; }
  });
  const deleteBtn = h('button.danger', { type: 'button' }, 'Delete');
  deleteBtn.addEventListener('click', async () => {
    if (!(await confirmDialog(`Delete the sink “${sink.name}”? Its cursor, delivery log and dead letters go with it.`))) return;
    await api('DELETE', `/v1/sinks/${id}`);
    toast('Sink deleted.');
    location.hash = '#/sinks';
  });

  const fromIn = h('input#replay-from', { required: true, placeholder: '1 or 2026-06-01T10:00:00Z' });
  const toIn = h('input#replay-to', { placeholder: 'empty: the log head' });
  const tenantIn = sink.tenant ? null : h('input#replay-tenant', { placeholder: 'tenant id' });
  const replayForm = h('form.panel', { on: { submit: async (ev) => {
    ev.preventDefault();
    const pos = (v) => (/^\d+$/.test(v) ? Number(v) : v);
    const body = { from: pos(fromIn.value.trim()) };
    if (toIn.value.trim()) body.to = pos(toIn.value.trim());
    if (tenantIn?.value.trim()) body.tenant = tenantIn.value.trim();
    try {
      const r = await post(`/v1/sinks/${id}/replay`, body);
      clear(replayOut, h('p', { dataset: { replay: r.id } }, `Replay ${r.id}: offsets ${r.from_offset}–${r.to_offset}, ${r.state}.`));
      watchReplay(r.id);
    } catch (e) { clear(replayOut, h('p.err', {}, e.message)); }
  } } },
  h('h2', {}, 'Replay a range'),
  h('div.two', {},
    h('div.field', {}, h('label', { for: 'replay-from' }, 'From (offset or time)'), fromIn),
    h('div.field', {}, h('label', { for: 'replay-to' }, 'To (optional)'), toIn)),
  tenantIn ? h('div.field', {}, h('label', { for: 'replay-tenant' }, 'Tenant'), tenantIn) : null,
  h('button', { type: 'submit' }, 'Replay'), replayOut);

  async function watchReplay(rid) {
    for (let i = 0; i < 60 && !stopped; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const r = await get(`/v1/sinks/${id}/replays/${rid}`).catch(() => null);
      if (!r || stopped) return;
      clear(replayOut, h('p', { dataset: { replay: r.id, state: r.state } }, `Replay ${r.id}: offsets ${r.from_offset}–${r.to_offset}, ${r.state}, ${r.delivered_events} delivered.`));
      if (r.state !== 'running' && r.state !== 'pending') return;
    }
  }

  const windows = h('div.row', { role: 'group', 'aria-label': 'Chart window' }, ['1h', '24h'].map((w) => {
    const b = h('button.secondary', { type: 'button', 'aria-pressed': String(w === windowSel) }, w === '1h' ? 'Last hour' : 'Last day');
    b.addEventListener('click', () => { windowSel = w; for (const x of windows.children) x.setAttribute('aria-pressed', String(x === b)); refresh(); });
    return b;
  }));

  clear(main,
    h('div.row.spread', {}, h('h1', {}, sink.name), h('div.row', {}, testBtn, pauseBtn, h('a.button.secondary', { href: `#/sinks/${id}/edit` }, 'Edit'), deleteBtn)),
    h('p.muted', {}, `${sink.kind} · ${sink.format} · ${sink.tenant || 'all tenants'} · ${sink.id}`),
    testOut, healthBox,
    h('div.row.spread', {}, h('h2', {}, 'Deliveries over time'), windows), chartsBox,
    h('h2', {}, 'Dead letters'), deadBox,
    h('h2', {}, 'Recent attempts'), deliveriesBox,
    replayForm);

  async function refresh() {
    clearTimeout(timer);
    try {
      const [health, stats, deliveries, dead] = await Promise.all([
        get(`/v1/sinks/${id}/health`),
        get(`/v1/sinks/${id}/stats?window=${windowSel}`).catch((e) => ({ error: e.message })),
        get(`/v1/sinks/${id}/deliveries?limit=20`),
        get(`/v1/sinks/${id}/dead-letters?limit=50`),
      ]);
      if (stopped) return;
      const total = health.success_count + health.failure_count;
      clear(healthBox,
        h('div.stat', { dataset: { stat: 'state' } }, h('div.label', {}, 'State'), h('div.value', { dataset: { state: health.state } }, badge(health.state))),
        stat('Lag', fmtNum(health.lag), 'lag'),
        stat('Success rate', total ? `${((100 * health.success_count) / total).toFixed(1)} %` : '—'),
        stat('Delivered events', fmtNum(health.delivered_events), 'delivered'),
        stat('Consecutive failures', fmtNum(health.consecutive_failures), 'failures'),
        stat('Latency p50 / p99', health.latency_ms ? `${fmtMs(health.latency_ms.p50)} / ${fmtMs(health.latency_ms.p99)}` : '—'),
        stat('Filtered / filter errors', `${fmtNum(health.filtered_events)} / ${fmtNum(health.filter_errors)}`),
        stat('Last error', health.last_error ? `${health.last_error.status ?? ''} ${health.last_error.message}`.trim() : 'none', 'last-error'));
      pauseBtn.textContent = health.paused ? 'Resume' : 'Pause';
      clear(chartsBox, stats.error ? h('p.muted', {}, `Charts unavailable: ${stats.error}`) : charts(stats));
      clear(deliveriesBox, table([
        ['When', (a) => fmtTime(a.at)],
        ['Purpose', (a) => a.purpose],
        ['Offsets', (a) => `${a.first_offset}–${a.last_offset} (${a.event_count})`],
        ['Attempt', (a) => String(a.attempt)],
        ['Outcome', (a) => badge(a.outcome)],
        ['Status', (a) => (a.status ?? '—').toString()],
        ['Latency', (a) => fmtMs(a.latency_ms)],
        ['Error', (a) => h('span.err', {}, a.error || '')],
      ], deliveries.items, 'No attempts yet.'));
      clear(deadBox, table([
        ['Created', (d) => fmtTime(d.created_at)],
        ['Offsets', (d) => `${d.first_offset}–${d.last_offset} (${d.event_count})`],
        ['Reason', (d) => h('span.err', {}, d.reason)],
        ['Attempts', (d) => String(d.attempts.length)],
        ['', (d) => h('div.row', { dataset: { dl: d.id } },
          h('button.secondary', { type: 'button', on: { click: () => retry(d) } }, 'Retry'),
          h('button.danger', { type: 'button', on: { click: () => removeDl(d) } }, 'Delete'))],
      ], dead.items, 'No dead letters.'));
    } catch (e) {
      if (!stopped) clear(healthBox, h('p.err', {}, e.message));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function retry(d) {
    try {
      const r = await post(`/v1/sinks/${id}/dead-letters/${d.id}/retry`);
      toast(r.delivered === false ? `Retry failed: ${r.error || r.outcome}` : 'Dead letter re-delivered.');
    } catch (e) { toast(`Retry failed: ${e.message}`); }
    refresh();
  }
  async function removeDl(d) {
    if (!(await confirmDialog(`Delete dead letter ${d.id} (offsets ${d.first_offset}–${d.last_offset})? Its events will not be re-sent.`))) return;
    await api('DELETE', `/v1/sinks/${id}/dead-letters/${d.id}`);
    toast('Dead letter deleted.');
    refresh();
  }

  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Bars of delivered events per bucket (failed attempts in red) and a p90 latency line, as SVG. */
function charts(stats) {
  const b = stats.buckets || [];
  const events = (x) => x.delivered_events;
  return h('div.two', {},
    h('figure', {}, svgBars(b, events, (x) => x.failed_attempts), h('figcaption.muted', {},
      `Delivered events (bars) and failed attempts (red) per ${stats.bucket_seconds / 60} min; total ${fmtNum(b.reduce((n, x) => n + events(x), 0))} delivered, ${fmtNum(b.reduce((n, x) => n + x.failed_attempts, 0))} failed.`)),
    h('figure', {}, svgLine(b, (x) => x.latency_p90_ms), h('figcaption.muted', {},
      `Latency p90 per bucket (ms); p50 over the window ${fmtMs(stats.latency_ms?.p50)}, p99 ${fmtMs(stats.latency_ms?.p99)}.`)));
}

const NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; }

function svgBars(buckets, ok, fail) {
  const W = 600, H = 120, n = Math.max(buckets.length, 1);
  const max = Math.max(1, ...buckets.map((x) => ok(x) + fail(x)));
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Delivered events and failures per bucket' });
  buckets.forEach((x, i) => {
    const w = W / n, hOk = (ok(x) / max) * (H - 14), hFail = (fail(x) / max) * (H - 14);
    if (hOk) root.append(svg('rect', { class: 'bar', x: i * w, y: H - hOk, width: Math.max(w - 1, 0.5), height: hOk }));
    if (hFail) root.append(svg('rect', { class: 'bar fail', x: i * w, y: H - hOk - hFail, width: Math.max(w - 1, 0.5), height: hFail }));
  });
  const label = svg('text', { x: 4, y: 11 }); label.textContent = `max ${max}`; root.append(label);
  return root;
}

function svgLine(buckets, f) {
  const W = 600, H = 120, n = Math.max(buckets.length - 1, 1);
  const vals = buckets.map(f);
  const max = Math.max(1, ...vals.filter((v) => v !== null && v !== undefined));
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Latency p90 per bucket' });
  let d = '';
  vals.forEach((v, i) => { if (v === null || v === undefined) return; d += `${d ? 'L' : 'M'}${(i / n) * W},${H - (v / max) * (H - 14)}`; });
  if (d) root.append(svg('path', { class: 'line', d }));
  // A lone minute has no line to draw: mark each point too.
  vals.forEach((v, i) => { if (v !== null && v !== undefined) root.append(svg('circle', { class: 'dot', cx: (i / n) * W, cy: H - (v / max) * (H - 14), r: 2.5 })); });
  const label = svg('text', { x: 4, y: 11 }); label.textContent = `max ${max.toFixed(0)} ms`; root.append(label);
  return root;
}
