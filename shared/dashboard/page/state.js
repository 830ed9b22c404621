// state.js — what the dashboard knows, from live messages and from the API.

const PROVIDER_ORDER = ['supabase', 's3', 'gcs', 's3-standby'];
const FINAL_STATUSES = new Set(['PROTECTED', 'FAILED', 'ERASED']);
const MAX_ALERTS = 20;
const MAX_FLIGHTS = 6;
const MAX_RECENT = 10;

const state = {
  token: '',
  wsUrl: '',
  mode: 'connecting', // connecting | live | polling | signin
  modeDetail: '',
  providers: new Map(), // name → provider
  backups: new Map(), // id → backup
  alerts: [], // newest first
  updatedAt: null,
};

function provider(name) {
  let p = state.providers.get(name);
  if (!p) {
    p = { name, role: '', cloud: '', health: 'unknown', breaker: '', latencyMs: null, lastError: '', checkedAt: null, detail: '' };
    state.providers.set(name, p);
  }
  return p;
}

function backup(id) {
  let b = state.backups.get(id);
  if (!b) {
    // seal: the seal step's progress (null until known): step sealing,
    // sealed or failed; live once a backup_sealing message came.
    b = { id, name: '', size: 0, status: '', reason: '', createdAt: null, replicas: new Map(), seal: null, live: false,
      touched: 0, known: false };
    state.backups.set(id, b);
  }
  return b;
}

function replica(b, name) {
  let r = b.replicas.get(name);
  if (!r) {
    r = { state: 'PENDING', bytes: 0, total: b.size, percent: 0, step: '', error: '' };
    b.replicas.set(name, r);
  }
  return r;
}

