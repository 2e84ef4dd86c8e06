// End-to-end browser test of the web console: Debian's chromium, driven by playwright-core,
// against a real auditrelay server (started by crates/server/tests/it/console.rs) and a real
// loopback webhook receiver owned by this script. Each step asserts what a person would see.
//
// Env: AUDITRELAY_BASE (http://127.0.0.1:PORT), AUDITRELAY_ADMIN_TOKEN, SCREENSHOT_DIR,
// METRICS_FILE (page weight and time to interactive, JSON).
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';

const base = process.env.AUDITRELAY_BASE;
const admin = process.env.AUDITRELAY_ADMIN_TOKEN;
const shots = process.env.SCREENSHOT_DIR;
if (!base || !admin || !shots) throw new Error('AUDITRELAY_BASE, AUDITRELAY_ADMIN_TOKEN and SCREENSHOT_DIR are required');
fs.mkdirSync(shots, { recursive: true });

const log = (...a) => console.log('[e2e]', ...a);
let passed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  passed++;
  log(`ok   ${name} (${Date.now() - t0} ms)`);
}
/** Polls `fn` until it returns a truthy value (no fixed sleeps). */
async function until(what, fn, timeout = 20000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }

// --- the receiver: answers 200, or 500 while `failing` -------------------------------------
const received = [];
let failing = false;
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    if (failing) { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('receiver down for the test'); return; }
    try { received.push(JSON.parse(body)); } catch { received.push(body); }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
const receivedEvents = () => received.flatMap((b) => (b && Array.isArray(b.events) ? b.events : b && b.data ? [b.data] : []));

