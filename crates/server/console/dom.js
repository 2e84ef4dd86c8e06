// Small DOM helpers: every text goes through textContent, never innerHTML, so data from the
// API (event fields, error messages) can never become markup.

/** h('tag.class#id', {attrs, on: {event: fn}}, ...children) */
export function h(spec, attrs = {}, ...children) {
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1)); else el.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') { for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn); }
    else if (k === 'dataset') { Object.assign(el.dataset, v); }
    else if (k in el && typeof v !== 'string') { el[k] = v; }
    else if (k === 'value' || k === 'checked') { el[k] = v; }
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }

export function badge(text, cls = text) { return h('span.badge', { class: `badge ${cls}` }, text); }

export function stat(label, value, id) {
  return h('div.stat', { dataset: id ? { stat: id } : {} }, h('div.label', {}, label), h('div.value', {}, value));
}

export function toast(message) {
  const box = document.getElementById('toast');
  const item = h('div', {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** A table; `cols` = [[label, row => cell]]; on a phone each row becomes a card. */
export function table(cols, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p.muted', {}, empty);
  return h('div.table-wrap', {}, h('table.cards', {},
    h('thead', {}, h('tr', {}, cols.map(([label]) => h('th', { scope: 'col' }, label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, cols.map(([label, f]) => h('td', { 'data-label': label }, f(r))))))));
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(message, confirmLabel = 'Delete') {
  return new Promise((resolve) => {
    const ok = h('button.danger', { type: 'button' }, confirmLabel);
    const cancel = h('button.secondary', { type: 'button' }, 'Cancel');
    const dlg = h('dialog', { 'aria-label': 'Confirm' }, h('p', {}, message), h('div.row', {}, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', () => done(false));
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

export function fmtNum(n) { return n === null || n === undefined ? '—' : Number(n).toLocaleString('en'); }
export function fmtMs(n) { return n === null || n === undefined ? '—' : `${Number(n).toFixed(n < 10 ? 1 : 0)} ms`; }
export function fmtTime(s) { if (!s) return '—'; const d = new Date(s); return isNaN(d) ? s : d.toLocaleString(); }