function sortedProviders(names) {
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function rank(name) {
  const i = PROVIDER_ORDER.indexOf(name);
  return i < 0 ? PROVIDER_ORDER.length : i;
}

// applyMessage folds one live message in; it returns a sentence worth
// announcing to screen readers, or ''.
function applyMessage(m) {
  const at = m.timestamp ? new Date(m.timestamp) : new Date();
  state.updatedAt = at;
  switch (m.type) {
    case 'backup_progress': {
      const b = backup(m.backupId);
      const r = replica(b, m.provider);
      b.live = true;
      b.touched = Date.now();
      if (m.total) { b.size = m.total; r.total = m.total; }
      if (m.step === 'copying' && r.state !== 'COPYING') r.state = 'COPYING';
      if (m.step === 'verified') r.state = 'VERIFIED';
      if (m.step === 'failed') r.state = 'FAILED';
      r.bytes = m.bytes || 0;
      r.percent = typeof m.percent === 'number' ? m.percent : 0;
      r.step = m.step || '';
      if (m.error) r.error = m.error;
      return '';
    }
    case 'backup_sealing': {
      const b = backup(m.backupId);
      b.live = true;
      b.touched = Date.now();
      if (m.total) b.size = m.total;
      const s = b.seal || (b.seal = { step: '', bytes: 0, total: b.size, percent: 0, error: '', live: false });
      s.live = true;
      if (s.step === 'sealed') return ''; // recorded: nothing comes after
      s.step = m.step || 'sealing';
      if (m.total) s.total = m.total;
      s.bytes = s.step === 'sealed' ? s.total : m.bytes || 0;
      s.percent = s.step === 'sealed' ? 100 : typeof m.percent === 'number' ? m.percent : 0;
      s.error = s.step === 'failed' ? m.error || 'sealing failed' : '';
      return s.step === 'failed' ? `Sealing ${label(b)} failed.` : '';
    }
    case 'replica_state': {
      const b = backup(m.backupId);
      const r = replica(b, m.provider);
      b.live = true;
      b.touched = Date.now();
      r.state = m.state;
      if (m.state === 'VERIFIED') { r.percent = 100; r.bytes = m.total || r.total; }
      if (m.state === 'FAILED') {
        r.error = m.error || 'copy failed';
        const p = provider(m.provider);
        p.lastError = r.error;
        return `Copy to ${m.provider} failed for ${label(b)}.`;
      }
      return '';
    }
    case 'backup_status': {
      const b = backup(m.backupId);
      const changed = b.status !== m.status;
      b.status = m.status;
      if (m.reason !== undefined) b.reason = m.reason;
      b.touched = Date.now();
      const notable = FINAL_STATUSES.has(m.status) || m.status === 'AT_RISK';
      return changed && notable ? `${label(b)} is ${words(m.status)}.` : '';
    }
    case 'provider_health': {
      const p = provider(m.provider);
      const before = p.health;
      p.health = m.state || 'unknown';
      p.breaker = m.breaker || p.breaker;
      p.latencyMs = typeof m.latencyMs === 'number' ? m.latencyMs : p.latencyMs;
      p.lastError = m.error || (p.health === 'up' ? '' : p.lastError);
      p.checkedAt = at;
      if (before !== p.health && (p.health === 'down' || before === 'down')) {
        return `Provider ${m.provider} is ${p.health === 'down' ? 'down' : 'back ' + p.health}.`;
      }
      return '';
    }
    case 'alert': {
      state.alerts.unshift({ severity: m.severity || 'info', text: m.message || '', provider: m.provider || '',
        backupId: m.backupId || '', at });
      state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
      return m.severity === 'critical' ? `Critical alert: ${m.message || ''}` : '';
    }
    default:
      return '';
  }
}

// applyStatus folds GET /status in: each provider's row and health.
function applyStatus(report) {
  for (const s of report.providers || []) {
    const p = provider(s.name);
    p.role = s.role || p.role;
    p.cloud = s.cloud || p.cloud;
    const h = s.health || {};
    // Live probes (provider_health) know more than the API's view; the API
    // is the fallback while the socket is down or before the first probe,
    // and "unknown" from it never hides what we last knew.
    const known = h.state && h.state !== 'unknown';
    if (known && (state.mode !== 'live' || p.health === 'unknown')) {
      p.health = h.state;
      if (h.breaker) p.breaker = h.breaker;
      if (h.detail) p.lastError = h.detail;
      if (h.checkedAt) p.checkedAt = new Date(h.checkedAt);
    }
  }
  state.updatedAt = report.at ? new Date(report.at) : new Date();
}

// applyBackup folds one catalog record (GET /backups, GET /backups/{id}) in.
function applyBackup(rec, replicas) {
  const b = backup(rec.id);
  b.known = true;
  b.name = rec.name || b.name;
  b.size = rec.size || b.size;
  b.createdAt = rec.createdAt ? new Date(rec.createdAt) : b.createdAt;
  if (!b.live || FINAL_STATUSES.has(rec.status)) {
    b.status = rec.status || b.status;
    b.reason = rec.statusReason || '';
  }
  if (rec.status === 'REPLICATING' || rec.status === 'PENDING') b.touched = b.touched || Date.now();
  if (rec.seal && (!b.seal || b.seal.step !== 'sealed')) {
    // The catalog records the seal once it is done (the live message may
    // have come before this page subscribed).
    b.seal = { step: 'sealed', bytes: rec.size, total: rec.size, percent: 100, error: '', live: b.seal ? b.seal.live : false };
  }
  for (const r of replicas || []) {
    const x = replica(b, r.provider);
    if (b.live && x.state === 'COPYING' && r.state === 'COPYING') continue; // live bytes are fresher
    x.state = r.state;
    x.total = rec.size;
    x.bytes = r.state === 'VERIFIED' ? rec.size : r.bytes || 0;
    x.percent = r.state === 'VERIFIED' ? 100 : x.percent;
    x.error = r.lastError || '';
  }
}

// flights are the backups to show with progress bars: those being copied,
// and the last few finished, newest first.
function flights() {
  return [...state.backups.values()]
    .filter((b) => b.touched > 0 && (b.live || !FINAL_STATUSES.has(b.status)))
    .sort((a, b) => b.touched - a.touched)
    .slice(0, MAX_FLIGHTS);
}

function recent() {
  return [...state.backups.values()]
    .filter((b) => b.known || b.status)
    .sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0) || b.touched - a.touched)
    .slice(0, MAX_RECENT);
}

function label(b) {
  return b.name ? `Backup “${b.name}”` : `Backup ${b.id}`;
}

function words(status) {
  return ({ PROTECTED: 'protected', AT_RISK: 'at risk', FAILED: 'failed', REPLICATING: 'replicating',
    PENDING: 'waiting for its upload', ERASED: 'erased' })[status] || String(status || 'unknown').toLowerCase();
}