async function apiCall(token, method, p, body) {
  const res = await fetch(`${base}${p}`, { method, headers: { Authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const context = await browser.newContext({ viewport: LAPTOP });
const page = await context.newPage();
const consoleErrors = [];
// Refused API calls (a 400 the test provokes) are logged by Chromium as "Failed to load
// resource"; those are expected. Anything else logged as an error, or thrown, fails the test.
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(e.message));

/** Screenshot of the current page at laptop and phone width. */
async function shoot(name) {
  await page.setViewportSize(LAPTOP);
  await page.screenshot({ path: path.join(shots, `${name}-laptop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: path.join(shots, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(LAPTOP);
}
const text = (sel) => page.locator(sel).first().innerText();

let metrics = {};
let acmeKey, globexKey, sinkId;

try {
  await step('/ redirects to /ui/, served with a strict CSP; page weight and time to interactive', async () => {
    const bytes = new Map();
    page.on('response', async (r) => { if (r.url().includes('/ui/')) { try { bytes.set(r.url(), (await r.body()).length); } catch { /* redirects have no body */ } } });
    const response = await page.goto(`${base}/`);
    assert(page.url() === `${base}/ui/`, `landed on ${page.url()}`);
    const csp = response.headers()['content-security-policy'] || '';
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) assert(csp.includes(d), `CSP has ${d}: ${csp}`);
    await page.getByLabel('Operator token or tenant key').waitFor();
    await until('the sign-in field has focus', () => page.evaluate(() => document.activeElement?.id === 'token'));
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return { dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd, interactive_ms: performance.now() };
    });
    await page.waitForLoadState('load');
    const total = [...bytes.values()].reduce((a, b) => a + b, 0);
    metrics = { page_weight_bytes: total, files: Object.fromEntries([...bytes].map(([u, b]) => [u.replace(base, ''), b])), ...timing };
    log('page weight', total, 'bytes; time to interactive (sign-in field focused)', Math.round(timing.interactive_ms), 'ms');
    assert(total > 0 && total < 200_000, `page weight ${total}`);
    await shoot('signin');
  });

  await step('a bad token is refused at the field', async () => {
    await page.getByLabel('Operator token or tenant key').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await until('the refusal', async () => (await text('#token-error')).includes('not accepted'));
  });

  await step('sign in as operator: every page in the navigation', async () => {
    await page.getByLabel('Operator token or tenant key').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    for (const n of ['Overview', 'Sinks', 'Live events', 'Tenants & keys', 'Integrity']) await page.getByRole('link', { name: n }).waitFor();
    assert(!(await page.evaluate(() => location.href)).includes(admin), 'the token is not in the URL');
    assert(await page.evaluate(() => sessionStorage.getItem('auditrelay.token')) === admin, 'the token is in session storage');
  });

  await step('create tenants and keys through the forms; the key is shown once', async () => {
    await page.getByRole('link', { name: 'Tenants & keys' }).click();
    for (const id of ['acme', 'globex']) {
      await page.getByLabel('Tenant id').fill(id);
      await page.getByRole('button', { name: 'Create tenant' }).click();
      await page.getByRole('button', { name: id, exact: true }).waitFor();
    }
    const keys = {};
    for (const id of ['acme', 'globex']) {
      await page.getByRole('button', { name: id, exact: true }).click();
      await page.getByRole('heading', { name: `Tenant ${id}` }).waitFor();
      await page.getByLabel('Key name').fill(`${id}-console`);
      for (const s of ['ingest', 'read', 'manage']) await page.getByLabel(s, { exact: true }).check();
      await page.getByRole('button', { name: 'Create key' }).click();
      const code = page.locator('[data-once] code').first();
      await code.waitFor();
      keys[id] = await code.innerText();
      assert(/^ark_/.test(keys[id]), `a key: ${keys[id]}`);
      if (id === 'acme') await shoot('tenants');
    }
    acmeKey = keys.acme;
    globexKey = keys.globex;
    // Seed each tenant's log so previews and the live page have something.
    const evs = (n, sev) => Array.from({ length: n }, (_, i) => ({ type: 'user.login', severity: sev(i), actor: { id: `usr_${i}` }, outcome: 'success' }));
    assert((await apiCall(acmeKey, 'POST', '/v1/events', evs(4, (i) => (i % 2 ? 9 : 3)))).status === 202, 'acme events');
    assert((await apiCall(globexKey, 'POST', '/v1/events', evs(2, () => 5))).status === 202, 'globex events');
  });

  await step('the generated form shows the server\'s field error for a private URL', async () => {
    await page.getByRole('link', { name: 'Sinks' }).click();
    await page.getByRole('link', { name: 'New sink' }).click();
    await page.getByRole('heading', { name: 'New sink' }).waitFor();
    await page.getByLabel('Name').fill('soc-webhook');
    await page.getByLabel('Tenant').selectOption('acme');
    await page.getByLabel('Kind').selectOption('webhook');
    await page.getByLabel(/^url/).fill('not a url');
    await until('the client-side check', async () => (await page.locator('[data-path="config.url"] .error').innerText()).length > 0);
    await page.getByLabel(/^url/).fill('http://10.20.30.40/hook');
    await page.getByRole('button', { name: 'Create sink' }).click();
    const err = page.locator('[data-path="config.url"] .error');
    await until('the server error at config.url', async () => /private|loopback|not allowed|refused/i.test(await err.innerText()));
    assert(await page.getByLabel(/^url/).getAttribute('aria-invalid') === 'true', 'the field is marked invalid');
    assert(await page.evaluate(() => document.activeElement?.name === 'config.url'), 'focus moved to the field');
    await shoot('sink-form-error');
  });

  await step('create a webhook sink to the loopback receiver through the form', async () => {
    await page.getByLabel(/^url/).fill(receiverUrl);
    await page.locator('summary', { hasText: 'Delivery settings' }).click();
    await page.getByLabel('Start at').selectOption('earliest');
    await page.getByLabel('Batch: flush interval (ms)').fill('50');
    await page.getByLabel('Retry: max attempts').fill('2');
    await page.getByLabel('Retry: initial backoff (ms)').fill('50');
    await page.getByLabel('Retry: max backoff (ms)').fill('100');
    await page.getByRole('button', { name: 'Create sink' }).click();
    await page.getByRole('heading', { name: 'Sink created' }).waitFor();
    assert(/^whsec_/.test(await text('[data-secret="signing_secret"]')), 'the generated signing secret is shown once');
    await page.getByRole('link', { name: 'Go to the sink' }).click();
    await page.getByRole('heading', { name: 'soc-webhook', exact: true }).waitFor();
    sinkId = (await page.evaluate(() => location.hash)).split('/')[2];
    assert(/^snk_/.test(sinkId), `sink id ${sinkId}`);
    await until('the backlog (4 events) reached the receiver', () => receivedEvents().length >= 4);
  });

  await step('send a test: the receiver\'s status and latency are shown', async () => {
    const before = received.length;
    await page.getByRole('button', { name: 'Send test' }).click();
    await page.locator('[data-test="delivered"]').waitFor();
    assert((await text('[data-test]')).includes('status 200'), 'status 200 shown');
    await until('the test request arrived', () => received.length > before);
  });

  await step('pause and resume', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await until('state paused', async () => (await page.locator('[data-state]').getAttribute('data-state')) === 'paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await until('state active', async () => (await page.locator('[data-state]').getAttribute('data-state')) === 'active');
  });

  await step('ingest events and watch them arrive live', async () => {
    await page.getByRole('link', { name: 'Live events' }).click();
    await page.getByLabel('Tenant').selectOption('acme');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until('stream connected', async () => (await page.locator('[data-live]').getAttribute('data-live')) === 'true');
    const r = await apiCall(acmeKey, 'POST', '/v1/events', [{ type: 'decision.rejected', severity: 9, actor: { id: 'usr_live' } }]);
    assert(r.status === 202, 'ingested');
    const offset = r.body.events[0].offset;
    await page.locator(`li[data-offset="${offset}"][data-type="decision.rejected"]`).waitFor();
    await page.locator(`li[data-offset="${offset}"] summary`).click();
    assert((await page.locator(`li[data-offset="${offset}"] pre`).first().innerText()).includes('usr_live'), 'the JSON is shown');
    await page.locator(`li[data-offset="${offset}"]`).getByRole('button', { name: 'cef' }).click();
    await until('the CEF rendering', async () => (await page.locator(`li[data-offset="${offset}"] pre`).nth(1).innerText()).startsWith('CEF:'));
    await shoot('live');
  });

  await step('the sink\'s health changes when the receiver fails, and recovers when it returns', async () => {
    await page.goto(`${base}/ui/#/sinks/${sinkId}`);
    await page.getByRole('heading', { name: 'soc-webhook', exact: true }).waitFor();
    failing = true;
    assert((await apiCall(acmeKey, 'POST', '/v1/events', [{ type: 'user.logout', severity: 2 }])).status === 202, 'ingested');
    await until('the last error shows the 500', async () => (await text('[data-stat="last-error"] .value')).includes('500'), 30000);
    await until('a dead letter appears', () => page.locator('[data-dl]').count(), 30000);
    await shoot('sink-detail-failing');
    failing = false;
    const before = receivedEvents().length;
    assert((await apiCall(acmeKey, 'POST', '/v1/events', [{ type: 'user.login', severity: 4 }])).status === 202, 'ingested');
    await until('deliveries resume', () => receivedEvents().length > before, 30000);
    await until('state active, no consecutive failures', async () => (await page.locator('[data-state]').getAttribute('data-state')) === 'active'
      && (await text('[data-stat="failures"] .value')) === '0', 30000);
  });

  await step('retry a dead letter', async () => {
    const before = receivedEvents().filter((e) => e.type === 'user.logout').length;
    await page.locator('[data-dl]').first().getByRole('button', { name: 'Retry' }).click();
    await until('the dead-lettered event reached the receiver', () => receivedEvents().filter((e) => e.type === 'user.logout').length > before);
    await until('the dead letter is gone', async () => (await page.locator('[data-dl]').count()) === 0, 15000);
  });

  await step('replay a range', async () => {
    const before = receivedEvents().filter((e) => e.offset === 1).length;
    await page.getByLabel('From (offset or time)').fill('1');
    await page.getByLabel('To (optional)').fill('2');
    await page.getByRole('button', { name: 'Replay' }).click();
    await until('the replay finished', async () => (await page.locator('[data-replay]').getAttribute('data-state')) === 'completed', 30000);
    await until('offset 1 re-delivered', () => receivedEvents().filter((e) => e.offset === 1).length > before);
    await until('the chart shows deliveries', () => page.locator('svg.chart rect.bar').count());
    await shoot('sink-detail');
  });

  await step('edit the filter and see the preview change', async () => {
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: 'Edit soc-webhook' }).waitFor();
    const summary = page.locator('[data-preview="summary"]');
    await summary.waitFor();
    const all = await summary.innerText();
    const m = /^(\d+) of (\d+)/.exec(all);
    assert(m && m[1] === m[2], `every recent event matches without a filter: ${all}`);
    await page.getByLabel('Filter (CEL)').fill('event.severity >= 9');
    await until('the preview narrowed', async () => { const t = await summary.innerText(); const k = /^(\d+) of (\d+)/.exec(t); return k && Number(k[1]) < Number(k[2]) && Number(k[1]) > 0; });
    await page.getByLabel('Filter (CEL)').fill('event.severity >=');
    await until('a filter syntax error is shown', () => page.locator('[data-preview="error"]').count());
    await page.getByLabel('Filter (CEL)').fill('event.severity >= 9');
    await until('the preview narrowed again', async () => (await page.locator('[data-preview="summary"]').count()) > 0);
    await shoot('sink-edit-preview');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'soc-webhook', exact: true }).waitFor();
    const saved = await apiCall(admin, 'GET', `/v1/sinks/${sinkId}`);
    assert(saved.body.filter === 'event.severity >= 9', `filter saved: ${saved.body.filter}`);
    assert(saved.body.secrets_set.includes('signing_secret'), 'the secret was kept');
  });

  await step('overview and sinks list', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator(`tr[data-sink="${sinkId}"]`).waitFor();
    await shoot('overview');
    await page.getByRole('link', { name: 'Sinks' }).click();
    await page.getByRole('link', { name: 'soc-webhook', exact: true }).waitFor();
    await shoot('sinks');
  });

  await step('integrity: verify the live log in the browser', async () => {
    await page.getByRole('link', { name: 'Integrity' }).click();
    await page.getByLabel('Tenant').selectOption('acme');
    await page.getByRole('button', { name: 'Verify the live log' }).click();
    await until('verified', async () => (await page.locator('[data-verify]').getAttribute('data-verify')) === 'ok');
    await shoot('integrity');
  });

  await step('sources: create a syslog listener through the generated form, see it receive, pause it', async () => {
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => { const p = probe.address().port; probe.close(() => resolve(p)); });
    });
    await page.getByRole('link', { name: 'Sources' }).click();
    await page.getByRole('heading', { name: 'Sources' }).waitFor();
    await page.getByText('No sources yet.').waitFor();
    await page.getByLabel('Kind').selectOption('syslog');
    await page.getByLabel('Name').fill('firewall');
    await page.getByLabel('Tenant', { exact: true }).fill('acme');
    // A privileged port first: the server's own field error lands on `config.listen`.
    await page.getByLabel('listen').fill('127.0.0.1:514');
    await page.getByRole('button', { name: 'Create source' }).click();
    await until('the server\'s error on listen', async () => /1024/.test(await page.locator('[data-path="config.listen"] .error').innerText()));
    await page.getByLabel('listen').fill(`127.0.0.1:${port}`);
    await page.getByRole('button', { name: 'Create source' }).click();
    await page.getByRole('cell', { name: 'firewall' }).waitFor();
    const sent = await new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.end('<86>1 2026-12-04T10:00:00Z fw01 sshd 411 auth.login - login accepted\n', () => resolve(true));
      });
      sock.on('error', reject);
    });
    assert(sent, 'sent one syslog message');
    await until('the source appended the message', async () => {
      // The page shows health as of its load: reload it (the token stays in session storage).
      await page.reload();
      await page.getByRole('heading', { name: 'Sources' }).waitFor();
      const row = page.getByRole('row').filter({ hasText: 'firewall' });
      return (await row.count()) === 1 && /running/.test(await row.innerText())
        && (await row.locator('td[data-label="Appended"]').innerText()).trim() === '1';
    });
    await shoot('sources');
    await page.getByRole('row').filter({ hasText: 'firewall' }).getByRole('button', { name: 'Pause' }).click();
    await until('paused', async () => /paused/.test(await page.getByRole('row').filter({ hasText: 'firewall' }).innerText()));
  });

  await step('a tenant key sees nothing of another tenant', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Operator token or tenant key').fill(globexKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert(!(await page.getByRole('link', { name: 'Tenants & keys' }).isVisible()), 'no tenants page for a tenant key');
    assert(!(await page.getByRole('link', { name: 'Sources' }).isVisible()), 'no sources page for a tenant key');
    assert((await text('#who')).includes('tenant key'), 'signed in as a tenant key');
    await page.getByRole('link', { name: 'Sinks' }).click();
    await page.getByText('No sinks yet.').waitFor();
    await page.goto(`${base}/ui/#/sinks/${sinkId}`);
    await until('acme\'s sink answers not found', async () => /not found/i.test(await page.locator('main').innerText()));
    await page.getByRole('link', { name: 'Live events' }).click();
    await until('stream connected', async () => (await page.locator('[data-live]').getAttribute('data-live')) === 'true');
    assert((await apiCall(acmeKey, 'POST', '/v1/events', [{ type: 'acme.secret' }])).status === 202, 'acme event');
    const mine = await apiCall(globexKey, 'POST', '/v1/events', [{ type: 'globex.mine' }]);
    await page.locator(`li[data-type="globex.mine"]`).waitFor();
    assert((await page.locator('li[data-type="acme.secret"]').count()) === 0, 'acme\'s event is not shown to globex');
    const shown = await page.locator('ul.events li').count();
    assert(shown === 1, `only globex's own new event is shown (${shown})`);
    log('globex offset', mine.body.events[0].offset);
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByText('No sinks yet.').waitFor();
    await shoot('tenant-key-overview');
  });

  await step('keyboard: the sign-in form and navigation work without a mouse', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Operator token or tenant key').waitFor();
    await page.keyboard.type(admin);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.getByRole('link', { name: 'Sinks' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Sinks' }).waitFor();
  });

  assert(consoleErrors.length === 0, `no errors in the browser console: ${consoleErrors.join(' | ')}`);
  if (process.env.METRICS_FILE) fs.writeFileSync(process.env.METRICS_FILE, JSON.stringify(metrics, null, 2));
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  await page.screenshot({ path: path.join(os.tmpdir(), 'auditrelay-console-failure.png'), fullPage: true }).catch(() => {});
  console.error('[e2e] FAILED after', passed, 'steps:', e.stack || e);
  console.error('[e2e] browser console errors:', consoleErrors);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
  receiver.close();
}
