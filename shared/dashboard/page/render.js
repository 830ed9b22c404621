// render.js — the DOM from the state. Elements are updated in place (a
// progress bar keeps its identity while it moves), and text always goes in
// through textContent, never as markup.

const $ = (id) => document.getElementById(id);
let renderQueued = false;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderConnection();
    renderProviders();
    renderFlights();
    renderRecent();
    renderAlerts();
    $('updated').textContent = state.updatedAt ? `Last update ${fmtTime(state.updatedAt)}.` : 'Not updated yet.';
  });
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// child returns parent's element with id, created by make when missing.
function child(parent, id, make) {
  let e = document.getElementById(id);
  if (!e) {
    e = make();
    e.id = id;
    parent.appendChild(e);
  }
  return e;
}

function safeId(s) {
  return String(s).replace(/[^A-Za-z0-9_-]/g, '_');
}

function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}

// FOLD_AFTER is how long a text may be before setFolded folds it.
const FOLD_AFTER = 90;

// setFolded shows text in e; a longer text is folded to three lines in a
// button that shows it whole when tapped (or on Enter), so that one long
// error does not stretch a card on a phone. An open fold stays open while
// its text changes.
function setFolded(e, text) {
  const fold = e.querySelector('button.fold');
  if (text.length <= FOLD_AFTER) {
    if (fold || e.textContent !== text) e.textContent = text;
    return;
  }
  if (fold) {
    setText(fold, text);
    fold.title = text;
    return;
  }
  const b = el('button', { type: 'button', class: 'fold', 'aria-expanded': 'false', title: text }, text);
  b.addEventListener('click', () => b.setAttribute('aria-expanded', String(b.getAttribute('aria-expanded') !== 'true')));
  e.replaceChildren(b);
}

function renderConnection() {
  const c = $('connection');
  c.dataset.state = state.mode;
  setText(c, state.modeDetail || ({ live: 'Live', connecting: 'Connecting…', polling: 'Polling', signin: 'Signed out' })[state.mode]);
}

const HEALTH_WORDS = { up: 'Up', degraded: 'Degraded', down: 'Down — outage', unknown: 'Unknown' };
const HEALTH_TONE = { up: 'ok', degraded: 'warn', down: 'bad', unknown: 'info' };

function renderProviders() {
  const list = $('providers');
  for (const name of sortedProviders(state.providers.keys())) {
    const p = state.providers.get(name);
    const id = 'provider-' + safeId(name);
    const card = child(list, id, () => {
      const li = el('li', { class: 'card', 'aria-labelledby': id + '-name' });
      li.append(el('h3', { id: id + '-name' }));
      const dl = el('dl');
      for (const [key, term] of [['health', 'Health'], ['latency', 'Latency'], ['breaker', 'Circuit breaker'],
        ['error', 'Last error'], ['checked', 'Checked']]) {
        dl.append(el('dt', {}, term), el('dd', { id: `${id}-${key}` }));
      }
      li.append(dl);
      return li;
    });
    card.dataset.health = p.health;
    setText($(id + '-name'), p.role ? `${name} (${p.role})` : name);
    const health = $(id + '-health');
    health.replaceChildren(el('span', { class: 'badge', 'data-tone': HEALTH_TONE[p.health] || 'info' },
      HEALTH_WORDS[p.health] || p.health));
    setText($(id + '-latency'), p.latencyMs === null ? '—' : `${p.latencyMs} ms`);
    setText($(id + '-breaker'), p.breaker || '—');
    setFolded($(id + '-error'), p.lastError || 'none');
    setText($(id + '-checked'), p.checkedAt ? fmtTime(p.checkedAt) : '—');
  }
}

const STATUS_TONE = { PROTECTED: 'ok', AT_RISK: 'warn', FAILED: 'bad', REPLICATING: 'info', PENDING: 'info', ERASED: 'info' };
const STATUS_WORDS = { PROTECTED: '✓ PROTECTED', AT_RISK: '! AT RISK', FAILED: '✗ FAILED', REPLICATING: 'REPLICATING',
  PENDING: 'PENDING', ERASED: 'ERASED' };

function statusBadge(status, id) {
  const attrs = { class: 'badge', 'data-tone': STATUS_TONE[status] || 'info', 'data-status': status || '' };
  if (id) attrs.id = id;
  return el('span', attrs, STATUS_WORDS[status] || status || '…');
}

function renderFlights() {
  const list = $('inflight');
  const shown = flights();
  $('inflight-empty').hidden = shown.length > 0;
  const keep = new Set(shown.map((b) => 'flight-' + safeId(b.id)));
  for (const li of [...list.children]) if (!keep.has(li.id)) li.remove();
  shown.forEach((b, i) => {
    const id = 'flight-' + safeId(b.id);
    const item = child(list, id, () => {
      const li = el('li', { class: 'flight', 'aria-labelledby': id + '-name' });
      const head = el('header');
      head.append(el('h3', { id: id + '-name' }), el('span', { id: id + '-status' }));
      li.append(head, el('p', { class: 'meta', id: id + '-meta' }), el('div', { id: id + '-bars' }));
      return li;
    });
    if (list.children[i] !== item) list.insertBefore(item, list.children[i]);
    setText($(id + '-name'), b.name || b.id);
    $(id + '-status').replaceChildren(statusBadge(b.status, 'status-' + safeId(b.id)));
    setText($(id + '-meta'), [b.size ? fmtBytes(b.size) : '', b.reason].filter(Boolean).join(' · '));
    const bars = $(id + '-bars');
    // The seal comes first: no provider copy starts before it.
    const first = b.seal ? 1 : 0;
    if (b.seal) {
      const row = renderSealBar(bars, b, b.seal);
      if (bars.children[0] !== row) bars.insertBefore(row, bars.children[0]);
    }
    sortedProviders(b.replicas.keys()).forEach((name, j) => {
      const row = renderBar(bars, b, name, b.replicas.get(name));
      if (bars.children[first + j] !== row) bars.insertBefore(row, bars.children[first + j]);
    });
  });
}

