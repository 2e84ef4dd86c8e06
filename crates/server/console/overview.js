// Overview: every sink's state at a glance, trouble first; rates from the change between two
// refreshes. Cells are updated in place so live numbers never move the layout.
import { get, getAll, session } from './api.js';
import { h, clear, badge, stat, fmtNum, fmtMs } from './dom.js';

const REFRESH_MS = 5000;
const ORDER = { circuit_open: 0, backing_off: 1, paused: 2, active: 3 };

export async function overview(main) {
  const summary = h('div.grid', { 'aria-live': 'off' });
  const list = h('div');
  const updated = h('p.muted', { 'aria-live': 'polite' });
  clear(main, h('h1', {}, 'Overview'), summary, h('h2', {}, 'Sinks'), list, updated);
  let prev = null;
  let timer = null;
  let stopped = false;

  async function refresh() {
    const now = performance.now();
    const sinks = session.caps.manage ? await getAll('/v1/sinks', 'items', 1000) : [];
    const healths = await Promise.all(sinks.map((s) => get(`/v1/sinks/${s.id}/health`).catch(() => null)));
    const ingested = session.caps.operator ? await ingestTotal() : null;
    if (stopped) return;
    const rows = sinks.map((s, i) => ({ sink: s, health: healths[i] }));
    const rate = (a, b) => (prev && b !== null && a !== null ? Math.max(0, (a - b) / ((now - prev.at) / 1000)) : null);
    for (const r of rows) {
      const before = prev?.delivered.get(r.sink.id);
      r.rate = r.health ? rate(r.health.delivered_events, before ?? null) : null;
    }
    // The tenant's log head (from the sinks' positions) stands in for the ingest counter a
    // tenant key cannot read.
    const head = rows.flatMap((r) => r.health?.tenants || []).reduce((m, t) => Math.max(m, t.head), 0);
    const ingestNow = ingested ?? (rows.length ? head : null);
    const ingestRate = rate(ingestNow, prev?.ingest ?? null);
    rows.sort((a, b) => (ORDER[a.health?.state] ?? 0) - (ORDER[b.health?.state] ?? 0) || a.sink.name.localeCompare(b.sink.name));
    const failing = rows.filter((r) => r.health && r.health.state !== 'active').length;
    clear(summary,
      stat('Sinks', fmtNum(rows.length)),
      stat('Paused or failing', fmtNum(failing)),
      stat('Ingest rate', ingestRate === null ? '…' : `${ingestRate.toFixed(1)} ev/s`),
      stat('Total lag', fmtNum(rows.reduce((n, r) => n + (r.health?.lag || 0), 0))));
    clear(list, !session.caps.manage ? h('p.muted', {}, 'This key has no manage scope: sinks are not shown.')
      : rows.length ? sinkTable(rows) : h('p', {}, 'No sinks yet. ', h('a', { href: '#/sinks/new' }, 'Create one.')));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    prev = { at: now, delivered: new Map(rows.map((r) => [r.sink.id, r.health?.delivered_events ?? null])), ingest: ingestNow };
  }

  async function loop() {
    try { await refresh(); } catch (e) { updated.textContent = `Refresh failed: ${e.message}`; }
    if (!stopped) timer = setTimeout(loop, REFRESH_MS);
  }
  await loop();
  return () => { stopped = true; clearTimeout(timer); };
}

function sinkTable(rows) {
  const wrap = h('div.table-wrap');
  const body = h('tbody');
  for (const { sink, health, rate } of rows) {
    const total = health ? health.success_count + health.failure_count : 0;
    body.append(h('tr', { dataset: { sink: sink.id } },
      h('td', { 'data-label': 'Sink' }, h('a', { href: `#/sinks/${sink.id}` }, sink.name), h('div.muted', {}, sink.kind, sink.tenant ? ` · ${sink.tenant}` : ' · all tenants')),
      h('td', { 'data-label': 'State' }, health ? badge(health.state) : badge('unknown', 'warn')),
      h('td', { 'data-label': 'Lag' }, fmtNum(health?.lag)),
      h('td', { 'data-label': 'Success' }, total ? `${((100 * health.success_count) / total).toFixed(1)} %` : '—'),
      h('td', { 'data-label': 'Rate' }, rate === null || rate === undefined ? '…' : `${rate.toFixed(1)} ev/s`),
      h('td', { 'data-label': 'p50' }, fmtMs(health?.latency_ms?.p50)),
      h('td', { 'data-label': 'Last error', class: 'err' }, health?.last_error ? `${health.last_error.status ?? ''} ${health.last_error.message}`.trim() : '')));
  }
  wrap.append(h('table.cards', {},
    h('thead', {}, h('tr', {}, ['Sink', 'State', 'Lag', 'Success', 'Rate', 'p50', 'Last error'].map((c) => h('th', { scope: 'col' }, c)))), body));
  return wrap;
}

async function ingestTotal() {
  const res = await fetch('/metrics');
  if (!res.ok) return null;
  let total = 0;
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('auditrelay_events_ingested_total')) total += Number(line.split(' ').pop()) || 0;
  }
  return total;
}
