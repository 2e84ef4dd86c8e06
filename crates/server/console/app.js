// The console's shell: sign-in, navigation (hash routes, so the token never enters a URL and
// the server serves one page), and the page views in their own modules.
import { session, setToken, probe, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { overview } from './overview.js';
import { sinksPage, sinkForm } from './sinks.js';
import { sinkDetail } from './sink_detail.js';
import { live } from './live.js';
import { tenantsPage } from './tenants.js';
import { integrityPage } from './integrity.js';
import { sourcesPage } from './sources.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let stopCurrent = null; // a view's cleanup (timers, streams)

const routes = [
  [/^#\/overview$/, 'overview', null, () => overview(main)],
  [/^#\/sinks$/, 'sinks', 'manage', () => sinksPage(main)],
  [/^#\/sinks\/new$/, 'sinks', 'manage', () => sinkForm(main, null)],
  [/^#\/sinks\/(snk_[0-9a-f]+)\/edit$/, 'sinks', 'manage', (m) => sinkForm(main, m[1])],
  [/^#\/sinks\/(snk_[0-9a-f]+)$/, 'sinks', 'manage', (m) => sinkDetail(main, m[1])],
  [/^#\/live$/, 'live', 'read', () => live(main)],
  [/^#\/tenants$/, 'tenants', 'operator', () => tenantsPage(main)],
  [/^#\/integrity$/, 'integrity', 'read', () => integrityPage(main)],
  [/^#\/sources$/, 'sources', 'operator', () => sourcesPage(main)],
];

async function render() {
  if (stopCurrent) { try { stopCurrent(); } catch { /* a view's cleanup must not block the next */ } stopCurrent = null; }
  if (!session.token || !session.caps) return signIn();
  const hash = location.hash || '#/overview';
  for (const [re, name, cap, view] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    for (const a of nav.querySelectorAll('a')) {
      if (a.dataset.nav === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    if (cap && !session.caps[cap]) { clear(main, h('h1', {}, 'Not available'), h('p', {}, 'This key cannot use this page.')); return; }
    try {
      stopCurrent = (await view(m)) || null;
    } catch (e) {
      clear(main, h('h1', {}, 'Something went wrong'), h('p.err', {}, e.message));
    }
    document.title = `${main.querySelector('h1')?.textContent || 'Console'} · auditrelay`;
    return;
  }
  location.hash = '#/overview';
}

function showNav() {
  const caps = session.caps;
  nav.hidden = !caps;
  for (const a of nav.querySelectorAll('a[data-cap]')) a.parentElement.hidden = !caps || !caps[a.dataset.cap];
  const who = document.getElementById('who');
  who.textContent = !caps ? '' : caps.operator ? 'Signed in: operator'
    : `Signed in: tenant key (${['ingest', 'read', 'manage'].filter((s) => caps[s]).join(', ') || 'no scopes'})`;
  document.getElementById('signout').hidden = !caps;
}

function signIn(message) {
  showNav();
  const input = h('input#token', { type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-hint token-error' });
  const error = h('div.error#token-error', { role: 'alert' }, message || '');
  const form = h('form.panel.signin', { on: { submit: async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const token = input.value.trim();
    if (!token) { error.textContent = 'Enter a token.'; input.focus(); return; }
    try {
      const caps = await probe(token);
      setToken(token);
      session.caps = caps;
      showNav();
      if (!location.hash || location.hash === '#/signin') location.hash = '#/overview'; else render();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401 ? 'This token is not accepted.' : `Could not sign in: ${e.message}`;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  } } },
    h('h1', {}, 'Sign in'),
    h('div.field', {}, h('label', { for: 'token' }, 'Operator token or tenant key'), input,
      h('div.hint#token-hint', {}, 'Kept in this tab only (session storage) and sent only in the Authorization header.'), error),
    h('button', { type: 'submit' }, 'Sign in'));
  clear(main, form);
  input.focus();
}

document.getElementById('signout').addEventListener('click', () => {
  setToken(null);
  session.caps = null;
  location.hash = '';
  render();
});
window.addEventListener('auditrelay:unauthorized', () => {
  setToken(null);
  session.caps = null;
  signIn('The token was refused (revoked or rotated?). Sign in again.');
});
window.addEventListener('hashchange', render);

(async () => {
  if (session.token) {
    try { session.caps = await probe(session.token); } catch { setToken(null); }
  }
  showNav();
  render();
})();
