// live.js — where the data comes from: the WebSocket (subscribed to "*"),
// reconnecting with backoff, and GET /status + GET /backups polled while
// the socket is down.
//
// Configuration: the token comes from the address's fragment (#token=…,
// never sent to a server), else its query string (?token=…), else the
// sign-in form; it is kept in sessionStorage (this tab only) and removed
// from the address bar. The WebSocket address comes from #ws= / ?ws=, else
// the page's <meta name="ws-url"> (set by the server), else the form.

const POLL_EVERY = 5000;
const REFRESH_EVERY = 60000;
const BACKOFF_MAX = 30000;

let socket = null;
let attempt = 0;
let reconnectTimer = 0;
let pollTimer = 0;
let countdownTimer = 0;
const fetching = new Set();

function readConfig() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const meta = document.querySelector('meta[name="ws-url"]');
  const token = frag.get('token') || query.get('token') || sessionStorage.getItem('ws191.token') || '';
  const ws = frag.get('ws') || query.get('ws') || sessionStorage.getItem('ws191.ws') || (meta && meta.content) || '';
  if (frag.has('token') || query.has('token') || frag.has('ws') || query.has('ws')) {
    query.delete('token');
    query.delete('ws');
    const q = query.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
  }
  remember(token, ws);
}

function remember(token, ws) {
  state.token = token;
  state.wsUrl = ws;
  if (token) sessionStorage.setItem('ws191.token', token);
  if (ws) sessionStorage.setItem('ws191.ws', ws);
}

function setMode(mode, detail) {
  state.mode = mode;
  state.modeDetail = detail || '';
  scheduleRender();
}

// api GETs a path of the API (relative, so a stage prefix works) with the
// bearer token. A refused token shows the sign-in form.
async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store' });
  if (resp.status === 401) {
    signIn('The token was refused (expired or for another system). Paste a new one.');
    throw new Error('unauthenticated');
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

// refresh reads providers and recent backups from the API; with detail,
// also the replicas of backups still being copied.
async function refresh(detail) {
  try {
    const [status, list] = await Promise.all([api('status'), api('backups?limit=10')]);
    applyStatus(status);
    for (const b of list.backups || []) applyBackup(b);
    if (detail) {
      const busy = [...state.backups.values()].filter((b) => !FINAL_STATUSES.has(b.status) && b.status).slice(0, 5);
      await Promise.all(busy.map((b) => loadBackup(b.id)));
    }
  } catch (e) {
    if (e.message !== 'unauthenticated' && state.mode === 'polling') {
      setMode('polling', `Reconnecting… the API did not answer (${e.message})`);
    }
  }
  scheduleRender();
}

async function loadBackup(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    const d = await api('backups/' + encodeURIComponent(id));
    applyBackup(d.backup, d.replicas);
  } catch (e) {
    // the next message or poll tries again
  } finally {
    fetching.delete(id);
    scheduleRender();
  }
}

function connect() {
  clearTimeout(reconnectTimer);
  if (!state.token) return signIn('');
  if (!state.wsUrl) {
    startPolling();
    return setMode('polling', 'Polling every 5 s (no live updates address configured)');
  }
  setMode(attempt ? 'polling' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
  let ws;
  try {
    const u = new URL(state.wsUrl);
    u.searchParams.set('token', state.token);
    ws = new WebSocket(u.toString());
  } catch (e) {
    startPolling();
    return setMode('polling', 'Polling every 5 s (the live updates address is not valid)');
  }
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    ws.send(JSON.stringify({ action: 'subscribe', backupId: '*' }));
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === 'subscribed') {
      stopPolling();
      setMode('live', 'Live');
      refresh(true); // what happened while we were away
      return;
    }
    if (m.type === 'error') return;
    announce(applyMessage(m));
    const b = m.backupId && state.backups.get(m.backupId);
    if (b && !b.known) loadBackup(m.backupId);
    scheduleRender();
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    startPolling();
    const base = Math.min(BACKOFF_MAX, 1000 * 2 ** attempt);
    const delay = base / 2 + Math.random() * base / 2;
    attempt++;
    countdown(Date.now() + delay);
    reconnectTimer = setTimeout(connect, delay);
  };
}

function countdown(until) {
  clearInterval(countdownTimer);
  const tick = () => {
    const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    if (state.mode === 'live' || state.mode === 'signin') return clearInterval(countdownTimer);
    setMode('polling', `Live updates lost — polling every 5 s, reconnecting in ${s} s`);
    if (s === 0) clearInterval(countdownTimer);
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

function startPolling() {
  if (pollTimer) return;
  refresh(true);
  pollTimer = setInterval(() => refresh(true), POLL_EVERY);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = 0;
}

function signIn(why) {
  stopPolling();
  clearTimeout(reconnectTimer);
  if (socket) { const s = socket; socket = null; s.close(); }
  setMode('signin', 'Signed out');
  const form = $('signin');
  form.hidden = false;
  $('signin-why').textContent = why;
  $('wsurl').value = state.wsUrl;
  $('token').focus();
}

function start() {
  $('signin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    remember($('token').value.trim(), $('wsurl').value.trim());
    $('token').value = '';
    $('signin').hidden = true;
    attempt = 0;
    refresh(false);
    connect();
  });
  setInterval(() => { if (state.mode === 'live') refresh(false); }, REFRESH_EVERY);
  readConfig();
  scheduleRender();
  if (!state.token) return signIn('');
  refresh(false);
  connect();
}

start();