function renderBar(parent, b, name, r) {
  const id = `progress-${safeId(b.id)}-${safeId(name)}`;
  const row = child(parent, id + '-row', () => {
    const div = el('div', { class: 'bar' });
    div.append(el('label', { for: id, id: id + '-label' }, name),
      el('progress', { id, max: '100', 'aria-describedby': id + '-pct' }),
      el('span', { class: 'pct', id: id + '-pct' }));
    return div;
  });
  const bar = $(id);
  const pct = r.state === 'VERIFIED' ? 100 : Math.max(0, Math.min(100, r.percent || 0));
  bar.dataset.state = r.state;
  const indeterminate = r.state === 'COPYING' && !r.bytes && !r.percent && !b.live;
  if (indeterminate) bar.removeAttribute('value');
  else if (bar.value !== pct) bar.value = pct;
  const words = { VERIFIED: 'verified', FAILED: 'failed', COPYING: 'copying', PENDING: 'waiting', DELETED: 'deleted' }[r.state] || r.state;
  const text = indeterminate ? words : `${fmtPct(pct)} ${words}`;
  bar.setAttribute('aria-valuetext', `${name}: ${text}${r.total ? `, ${fmtBytes(r.bytes)} of ${fmtBytes(r.total)}` : ''}`);
  setText($(id + '-pct'), text);
  row.title = r.error || '';
  return row;
}

// renderSealBar is the seal step's row, built like a provider's: the
// plaintext read and encrypted so far, then sealed (or failed).
function renderSealBar(parent, b, s) {
  const id = `seal-${safeId(b.id)}`;
  const row = child(parent, id + '-row', () => {
    const div = el('div', { class: 'bar seal' });
    div.append(el('label', { for: id, id: id + '-label' }),
      el('progress', { id, max: '100', 'aria-describedby': id + '-pct' }),
      el('span', { class: 'pct', id: id + '-pct' }));
    return div;
  });
  const bar = $(id);
  const pct = s.step === 'sealed' ? 100 : Math.max(0, Math.min(100, s.percent || 0));
  bar.dataset.state = { sealed: 'SEALED', failed: 'FAILED' }[s.step] || 'SEALING';
  if (bar.value !== pct) bar.value = pct;
  const name = s.step === 'sealed' ? 'sealed' : 'sealing';
  const words = { sealed: 'sealed', failed: 'failed' }[s.step] || 'encrypting';
  setText($(id + '-label'), name);
  const text = `${fmtPct(pct)} ${words}`;
  bar.setAttribute('aria-valuetext', `${name === 'sealing' ? 'sealing (encrypting)' : name}: ${text}` +
    `${s.total ? `, ${fmtBytes(s.bytes)} of ${fmtBytes(s.total)}` : ''}`);
  setText($(id + '-pct'), text);
  row.title = s.error || '';
  return row;
}

function renderRecent() {
  const body = $('recent').tBodies[0];
  const rows = recent();
  $('recent-empty').hidden = rows.length > 0;
  // Explicit roles keep the table a table for screen readers when a narrow
  // screen lays its rows out as blocks.
  body.replaceChildren(...rows.map((b) => {
    const tr = el('tr', { role: 'row' });
    const name = el('th', { scope: 'row', role: 'rowheader' }, b.name || b.id);
    const st = el('td', { role: 'cell', 'data-label': 'Status' });
    st.append(statusBadge(b.status));
    tr.append(name, st,
      el('td', { role: 'cell', 'data-label': 'Why' }, b.reason || (b.status === 'PROTECTED' ? '3 verified copies' : '—')),
      el('td', { role: 'cell', 'data-label': 'Created' }, b.createdAt ? fmtTime(b.createdAt) : '—'));
    return tr;
  }));
}

function renderAlerts() {
  const list = $('alerts');
  $('alerts-empty').hidden = state.alerts.length > 0;
  const want = state.alerts.map((a) => a.at.getTime() + '|' + a.text);
  const have = [...list.children].map((li) => li.dataset.key);
  if (want.join('\n') === have.join('\n')) return;
  // Add only what is new at the top, so the live region reads only that.
  const fresh = state.alerts.filter((a) => !have.includes(a.at.getTime() + '|' + a.text)).reverse();
  for (const a of fresh) {
    const li = el('li', { 'data-severity': a.severity, 'data-key': a.at.getTime() + '|' + a.text });
    li.append(el('strong', {}, a.severity.toUpperCase() + (a.provider ? ` · ${a.provider}` : '') + ': '),
      document.createTextNode(a.text + ' '), el('time', { datetime: a.at.toISOString() }, fmtTime(a.at)));
    list.prepend(li);
  }
  while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
}

function announce(text) {
  if (!text) return;
  const a = $('announcer');
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 50);
}

function fmtBytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  const v = n / 10 ** (3 * i);
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

function fmtPct(p) {
  return `${p >= 100 || Number.isInteger(p) ? Math.round(p) : p.toFixed(1)} %`;
}

function fmtTime(d) {
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
