// The DashDice page. It speaks only the public client API (PROTOCOL.md):
// REST for the guest sign-in, match snapshots and the archive (stats,
// history, leaderboards), one WebSocket for the rest.
'use strict';

const API = '/api/v1';
const TOKEN_KEY = 'dashdice.guest';
// How often the lobby asks again which modes are playable: designers publish,
// roll back and retire modes while the page is open.
const MODES_EVERY_MS = 30000;
// The actions of a match whose mode has no listing (say, retired mid-match).
const FALLBACK_ACTIONS = [
  {name: 'roll', description: 'Throw both dice.'},
  {name: 'bank', description: 'Add the turn score to your banked score.'},
  {name: 'forfeit', description: 'Leave the match; the other player wins.'},
];
// Actions with a button of their own in the page; any other a mode lists is
// one of its custom actions. `timeout` is the host's alone: never a button.
const BUILT_IN_ACTIONS = ['roll', 'bank', 'forfeit', 'timeout'];
const KINDS = {snake_eyes: 'snake eyes!', double: 'a double!', single_one: 'a single one', normal: ''};
// Entries per history page and leaderboard.
const ARCHIVE_PAGE = 10;
// The archive takes a moment to file a finished match: ask again after this.
const ARCHIVE_SETTLE_MS = 2500;
const ARCHIVE_UNAVAILABLE = 'stats are unavailable (no archiver running)';
// How often the lobby's figures are asked again while the lobby shows.
const LOBBY_EVERY_MS = 10000;
// Friends answer `unavailable` while no archiver runs: asked again after this.
const FRIENDS_RETRY_MS = 30000;
// How long "Bob is back" stays in a match.
const BACK_BANNER_MS = 5000;
// Notifications per inbox page.
const INBOX_PAGE = 20;
// The inbox answers `unavailable` while no notifier runs: asked again after
// this while it is open.
const INBOX_RETRY_MS = 30000;
// A presence's activity, as people read it.
const ACTIVITIES = {menu: 'in the menu', matchmaking: 'looking for a match', in_match: 'in a match'};
// Refusals that mean an invite to us no longer stands.
const STALE_INVITE = ['unknown_code', 'code_used', 'not_invited', 'own_code'];
// Pips of a die face, as cells 0-8 of a 3×3 grid.
const PIPS = {1: [4], 2: [0, 8], 3: [0, 4, 8], 4: [0, 2, 6, 8], 5: [0, 2, 4, 6, 8], 6: [0, 2, 3, 5, 6, 8]};

const $ = (id) => document.getElementById(id);

const app = {
  auth: null,           // {token, user_id, expires_ms}
  ws: null,
  online: false,        // welcomed on the current socket
  retries: 0,           // reconnects since the last welcome (for the backoff)
  nextId: 1,
  clockSkew: 0,         // server clock minus ours, ms (from pongs)
  pings: new Map(),     // ping id -> when it was sent
  queue: {state: 'idle'},
  match: null,          // the match on screen, see newMatch()
  left: new Set(),      // matches the player has left the final screen of
  modes: null,          // the playable modes (GET /modes), in its order; null until known
  modesByHash: new Map(), // every listing seen, by version hash: a match keeps its version
  screen: null,         // the screen last rendered
  archive: {
    state: 'loading',   // loading, ready or unavailable (no archiver answers)
    profile: null,      // GET /users/me
    history: [],        // entries shown, newest first
    nextCursor: null,   // where the next (older) history page starts
    board: null,        // the leaderboard shown
    loads: 0,           // bumped per refresh: answers to an older one are dropped
  },
  pending: new Map(),   // request id -> what it asked ({kind, ...}), for the answer or its error
  presence: new Map(),  // uid -> the newest Presence seen (the highest version)
  friends: {
    state: 'loading',   // loading, ready or unavailable (no archiver answers)
    note: '',           // why it is unavailable
    links: [],          // the `friends` answer: friends, then requests both ways and blocks
    followed: new Set(), // uids whose presence this socket follows
    busy: new Set(),    // uids with a verb in flight (their buttons wait)
    armed: null,        // a Remove or Block waiting for its second click: {key, timer}
    retry: null,        // timer asking again while unavailable
  },
  direct: null,         // our direct invite while it stands: {uid, code, mode, expires_ms}
  invites: new Map(),   // code -> an invite to us: {from, code, mode, expires_ms, accepting}
  lobby: {
    state: 'loading',   // loading, ready or unavailable
    figures: null,      // the last Lobby answered
    asking: false,      // a request in flight
  },
  inbox: {
    state: 'loading',   // loading, ready or unavailable (no notifier answers)
    note: '',           // why it is unavailable, or what a page request was refused
    open: false,        // the panel shows (the bell toggles it)
    unread: null,       // the bell's count; null until known
    items: [],          // the notifications shown, newest first
    next: null,         // where the next (older) page starts
    asking: false,      // a page request in flight
    retry: null,        // timer asking again while unavailable
  },
};

function newMatch(id) {
  return {
    id,
    snap: null,         // the latest snapshot (GET, `match` or `acted`)
    view: null,         // snap.view, moved on by events since
    viewSeq: -1,        // the seq `view` is at
    lastSeq: 0,         // the last event received: subscribe resumes after it
    dice: null,
    diceKind: null,
    diceBy: null,
    diceSeq: 0,
    over: null,         // the game_over event
    acting: null,       // the action in flight: {action, name, requestId, id, tries}
    refresh: null,      // timer of a pending snapshot refresh
    seedStatus: 'pending',
    rematch: null,      // 'offered' (by us) or 'asked' (by them)
    away: new Map(),    // player -> their connection as last told ({connected, deadline, hideAt, at})
  };
}

// ---------------------------------------------------------------- helpers

function toast(text, kind = 'error') {
  // The same note twice (a retry failing again) shows once.
  if ([...$('toasts').children].some((t) => t.textContent === text)) return;
  const el = document.createElement('p');
  el.className = `toast ${kind}`;
  el.textContent = text;
  $('toasts').append(el);
  setTimeout(() => el.remove(), 6000);
}

function who(id) {
  const m = app.match;
  if (app.auth && id === app.auth.user_id) return 'You';
  if (id.startsWith('bot:') || (m && m.snap && (m.snap.bots || []).includes(id))) return 'Bot';
  return id.length > 18 ? `${id.slice(0, 16)}…` : id;
}

function seconds(ms) {
  return `${Math.max(0, Math.round(ms / 1000))} s`;
}

function now() {
  return Date.now() + app.clockSkew;
}

// An action or event name as people read it: `double-down` is "Double down".
function label(name) {
  const words = String(name).replace(/[-_]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// "a, b or c".
function either(words) {
  return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

async function sha256Hex(hex) {
  const bytes = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function rest(method, path, body = undefined) {
  const headers = app.auth ? {Authorization: `Bearer ${app.auth.token}`} : {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((answer.error && answer.error.message) || `HTTP ${response.status}`);
    error.code = answer.error ? answer.error.code : String(response.status);
    throw error;
  }
  return answer;
}

// ---------------------------------------------------------------- sign-in and connection

// A guest token lives in sessionStorage: a reload keeps the same guest (and
// its match), a new tab is a new guest.
async function signIn() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
    if (saved && saved.expires_ms > Date.now() + 60000) {
      app.auth = saved;
      return;
    }
  } catch { /* a damaged entry: sign in anew */ }
  app.auth = null;
  const auth = await rest('POST', '/auth/guest');
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(auth));
  app.auth = auth;
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  app.auth = null;
}

async function connect() {
  setConnection('connecting');
  try {
    await signIn();
  } catch (e) {
    toast(e.code === 'not_found' ? 'Guest sign-in is not enabled on this server.' : `Sign-in failed: ${e.message}`);
    return reconnectLater();
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}${API}/ws`);
  app.ws = ws;
  // Browsers cannot set headers on the upgrade: the token is the first message.
  ws.onopen = () => ws.send(JSON.stringify({v: 1, type: 'hello', token: app.auth.token}));
  ws.onmessage = (e) => {
    let message;
    try { message = JSON.parse(e.data); } catch { return; }
    onMessage(message);
  };
  ws.onclose = (e) => {
    if (app.ws !== ws) return;
    app.ws = null;
    app.online = false;
    // What this socket asked or followed went with it.
    app.pending.clear();
    app.friends.followed.clear();
    app.friends.busy.clear();
    app.lobby.asking = false;
    app.inbox.asking = false;
    for (const invite of app.invites.values()) invite.accepting = false;
    // 4401: the token is no good (perhaps the server restarted with a new
    // dev secret). The next attempt signs in as a new guest.
    if (e.code === 4401) forgetToken();
    reconnectLater();
  };
}

function reconnectLater() {
  setConnection('offline');
  // 0.5 s, 1 s, 2 s ... up to 15 s, with jitter so clients spread out.
  const delay = Math.min(15000, 500 * 2 ** app.retries) * (0.75 + Math.random() / 2);
  app.retries += 1;
  $('connection').textContent = `offline, retrying in ${Math.ceil(delay / 1000)} s`;
  setTimeout(connect, delay);
  render();
}

function setConnection(state) {
  document.body.dataset.connection = state;
  $('connection').textContent = state;
}

function send(message) {
  if (!app.online) {
    toast('Not connected yet; try again in a moment.');
    return null;
  }
  const id = String(app.nextId++);
  app.ws.send(JSON.stringify({v: 1, id, ...message}));
  return id;
}

// Keeps the socket from idling out (60 s) and measures the clock skew for
// the turn timer.
function ping() {
  if (!app.online) return;
  const id = send({type: 'ping'});
  app.pings.set(id, Date.now());
}
setInterval(ping, 20000);

// ---------------------------------------------------------------- the playable modes

// The mode picker lists what GET /modes answers (public: no sign-in needed):
// the built-in modes and those designers have published. It is asked again
// whenever the lobby is shown and every 30 s, so a mode published, rolled
// back, retired or quarantined meanwhile shows (or goes) without a reload.
let modesLoading = null;
let modesRetry = null;

function loadModes() {
  if (modesLoading) return modesLoading;
  clearTimeout(modesRetry);
  modesLoading = (async () => {
    try {
      const response = await fetch(`${API}/modes`, {cache: 'no-store'});
      const body = await response.json().catch(() => ({}));
      if (!response.ok || !Array.isArray(body.modes)) {
        throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      }
      setModes(body.modes);
    } catch (e) {
      // Keep the list we have; with none yet, ask again soon.
      if (!app.modes) {
        app.modesError = e.message;
        modesRetry = setTimeout(loadModes, 3000);
        render();
      }
    } finally {
      modesLoading = null;
    }
  })();
  return modesLoading;
}
setInterval(loadModes, MODES_EVERY_MS);

function setModes(list) {
  for (const listing of list) app.modesByHash.set(listing.hash, listing);
  app.modes = list;
  app.modesError = null;
  fillModePicker();
  fillBoardModes();
  render();
}

// The playable mode `id`, or undefined.
function modeListing(id) {
  return (app.modes || []).find((l) => l.id === id);
}

function shortHash(hash) {
  return String(hash || '').slice(0, 12);
}

function fillModePicker() {
  const select = $('mode');
  const list = app.modes || [];
  // Rebuilt only when the list changes, so an open picker is left alone.
  const key = list.map((l) => `${l.id}@${l.hash}`).join(' ');
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const chosen = select.value;
  const options = list.map((l) => {
    const option = document.createElement('option');
    option.value = l.id;
    option.textContent = l.builtin ? l.name : `${l.name} (published)`;
    option.dataset.builtin = String(!!l.builtin);
    option.dataset.hash = l.hash;
    return option;
  });
  if (!options.length) {
    const none = document.createElement('option');
    none.value = '';
    none.textContent = 'No modes right now';
    options.push(none);
  }
  select.replaceChildren(...options);
  // The choice stays while its mode does; else the first one is chosen.
  if (modeListing(chosen)) select.value = chosen;
}

// What the lobby says of the chosen mode: players, turn timer, and whether it
// is built in or published (with its version's short hash).
function renderModeDetails(listing) {
  const el = $('mode-details');
  el.hidden = !listing;
  if (!listing) {
    el.dataset.hash = '';
    return;
  }
  if (el.dataset.hash === listing.hash && el.dataset.id === listing.id) return;
  el.dataset.id = listing.id;
  el.dataset.hash = listing.hash;
  el.dataset.builtin = String(!!listing.builtin);
  const origin = document.createElement('span');
  origin.className = `badge ${listing.builtin ? 'builtin' : 'published'}`;
  origin.textContent = listing.builtin ? 'built-in' : 'published';
  const version = document.createElement('code');
  version.textContent = shortHash(listing.hash);
  version.title = `version ${listing.hash}`;
  const players = listing.min_players === listing.max_players ? `${listing.min_players} players`
    : `${listing.min_players}–${listing.max_players} players`;
  const timer = listing.turn_time_limit_ms > 0 ? `${seconds(listing.turn_time_limit_ms)} per turn` : 'no turn timer';
  el.replaceChildren(`${players} · ${timer} · `, origin, ' ', version);
}

// The mode a match plays, as listed: the version it started on if this page
// has seen its listing (a retired mode's matches finish on their version),
// else the mode's current version; null when neither is known.
function matchListing(m) {
  const snap = m && m.snap;
  if (!snap) return null;
  const own = app.modesByHash.get(snap.mode_version);
  if (own && own.id === snap.mode) return own;
  return modeListing(snap.mode) || null;
}

// The actions a match's buttons offer (never `timeout`: only the host
// applies it). Without a listing: roll and bank (and forfeit).
function matchActions(m) {
  const listing = matchListing(m);
  if (!listing || !Array.isArray(listing.actions)) return FALLBACK_ACTIONS;
  return listing.actions.filter((a) => a.name !== 'timeout');
}

// ---------------------------------------------------------------- server messages

function onMessage(m) {
  switch (m.type) {
    case 'welcome': return onWelcome(m);
    case 'queue': return onQueueAnswer(m);
    case 'invite': return onInvite(m);
    case 'match_found': return startMatch(m.match_id);
    case 'presence':
      takePending(m.id);
      if (setPresence(m.presence)) renderFriends();
      return;
    case 'presences':
      takePending(m.id);
      if ((m.presences || []).map(setPresence).some(Boolean)) renderFriends();
      return;
    case 'presence_unfollowed':
      takePending(m.id);
      return;
    case 'friends': return onFriends(m);
    case 'friend': return onFriend(m);
    case 'friend_request':
    case 'friend_accepted':
    case 'friend_declined':
    case 'friend_removed':
    case 'unfriended':
      return onFriendNotice(m);
    case 'invited': return onInvited(m);
    case 'invite_withdrawn': return onInviteWithdrawn(m);
    case 'invite_declined':
    case 'invite_expired':
      return onInviteEnded(m);
    case 'lobby':
      takePending(m.id);
      return onLobby(m.lobby);
    case 'player_connection': return onPlayerConnection(m);
    case 'match': return onSnapshot(m.match);
    case 'event': return onEvent(m.match_id, m.event);
    case 'acted': return onActed(m);
    case 'rematch':
      takePending(m.id);
      return onRematch(m.status);
    case 'notifications': return onInboxPage(m);
    case 'unread':
      takePending(m.id);
      return setUnread(m.unread);
    // A push answers no request: its `id` is the notification's own.
    case 'notification': return onNotification(m);
    case 'inbox_changed': return setUnread(m.unread);
    case 'devices':
      takePending(m.id);
      return;
    case 'rematch_offered':
      if (app.match && app.match.id === m.match_id) {
        app.match.rematch = 'asked';
        toast(`${who(m.by || m.from)} offers a rematch.`, 'info');
        render();
      }
      return;
    case 'pong': {
      const sent = app.pings.get(m.id);
      app.pings.delete(m.id);
      if (sent) app.clockSkew = m.server_ms - (sent + Date.now()) / 2;
      return;
    }
    case 'error': return onError(m);
    default: return;
  }
}

function onWelcome(m) {
  app.online = true;
  app.retries = 0;
  app.auth.user_id = m.user_id;
  setConnection('online');
  const match = app.match;
  // Resume the match on screen exactly after the last event we applied.
  if (match && !match.over) {
    send({type: 'subscribe', match_id: match.id, since: match.lastSeq});
    // An action whose answer was lost with the socket is sent again with the
    // same request_id: if it was applied, the server answers the first reply.
    if (match.acting) sendAct(match);
  }
  // Where are we? A match in progress (after a reload) is followed by the
  // server at once; a queue keeps its status pushes coming.
  send({type: 'status'});
  ping();
  // Presence: this socket counts from now; say whether the page shows.
  reportVisibility();
  loadFriends();
  loadLobby();
  refreshArchive();
  // What was missed while offline is in the inbox.
  loadUnread();
  if (app.inbox.open) loadInbox();
  render();
}

// A `queue` message: an answer (to join, leave, status, join_code or
// decline_invite) or a push.
function onQueueAnswer(m) {
  const asked = takePending(m.id);
  // Accepted: the invite is spent (the match follows).
  if (asked && asked.kind === 'accept') {
    app.invites.delete(asked.code);
    renderInvites();
  }
  onQueue(m.status);
}

function onQueue(status) {
  // A match the player already left stays behind them.
  if (status.state === 'playing' && app.left.has(status.match_id)) status = {state: 'idle'};
  app.queue = status;
  // Our direct invite stands while we host its code.
  if (app.direct && !(status.state === 'hosting' && status.code === app.direct.code)) app.direct = null;
  if (status.state === 'playing') startMatch(status.match_id);
  render();
}

function onError(m) {
  const {code, message} = m.error || {};
  // Friends, presence, invites and the lobby's figures handle their own.
  if (onSocialError(takePending(m.id), code, message)) return;
  const match = app.match;
  if (match && match.acting && m.id === match.acting.id) {
    // Safe to retry with the same request_id (PROTOCOL.md).
    if (['timeout', 'unavailable'].includes(code) && match.acting.tries < 3) {
      setTimeout(() => sendAct(match), 500 * match.acting.tries);
      return;
    }
    match.acting = null;
  }
  // Refused at hello: the socket closes with 4401 and we sign in anew.
  if (code === 'unauthorized' && !app.online) return;
  // The mode went (retired, quarantined) since the picker was filled.
  if (['mode_withdrawn', 'unknown_mode'].includes(code)) loadModes();
  toast(message ? `${message} (${code})` : code || 'something went wrong');
  render();
}

function onRematch(status) {
  if (status.state === 'started') return startMatch(status.match_id);
  // An offer of the match on screen (the inbox may offer one of another).
  if (app.match && app.match.id === status.match_id) app.match.rematch = 'offered';
  else toast('Rematch offered; waiting for the other player.', 'info');
  render();
}

// ---------------------------------------------------------------- the match

function startMatch(id) {
  if (app.left.has(id) || (app.match && app.match.id === id)) return;
  // A new match replaces the one on screen only once that one is over.
  if (app.match && !app.match.over) return;
  if (app.match) clearTimeout(app.match.refresh);
  app.match = newMatch(id);
  app.queue = {state: 'playing', match_id: id};
  app.direct = null;
  $('log').replaceChildren();
  // The server follows a match it tells us about; nothing to subscribe.
  // The snapshot gives the seed hash and the board before the first event.
  fetchSnapshot(id);
  render();
}

// Takes a snapshot's top-level fields (deadline, seed, bots), and its view
// if that is newer than ours. Events up to its seq are then only logged.
function adopt(snap) {
  const m = app.match;
  if (!m || snap.match_id !== m.id) return;
  if (!m.snap || snap.seq >= m.snap.seq) m.snap = snap;
  // At the same seq the server's view wins over ours.
  if (snap.seq >= m.viewSeq) {
    m.view = structuredClone(snap.view);
    m.viewSeq = snap.seq;
  }
  if (snap.finished && !m.over && snap.standings) {
    m.over = {reason: snap.view.end_reason, standings: snap.standings};
  }
  if (snap.seed && m.seedStatus === 'pending') verifySeed(m, snap);
  if (m.snap.seq < m.lastSeq && !m.over) refreshSoon();
  render();
}

function onSnapshot(snap) {
  if (!app.match || app.match.id !== snap.match_id) {
    if (snap.finished) return;
    startMatch(snap.match_id);
  }
  adopt(snap);
}

async function fetchSnapshot(id) {
  try {
    const snap = await rest('GET', `/matches/${encodeURIComponent(id)}`);
    // Once the host has let the match go, the archive's record answers: not a live view.
    if (snap.archived) return null;
    adopt(snap);
    return snap;
  } catch (e) {
    if (app.match && app.match.id === id) toast(`Could not load the match: ${e.message}`);
    return null;
  }
}

// Events carry no deadline: once they stop coming, the snapshot is fetched
// again for the new one (and the view is checked against the server's).
function refreshSoon() {
  const m = app.match;
  clearTimeout(m.refresh);
  m.refresh = setTimeout(() => {
    if (app.match === m && m.snap && m.snap.seq < m.lastSeq) fetchSnapshot(m.id);
  }, 150);
}

function onEvent(matchId, ev) {
  const m = app.match;
  if (!m || m.id !== matchId || ev.seq <= m.lastSeq) return;
  m.lastSeq = ev.seq;
  if (ev.type === 'rolled') {
    m.dice = ev.dice;
    m.diceKind = ev.kind;
    m.diceBy = ev.player;
    m.diceSeq = ev.seq;
  }
  if (ev.seq > m.viewSeq && m.view) {
    apply(m.view, ev);
    m.viewSeq = ev.seq;
  }
  log(ev);
  if (ev.type === 'game_over') {
    m.over = ev;
    finish(m);
    // The archiver files the match shortly after it ends.
    refreshArchiveSoon();
  } else {
    refreshSoon();
  }
  render();
}

// Moves the view on by one event (the same fields the snapshot's view has).
function apply(view, ev) {
  const seat = (id) => view.players.find((p) => p.id === id) || {};
  switch (ev.type) {
    case 'turn_started': view.turn = ev.player; view.turn_score = 0; view.multiplier = 1; break;
    case 'turn_passed': view.turn = ev.to; view.turn_score = 0; view.multiplier = 1; break;
    case 'turn_score_changed': view.turn_score = ev.total; break;
    case 'banked_score_changed': seat(ev.player).score = ev.total; break;
    case 'multiplier_changed': view.multiplier = ev.multiplier; break;
    case 'busted': view.turn_score = 0; break;
    case 'game_over': view.status = 'finished'; view.turn = null; break;
  }
}

// The seed is revealed once the match is over; fetch until it shows.
async function finish(m) {
  for (let attempt = 0; attempt < 10 && app.match === m && m.seedStatus === 'pending'; attempt++) {
    const snap = await fetchSnapshot(m.id);
    if (snap && snap.seed) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (m.seedStatus === 'pending') {
    m.seedStatus = 'missing';
    render();
  }
}

async function verifySeed(m, snap) {
  m.seedStatus = 'checking';
  let status = 'mismatch';
  if (/^[0-9a-f]{64}$/i.test(snap.seed)) {
    if (!window.crypto || !crypto.subtle) {
      // crypto.subtle exists only on https (and localhost).
      status = 'unavailable';
    } else if ((await sha256Hex(snap.seed)) === snap.seed_hash.toLowerCase()) {
      status = 'verified';
    }
  }
  m.seedStatus = status;
  render();
}

// Zero Hour's multiplier is a level: ×1, ×2, ×3 ... (one more per double).
function zeroHour() {
  return !!(app.match && app.match.snap && app.match.snap.mode === 'zero-hour');
}

function myTurn() {
  const m = app.match;
  return !!(m && m.view && !m.over && app.auth && m.view.turn === app.auth.user_id);
}

let clicks = 0;
// `action` is roll, bank, forfeit, or custom with the mode's action `name`.
function act(action, name = null) {
  const m = app.match;
  if (!m || m.over || m.acting || !app.online) return;
  // One request_id per click: however often it is sent, it is applied once.
  const requestId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${++clicks}`;
  m.acting = {action, name, requestId, id: null, tries: 0};
  sendAct(m);
}

function sendAct(m) {
  const acting = m.acting;
  if (!acting || app.match !== m || !app.online) return;
  acting.tries += 1;
  const message = {type: 'act', match_id: m.id, action: acting.action, request_id: acting.requestId};
  if (acting.action === 'custom') message.name = acting.name;
  acting.id = send(message);
  render();
}

function onActed(message) {
  const m = app.match;
  if (m && m.acting && message.id === m.acting.id) m.acting = null;
  // The reply's events also arrive as `event` messages: only its snapshot is used.
  if (message.reply && message.reply.match) adopt(message.reply.match);
  render();
}

// ---------------------------------------------------------------- the event log

function describe(ev) {
  const p = ev.player && who(ev.player);
  switch (ev.type) {
    case 'turn_started': return `${p === 'You' ? 'Your' : `${p}’s`} turn`;
    case 'rolled': return `${p} rolled ${ev.dice.join(' and ')}${KINDS[ev.kind] ? `: ${KINDS[ev.kind]}` : ''}`;
    case 'turn_score_changed': return `turn score ${ev.delta >= 0 ? '+' : ''}${ev.delta} → ${ev.total}`;
    case 'banked_score_changed': {
      const what = {bank: 'banked', penalty: 'got a penalty of', reset: 'lost the bank,', attacked: 'was hit for', kept: 'kept'}[ev.reason] || 'scored';
      return `${p} ${what} ${Math.abs(ev.delta)} → ${ev.total}`;
    }
    case 'multiplier_changed': return `${zeroHour() ? 'level' : 'multiplier'} ×${ev.multiplier}`;
    case 'busted': return `${p} busted (${ev.reason.replace('_', ' ')})${ev.lost ? `, losing ${ev.lost}` : ''}`;
    case 'timed_out': return `${p} ran out of time`;
    case 'forfeited': return `${p} forfeited`;
    case 'turn_passed': return `turn passes to ${who(ev.to)}`;
    case 'game_over': {
      const winner = (ev.standings || []).find((s) => s.result === 'win');
      return `game over: ${winner ? `${who(winner.player)} won` : 'a draw'}${ev.reason === 'forfeit' ? ' by forfeit' : ''}`;
    }
    case 'custom': return describeCustom(ev);
    default: return ev.type;
  }
}

// A designer mode's own event: its name, and its payload's fields when that
// is a JSON object (a `player` field names who).
function describeCustom(ev) {
  const what = label(ev.name || 'custom');
  let data = null;
  try { data = JSON.parse(ev.payload || 'null'); } catch { /* plain text */ }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    return ev.payload ? `${what}: ${String(ev.payload).slice(0, 200)}` : what;
  }
  const {player, ...rest} = data;
  const fields = Object.entries(rest).map(([k, v]) => `${k.replace(/_/g, ' ')} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  const by = typeof player === 'string' ? `${who(player)}: ` : '';
  return `${by}${what}${fields.length ? ` (${fields.join(', ').slice(0, 200)})` : ''}`;
}

function log(ev) {
  const li = document.createElement('li');
  li.dataset.seq = ev.seq;
  li.dataset.type = ev.type;
  li.textContent = describe(ev);
  const list = $('log');
  list.prepend(li);
  while (list.childElementCount > 1000) list.lastElementChild.remove();
}


// ---------------------------------------------------------------- the archive: stats, history, leaderboard

// Profiles, history and leaderboards come from the archiver (over REST). It
// may not run (say, a local `dashdice up` without one): then every panel
// says so and the rest of the page goes on.

function archiveFailed(e, where) {
  // No archiver subscribed (`unavailable`), or none answering (`timeout`).
  if (['unavailable', 'timeout'].includes(e.code)) {
    app.archive.state = 'unavailable';
  } else if (e.code !== 'unauthorized') {
    toast(`Could not load ${where}: ${e.message}`);
  }
  renderArchive();
}

function archiveAnswered() {
  app.archive.state = 'ready';
}

// Asks again for everything the panels show.
function refreshArchive() {
  if (!app.auth) return;
  const load = ++app.archive.loads;
  loadProfile(load);
  loadHistory(load, false);
  loadBoard(load);
}

let archiveTimer = null;
function refreshArchiveSoon() {
  clearTimeout(archiveTimer);
  archiveTimer = setTimeout(refreshArchive, ARCHIVE_SETTLE_MS);
}

async function loadProfile(load) {
  try {
    const profile = await rest('GET', '/users/me');
    if (load !== app.archive.loads) return;
    archiveAnswered();
    app.archive.profile = profile;
  } catch (e) {
    if (load === app.archive.loads) archiveFailed(e, 'your stats');
    return;
  }
  renderArchive();
}

// The newest page (`more` false), or the next older one.
async function loadHistory(load, more) {
  const params = new URLSearchParams({limit: String(ARCHIVE_PAGE)});
  if (more) {
    if (!app.archive.nextCursor) return;
    params.set('cursor', app.archive.nextCursor);
  }
  $('history-more').disabled = true;
  try {
    const page = await rest('GET', `/users/me/matches?${params}`);
    if (load !== app.archive.loads) return;
    archiveAnswered();
    app.archive.history = more ? app.archive.history.concat(page.entries || []) : (page.entries || []);
    app.archive.nextCursor = page.next_cursor || null;
  } catch (e) {
    if (load === app.archive.loads) archiveFailed(e, 'your history');
  } finally {
    $('history-more').disabled = false;
  }
  renderArchive();
}

async function loadBoard(load) {
  const mode = $('board-mode').value;
  if (!mode) return;
  const params = new URLSearchParams({limit: String(ARCHIVE_PAGE)});
  if ($('board-around').checked) params.set('around', 'me');
  try {
    const board = await rest('GET', `/leaderboards/${encodeURIComponent(mode)}?${params}`);
    if (load !== app.archive.loads || mode !== $('board-mode').value) return;
    archiveAnswered();
    app.archive.board = board;
  } catch (e) {
    if (load !== app.archive.loads) return;
    app.archive.board = null;
    if (['unavailable', 'timeout'].includes(e.code)) return archiveFailed(e, 'the leaderboard');
    $('board-info').textContent = `No leaderboard for this mode: ${e.message}`;
    $('board').tBodies[0].replaceChildren();
    return;
  }
  renderArchive();
}

// The leaderboard's mode picker lists the playable modes, as the lobby's does.
function fillBoardModes() {
  const select = $('board-mode');
  const list = app.modes || [];
  const key = list.map((l) => l.id).join(' ');
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  const chosen = select.value || $('mode').value;
  select.replaceChildren(...list.map((l) => {
    const option = document.createElement('option');
    option.value = l.id;
    option.textContent = l.name;
    return option;
  }));
  select.value = list.some((l) => l.id === chosen) ? chosen : list.length ? list[0].id : '';
  if (app.online) loadBoard(app.archive.loads);
}

function modeName(id) {
  const listing = modeListing(id);
  return listing ? listing.name : id;
}

function percent(rate) {
  return `${Math.round((Number(rate) || 0) * 1000) / 10}%`;
}

// 184000 ms: "3:04".
function clock(ms) {
  const s = Math.round((Number(ms) || 0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function rating(value) {
  return value === null || value === undefined ? '–' : String(Math.round(value));
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function renderArchive() {
  const a = app.archive;
  const box = $('archive');
  box.dataset.archive = a.state;
  for (const note of box.querySelectorAll('.archive-note')) {
    note.textContent = a.state === 'unavailable' ? ARCHIVE_UNAVAILABLE : a.state === 'loading' ? 'Loading…' : '';
  }
  if (a.state !== 'ready') return;
  renderStats(a.profile);
  renderHistory(a.history, a.nextCursor);
  renderBoard(a.board);
}

function renderStats(profile) {
  if (!profile) return;
  const name = $('display-name');
  name.dataset.name = profile.display_name || '';
  name.textContent = profile.display_name || 'No name yet';
  const input = $('display-name-input');
  if (document.activeElement !== input && !input.value) input.value = profile.display_name || '';
  $('member-since').textContent = profile.created_ms
    ? `since ${new Date(profile.created_ms).toLocaleDateString()}` : '';
  const stats = profile.stats || {};
  const overall = stats.overall || {};
  const figures = {
    matches: String(overall.matches || 0),
    wins: String(overall.wins || 0),
    losses: String(overall.losses || 0),
    draws: String(overall.draws || 0),
    win_rate: overall.matches ? percent(overall.win_rate) : '–',
    average_match_ms: overall.matches ? clock(overall.average_match_ms) : '–',
  };
  for (const dd of $('overall').querySelectorAll('dd')) dd.textContent = figures[dd.dataset.stat];
  const rows = Object.entries(stats.modes || {}).map(([mode, figures]) => {
    const row = document.createElement('tr');
    row.dataset.mode = mode;
    const r = figures.rating;
    row.append(cell(modeName(mode)), cell(figures.matches || 0), cell(r ? `${rating(r.rating)} ±${Math.round(r.deviation)}` : 'unrated'),
      cell(r ? rating(r.best) : '–'), cell(r && r.season ? r.season : '–'));
    return row;
  });
  if (!rows.length) {
    const row = document.createElement('tr');
    const only = cell('No matches yet: play one and it shows here.');
    only.colSpan = 5;
    row.append(only);
    rows.push(row);
  }
  $('ratings').tBodies[0].replaceChildren(...rows);
}

function renderHistory(entries, nextCursor) {
  $('history-empty').hidden = entries.length > 0;
  $('history-more').hidden = !nextCursor;
  $('history-list').replaceChildren(...entries.map((e) => {
    const li = document.createElement('li');
    li.dataset.match = e.match_id;
    li.dataset.result = e.result;
    const result = document.createElement('span');
    result.className = 'result';
    result.textContent = label(e.result);
    const opponents = (e.opponents || []).map(who).join(', ') || 'nobody';
    const when = e.ended_ms ? new Date(e.ended_ms).toLocaleString() : '';
    li.append(result, `${modeName(e.mode)}${e.ranked ? ' · ranked' : ''} · ${e.score} points · vs ${opponents}`);
    if (typeof e.rating_before === 'number' && typeof e.rating_after === 'number') {
      const delta = Math.round(e.rating_after - e.rating_before);
      const change = document.createElement('span');
      change.className = `change ${delta > 0 ? 'up' : delta < 0 ? 'down' : ''}`;
      change.textContent = ` · rating ${rating(e.rating_before)} → ${rating(e.rating_after)} (${delta >= 0 ? '+' : ''}${delta})`;
      li.append(change);
    }
    li.append(` · ${clock(e.duration_ms)}${when ? ` · ${when}` : ''}`);
    // The archived record: it needs the token, so it is fetched here and
    // shown as JSON in a new tab.
    const verify = document.createElement('a');
    verify.href = `${API}/matches/${encodeURIComponent(e.match_id)}`;
    verify.textContent = 'verify';
    verify.title = 'the archived match record (JSON), which `dashdice match verify` checks';
    verify.addEventListener('click', (event) => {
      event.preventDefault();
      openRecord(e.match_id);
    });
    li.append(verify);
    return li;
  }));
}

async function openRecord(matchId) {
  // Opened at once, in the click: a tab opened after the fetch would be blocked.
  const tab = window.open('', '_blank');
  try {
    const record = await rest('GET', `/matches/${encodeURIComponent(matchId)}`);
    const url = URL.createObjectURL(new Blob([JSON.stringify(record, null, 2)], {type: 'application/json'}));
    if (tab) tab.location.href = url; else location.assign(url);
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    if (tab) tab.close();
    toast(`Could not load the match record: ${e.message}`);
  }
}

function renderBoard(board) {
  const info = $('board-info');
  const body = $('board').tBodies[0];
  if (!board) {
    info.textContent = '';
    body.replaceChildren();
    return;
  }
  const me = app.auth && app.auth.user_id;
  const around = $('board-around').checked;
  info.textContent = `Season ${board.season} · ${board.total} ranked player${board.total === 1 ? '' : 's'}` +
    (around && !board.me ? ' · you are not ranked in this mode this season' : '') +
    (around && board.me ? ` · you are number ${board.me.rank}` : '');
  const entries = board.entries || [];
  if (!entries.length) {
    const row = document.createElement('tr');
    const only = cell('Nobody is ranked yet: play a ranked match.');
    only.colSpan = 3;
    row.append(only);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...entries.map((e) => {
    const row = document.createElement('tr');
    row.dataset.uid = e.uid;
    row.dataset.me = String(e.uid === me);
    const name = e.uid !== me ? e.display_name || who(e.uid) : e.display_name ? `${e.display_name} (you)` : 'You';
    row.append(cell(e.rank), cell(name), cell(rating(e.rating)));
    return row;
  }));
}

// ---------------------------------------------------------------- presence, friends, invites, the lobby's figures

// Friends and direct invites go over the WebSocket (PROTOCOL.md, "Presence,
// friends and direct invites"). The lists are kept by the archiver: while
// none answers, the Friends panel says so and the rest of the page goes on.

// Sends `message`, remembering what it asked so its answer (or error) can be
// told apart from others of the same type. The request id, or null offline.
function request(kind, message, extra = {}) {
  const id = send(message);
  if (id) app.pending.set(id, {kind, ...extra});
  return id;
}

// What the request `id` asked (and forgets it), or null for a push.
function takePending(id) {
  if (id === undefined || id === null) return null;
  const asked = app.pending.get(id);
  app.pending.delete(id);
  return asked || null;
}

// A one-off announcement for screen readers (the countdowns on screen are
// deliberately not live regions: they would speak every second).
function announce(text) {
  const el = $('announce');
  el.textContent = '';
  // A new text node, a moment later, is announced even when it repeats.
  setTimeout(() => { el.textContent = text; }, 50);
}

// An error answered to one of this section's requests: true when handled
// here (said where it belongs), false to let onError toast it.
function onSocialError(asked, code, message) {
  if (!asked) return false;
  const down = ['unavailable', 'timeout'].includes(code);
  switch (asked.kind) {
    case 'friends':
      if (down) {
        friendsUnavailable(message);
        return true;
      }
      // Refused otherwise (say, rate_limited): told, and asked again later.
      clearTimeout(app.friends.retry);
      app.friends.retry = setTimeout(loadFriends, FRIENDS_RETRY_MS);
      return false;
    case 'follow':
      // The dots keep what the list said; a friendship that ended meanwhile
      // (`not_friends`) comes with a notice, which fetches the list again.
      for (const uid of asked.uids) app.friends.followed.delete(uid);
      return true;
    case 'visibility':
      return true; // presence is a hint: nothing to tell the player
    case 'lobby':
      app.lobby.asking = false;
      app.lobby.state = app.lobby.figures ? 'ready' : 'unavailable';
      renderNow();
      return true;
    case 'friend':
      app.friends.busy.delete(asked.uid);
      if (down) friendsUnavailable(message);
      renderFriends();
      return down;
    case 'invite_friend':
      app.friends.busy.delete(asked.uid);
      renderFriends();
      return false;
    case 'accept': {
      const invite = app.invites.get(asked.code);
      if (invite) invite.accepting = false;
      if (STALE_INVITE.includes(code)) app.invites.delete(asked.code);
      renderInvites();
      return false;
    }
    case 'unread':
      return true; // the bell shows no count until one is known
    case 'inbox':
      app.inbox.asking = false;
      inboxRefused(down, code, message);
      return true;
    case 'inbox_change':
      // Out of step (say, deleted in another tab: `not_found`): ask again.
      loadUnread();
      if (app.inbox.open) loadInbox();
      return code === 'not_found';
    default:
      return false;
  }
}

// ---- presence

function setPresence(p) {
  if (!p || !p.uid) return false;
  const known = app.presence.get(p.uid);
  if (known && known.version >= p.version) return false;
  app.presence.set(p.uid, p);
  return true;
}

// The page's visibility, for presence (`away` when every page of the
// player is hidden). The gateway coalesces reports closer than a second.
function reportVisibility() {
  if (app.online) request('visibility', {type: 'visibility', hidden: document.hidden});
}
document.addEventListener('visibilitychange', reportVisibility);

// "online, in a match", "away, in the menu", "offline, last seen 12:03".
function presenceText(p) {
  if (!p) return 'presence unknown';
  if (p.status === 'offline') {
    return p.last_seen_ms ? `offline, last seen ${new Date(p.last_seen_ms).toLocaleString()}` : 'offline';
  }
  return `${p.status}, ${ACTIVITIES[p.activity] || p.activity}`;
}

// ---- friends

function loadFriends() {
  clearTimeout(app.friends.retry);
  if (app.online) request('friends', {type: 'friends'});
}

function friendsUnavailable(message) {
  const f = app.friends;
  f.state = 'unavailable';
  f.note = `Friends are unavailable right now${message ? ` (${message})` : ''}; trying again shortly.`;
  clearTimeout(f.retry);
  f.retry = setTimeout(loadFriends, FRIENDS_RETRY_MS);
  renderFriends();
}

function link(uid) {
  return app.friends.links.find((l) => l.uid === uid);
}

// A player as the friends list names them: their display name, else their id.
function friendName(uid) {
  const known = link(uid);
  if (known && known.display_name) return known.display_name;
  return uid.length > 18 ? `${uid.slice(0, 16)}…` : uid;
}

function onFriends(m) {
  takePending(m.id);
  const f = app.friends;
  f.state = 'ready';
  f.note = '';
  f.links = m.links || [];
  for (const l of f.links) if (l.presence) setPresence(l.presence);
  // Follow every friend's presence (the gateway stops on its own when a
  // friendship ends; a removed friend is unfollowed here too).
  const friends = f.links.filter((l) => l.state === 'friends').map((l) => l.uid);
  const gone = [...f.followed].filter((uid) => !friends.includes(uid));
  if (gone.length) {
    for (const uid of gone) f.followed.delete(uid);
    request('unfollow', {type: 'unfollow_presence', uids: gone});
  }
  const fresh = friends.filter((uid) => !f.followed.has(uid));
  if (fresh.length && app.online) {
    for (const uid of fresh) f.followed.add(uid);
    request('follow', {type: 'follow_presence', uids: fresh}, {uids: fresh});
  }
  renderFriends();
}

// The answer to a verb: says what happened, then the list is asked again
// (the other side may have changed it too).
function onFriend(m) {
  const asked = takePending(m.id);
  app.friends.busy.delete(m.uid);
  const name = friendName(m.uid);
  const state = m.link && m.link.state;
  if (asked && asked.verb === 'request') {
    toast(state === 'friends' ? `You and ${name} are friends now.` : `Friend request sent to ${name}.`, 'info');
    $('friend-uid').value = '';
  } else if (asked && asked.verb === 'accept') {
    toast(`You and ${name} are friends now.`, 'info');
  } else if (asked && asked.verb === 'block') {
    announce(`${name} is blocked.`);
  }
  if (!state || state !== 'friends') app.friends.followed.delete(m.uid);
  loadFriends();
  renderFriends();
}

function onFriendNotice(m) {
  const uid = m.from || m.by || m.uid;
  if (uid) {
    const name = friendName(uid);
    if (m.type === 'friend_request') toast(`${name} wants to be your friend.`, 'info');
    else if (m.type === 'friend_accepted') toast(`${name} accepted your friend request.`, 'info');
    else if (m.type === 'friend_declined') announce(`${name} declined your friend request.`);
    // friend_removed: said quietly (a block is told only this way).
    // unfriended: this player ended it, perhaps in another tab.
    if (m.type === 'friend_removed' || m.type === 'unfriended') app.friends.followed.delete(uid);
  }
  loadFriends();
}

function friendVerb(verb, uid) {
  app.friends.busy.add(uid);
  if (!request('friend', {type: 'friend', verb, uid}, {verb, uid})) app.friends.busy.delete(uid);
  renderFriends();
}

function inviteFriend(uid) {
  const mode = $('mode').value;
  if (!modeListing(mode)) return;
  app.friends.busy.add(uid);
  if (!request('invite_friend', {type: 'invite_friend', uid, mode}, {uid})) app.friends.busy.delete(uid);
  renderFriends();
}

// The answer to invite and invite_friend: we host the code now.
function onInvite(m) {
  const asked = takePending(m.id);
  app.queue = {state: 'hosting', ...m.invite};
  app.direct = asked && asked.kind === 'invite_friend' ? {uid: asked.uid, ...m.invite} : null;
  if (app.direct) app.friends.busy.delete(app.direct.uid);
  render();
  renderFriends();
}

// Our direct invite was declined, or expired unused: we are free again.
function onInviteEnded(m) {
  const uid = m.by || m.to;
  const name = uid ? friendName(uid) : 'Your friend';
  toast(m.type === 'invite_declined' ? `${name} declined your invite.` : `Your invite to ${name} expired.`, 'info');
  if (!app.direct || app.direct.code === m.code) {
    app.direct = null;
    if (app.queue.state === 'hosting' && app.queue.code === m.code) app.queue = {state: 'idle'};
  }
  if (app.online) send({type: 'status'});
  render();
  renderFriends();
}

// ---- invites to us

function onInvited(m) {
  app.invites.set(m.code, {from: m.from, code: m.code, mode: m.mode, expires_ms: m.expires_ms, accepting: false});
  renderInvites();
}

function onInviteWithdrawn(m) {
  if (app.invites.delete(m.code)) {
    announce(`The invite from ${friendName(m.from)} no longer stands.`);
    renderInvites();
  }
}

function acceptInvite(code) {
  const invite = app.invites.get(code);
  if (!invite || !app.online) return;
  readInviteNotifications(code);
  // Queued or hosting a code: leave that first (the socket's messages are
  // handled in order), so the invite is what we play.
  if (['queued', 'hosting'].includes(app.queue.state)) send({type: 'leave'});
  invite.accepting = true;
  request('accept', {type: 'join_code', code}, {code});
  renderInvites();
}

function declineInvite(code) {
  if (!app.invites.has(code) || !app.online) return;
  readInviteNotifications(code);
  request('decline', {type: 'decline_invite', code}, {code});
  app.invites.delete(code);
  renderInvites();
}

// Drops invites past their expiry (the server says so too, but a socket
// may have been down meanwhile).
setInterval(() => {
  let gone = false;
  for (const [code, invite] of app.invites) {
    if (invite.expires_ms && invite.expires_ms <= now()) {
      app.invites.delete(code);
      gone = true;
    }
  }
  if (gone) renderInvites();
}, 1000);

function renderInvites() {
  const list = $('invites-list');
  const invites = [...app.invites.values()].sort((a, b) => a.expires_ms - b.expires_ms);
  $('invites').hidden = invites.length === 0;
  document.title = invites.length ? `(${invites.length}) DashDice` : 'DashDice';
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  // Kept cards stay (a live region announces only what is new).
  const shown = new Map([...list.children].map((li) => [li.dataset.code, li]));
  for (const [code, li] of shown) if (!app.invites.has(code)) li.remove();
  invites.forEach((invite, i) => {
    let li = shown.get(invite.code);
    if (!li) {
      li = document.createElement('li');
      li.className = 'invite-card';
      li.dataset.code = invite.code;
      li.dataset.from = invite.from;
      const text = document.createElement('p');
      const headline = document.createElement('strong');
      headline.textContent = `${friendName(invite.from)} invites you to ${modeName(invite.mode)}`;
      const until = document.createElement('span');
      until.className = 'hint';
      until.textContent = invite.expires_ms ? ` · until ${new Date(invite.expires_ms).toLocaleTimeString()}` : '';
      text.append(headline, until);
      const accept = document.createElement('button');
      accept.type = 'button';
      accept.className = 'primary';
      accept.dataset.key = `accept:${invite.code}`;
      accept.textContent = 'Accept';
      accept.setAttribute('aria-label', `Accept ${friendName(invite.from)}’s invite`);
      accept.addEventListener('click', () => acceptInvite(invite.code));
      const decline = document.createElement('button');
      decline.type = 'button';
      decline.dataset.key = `decline:${invite.code}`;
      decline.textContent = 'Decline';
      decline.setAttribute('aria-label', `Decline ${friendName(invite.from)}’s invite`);
      decline.addEventListener('click', () => declineInvite(invite.code));
      li.append(text, accept, decline);
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  updateInviteButtons();
  if (focused) {
    const again = list.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// Accept waits while a match is being played (or made); the rest follows
// the connection.
function updateInviteButtons() {
  const playing = !!(app.match && !app.match.over) || app.queue.state === 'matching';
  for (const li of $('invites-list').children) {
    const invite = app.invites.get(li.dataset.code);
    const [accept, decline] = li.querySelectorAll('button');
    accept.disabled = !app.online || playing || !invite || invite.accepting;
    accept.title = playing ? 'Finish your match first' : '';
    accept.textContent = invite && invite.accepting ? 'Joining…' : 'Accept';
    decline.disabled = !app.online || !invite || invite.accepting;
  }
}

// ---- the Friends panel

// A Remove or Block button asks twice (without a blocking dialog).
function armed(key, action) {
  const f = app.friends;
  if (f.armed && f.armed.key === key) {
    clearTimeout(f.armed.timer);
    f.armed = null;
    action();
    return;
  }
  if (f.armed) clearTimeout(f.armed.timer);
  f.armed = {key, timer: setTimeout(() => { f.armed = null; renderFriends(); }, 3000)};
  renderFriends();
}

function personButton(text, key, ariaLabel, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.key = key;
  button.textContent = text;
  button.setAttribute('aria-label', ariaLabel);
  button.addEventListener('click', onClick);
  return button;
}

// One row: the name (and id, when there is a name, and `about` under them),
// then `buttons`.
function personRow(l, about, ...buttons) {
  const li = document.createElement('li');
  li.dataset.uid = l.uid;
  li.dataset.state = l.state;
  const person = document.createElement('span');
  person.className = 'person';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = friendName(l.uid);
  person.append(name);
  if (l.display_name) {
    const uid = document.createElement('span');
    uid.className = 'uid';
    uid.textContent = l.uid;
    person.append(uid);
  }
  if (about) person.append(about);
  const actions = document.createElement('span');
  actions.className = 'row-actions';
  actions.append(...buttons);
  li.append(person, actions);
  return li;
}

const STATUS_ORDER = {online: 0, away: 1, offline: 2};

function renderFriends() {
  const f = app.friends;
  const panel = $('friends');
  panel.dataset.friends = f.state;
  $('friends-note').textContent = f.state === 'unavailable' ? f.note : f.state === 'loading' ? 'Loading…' : '';
  $('my-uid').textContent = app.auth ? app.auth.user_id : '…';
  if (f.state !== 'ready') {
    renderSocial();
    return;
  }
  const focused = document.activeElement && panel.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  const mode = modeListing($('mode').value);
  const armedKey = f.armed && f.armed.key;
  const byState = (state) => f.links.filter((l) => l.state === state);

  const friends = byState('friends').map((l) => ({l, p: app.presence.get(l.uid) || l.presence || null}));
  friends.sort((a, b) => (STATUS_ORDER[a.p ? a.p.status : 'offline'] - STATUS_ORDER[b.p ? b.p.status : 'offline'])
    || friendName(a.l.uid).localeCompare(friendName(b.l.uid)));
  $('friends-list').replaceChildren(...friends.map(({l, p}) => {
    const name = friendName(l.uid);
    const status = p ? p.status : 'unknown';
    const presence = document.createElement('span');
    presence.className = 'presence';
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.dataset.status = status;
    dot.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.className = 'presence-text';
    text.textContent = presenceText(p);
    presence.append(dot, text);
    const invite = personButton('Invite', `invite:${l.uid}`,
      mode ? `Invite ${name} to ${mode.name}` : `Invite ${name}`, () => inviteFriend(l.uid));
    invite.classList.add('invite-friend');
    invite.dataset.uid = l.uid;
    invite.dataset.status = status;
    const remove = personButton(armedKey === `remove:${l.uid}` ? 'Really remove?' : 'Remove', `remove:${l.uid}`,
      `Remove ${name} from your friends`, () => armed(`remove:${l.uid}`, () => friendVerb('remove', l.uid)));
    const block = personButton(armedKey === `block:${l.uid}` ? 'Really block?' : 'Block', `block:${l.uid}`,
      `Block ${name}`, () => armed(`block:${l.uid}`, () => friendVerb('block', l.uid)));
    block.classList.add('quiet');
    const row = personRow(l, presence, invite, remove, block);
    row.dataset.status = status;
    return row;
  }));
  $('friends-empty').hidden = friends.length > 0;

  const group = (id, links, buttons) => {
    $(id).hidden = links.length === 0;
    $(id).querySelector('ul').replaceChildren(...links.map((l) => personRow(l, null, ...buttons(l, friendName(l.uid)))));
  };
  group('friends-incoming', byState('incoming'), (l, name) => [
    personButton('Accept', `accept:${l.uid}`, `Accept ${name}’s friend request`, () => friendVerb('accept', l.uid)),
    personButton('Decline', `decline:${l.uid}`, `Decline ${name}’s friend request`, () => friendVerb('decline', l.uid)),
  ]);
  group('friends-outgoing', byState('outgoing'), (l, name) => [
    personButton('Cancel', `cancel:${l.uid}`, `Cancel your friend request to ${name}`, () => friendVerb('remove', l.uid)),
  ]);
  group('friends-blocked', byState('blocked'), (l, name) => [
    personButton('Unblock', `unblock:${l.uid}`, `Unblock ${name}`, () => friendVerb('unblock', l.uid)),
  ]);

  renderSocial();
  if (focused) {
    const again = panel.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// What changes with the connection, the queue and the mode picker, without
// rebuilding the lists: the buttons' states and the waiting invite.
function renderSocial() {
  const f = app.friends;
  const idle = app.queue.state === 'idle' || (app.queue.state === 'playing' && !!(app.match && app.match.over));
  const mode = modeListing($('mode').value);
  const inMatch = !!(app.match && !app.match.over);
  for (const button of $('friends').querySelectorAll('button[data-key]')) {
    const uid = button.dataset.key.slice(button.dataset.key.indexOf(':') + 1);
    button.disabled = !app.online || f.busy.has(uid);
  }
  for (const button of $('friends').querySelectorAll('button.invite-friend')) {
    const uid = button.dataset.uid;
    const offline = button.dataset.status === 'offline';
    button.disabled = !app.online || f.busy.has(uid) || !idle || inMatch || !mode || offline;
    button.title = offline ? `${friendName(uid)} is offline`
      : !mode ? 'Choose a mode first' : !idle ? 'You are already queued or hosting a code' : '';
  }
  $('add-friend').disabled = !app.online;
  // Our invite: waiting for the friend, until the code expires.
  const d = app.direct;
  $('friend-invite').hidden = !d;
  if (d) {
    $('friend-invite-text').textContent = `Waiting for ${friendName(d.uid)} (${modeName(d.mode)}); ` +
      `the invite stands until ${new Date(d.expires_ms).toLocaleTimeString()}.`;
    $('friend-invite-cancel').disabled = !app.online;
  }
  updateInviteButtons();
  renderBell();
  updateInboxButtons();
}

$('add-friend-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const uid = $('friend-uid').value.trim();
  if (!uid) return;
  if (app.auth && uid === app.auth.user_id) {
    toast('That is your own id: give it to a friend instead.');
    return;
  }
  friendVerb('request', uid);
});
$('friend-invite-cancel').addEventListener('click', () => send({type: 'leave'}));

// ---- the lobby's figures

// Asked over the socket once signed in; before that, GET /regions (public).
async function loadLobby() {
  const l = app.lobby;
  if (l.asking) return;
  if (app.online) {
    if (request('lobby', {type: 'lobby'})) l.asking = true;
    return;
  }
  l.asking = true;
  try {
    const response = await fetch(`${API}/regions`, {cache: 'no-store'});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    l.asking = false;
    onLobby(body);
  } catch {
    l.asking = false;
    if (!l.figures) l.state = 'unavailable';
    renderNow();
  }
}
setInterval(() => {
  if (app.screen === 'lobby' && !document.hidden) loadLobby();
}, LOBBY_EVERY_MS);

function onLobby(lobby) {
  const l = app.lobby;
  l.asking = false;
  if (!lobby) return;
  l.figures = lobby;
  l.state = 'ready';
  renderNow();
}

// A wait as people read it: "under 1 s", "12 s", "1 min 05 s".
function waitText(ms) {
  if (ms === null || ms === undefined) return '–';
  const s = Math.round(Number(ms) / 1000);
  if (s < 1) return 'under 1 s';
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

function renderNow() {
  const l = app.lobby;
  const box = $('now');
  box.dataset.lobby = l.state;
  $('now-note').textContent = l.state === 'unavailable' ? 'The lobby’s figures are unavailable right now.'
    : l.state === 'loading' ? 'Loading…' : '';
  const figures = l.figures;
  if (!figures) {
    $('now-online').textContent = '';
    return;
  }
  const regions = (figures.regions || []).filter((r) => r.online > 0);
  const total = regions.reduce((sum, r) => sum + r.online, 0);
  $('now-online').textContent = `${total} player${total === 1 ? '' : 's'} online` +
    (regions.length ? ` (${regions.map((r) => `${r.region} ${r.online}`).join(', ')})` : '');
  const chosen = $('mode').value;
  const queues = [...(figures.queues || [])].sort((a, b) => modeName(a.mode).localeCompare(modeName(b.mode))
    || String(a.kind).localeCompare(String(b.kind)));
  const body = $('now-queues').tBodies[0];
  if (!queues.length) {
    const row = document.createElement('tr');
    const only = cell('Nobody is waiting right now.');
    only.colSpan = 4;
    row.append(only);
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(...queues.map((q) => {
    const row = document.createElement('tr');
    row.dataset.mode = q.mode;
    row.dataset.kind = q.kind;
    row.dataset.selected = String(q.mode === chosen);
    const median = cell(waitText(q.median_wait_ms));
    if (q.recent_matches) median.title = `the median of the last ${q.recent_matches} matches`;
    row.append(cell(modeName(q.mode)), cell(label(q.kind)), cell(q.waiting), median);
    return row;
  }));
}

// ---- opponents' connections in a match

function onPlayerConnection(m) {
  const match = app.match;
  const me = app.auth && app.auth.user_id;
  if (!match || match.id !== m.match_id || m.player === me) return;
  const known = match.away.get(m.player);
  if (known && known.at > m.at_ms) return; // an older report
  const name = who(m.player);
  if (m.connected) {
    // Said only when they had been gone.
    if (!known || known.connected) return;
    match.away.set(m.player, {connected: true, at: m.at_ms, hideAt: Date.now() + BACK_BANNER_MS});
    announce(`${name} is back.`);
  } else {
    const timed = m.turn === m.player && typeof m.turn_ms_left === 'number';
    const deadline = timed ? m.at_ms + m.turn_ms_left : null;
    match.away.set(m.player, {connected: false, at: m.at_ms, deadline, turn: m.turn || null});
    announce(timed ? `${name} disconnected, ${seconds(m.turn_ms_left)} left on the turn timer.` : `${name} disconnected.`);
  }
  renderConnectionBanners();
}

// One banner per opponent who is gone (counting their turn timer down) or
// just came back (for a few seconds).
function renderConnectionBanners() {
  const box = $('player-connection');
  const m = app.match;
  if (!m || !m.away.size) {
    if (box.childElementCount) box.replaceChildren();
    box.dataset.key = '';
    return;
  }
  const lines = [];
  for (const [player, c] of m.away) {
    if (c.connected) {
      if (Date.now() >= c.hideAt) {
        m.away.delete(player);
        continue;
      }
      lines.push({player, connected: true, text: `${who(player)} is back`});
      continue;
    }
    // The countdown holds while it is still their turn and the game runs.
    const theirTurn = !m.over && (!m.view || m.view.turn === player);
    const text = c.deadline !== null && theirTurn
      ? `${who(player)} disconnected — ${seconds(c.deadline - now())} left on the turn timer`
      : `${who(player)} disconnected`;
    lines.push({player, connected: false, text});
  }
  const key = JSON.stringify(lines);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(...lines.map((line) => {
    const p = document.createElement('p');
    p.className = 'banner';
    p.dataset.player = line.player;
    p.dataset.connected = String(line.connected);
    p.textContent = line.text;
    return p;
  }));
}

// ---------------------------------------------------------------- notifications: the bell and the inbox

// The notifier keeps each player's inbox (PROTOCOL.md, "Notifications"). The
// bell shows the unread count: asked on every welcome, then kept by the
// `notification` and `inbox_changed` pushes (sent only while a socket is
// open; what came meanwhile is in the inbox). The panel asks the newest page
// each time it opens, older ones on demand. Reads and deletes show at once
// and the answer's count settles the bell. With no notifier running, the
// bell shows no count and the panel says so.

function loadUnread() {
  if (app.online) request('unread', {type: 'unread'});
}

// The newest page (`more`: the next older one).
function loadInbox(more = false) {
  const box = app.inbox;
  if (box.asking || !app.online || (more && !box.next)) return;
  clearTimeout(box.retry);
  const message = {type: 'notifications', limit: INBOX_PAGE};
  if (more) message.before = box.next;
  if (request('inbox', message, {more})) box.asking = true;
  renderInbox();
}

function onInboxPage(m) {
  const asked = takePending(m.id);
  const box = app.inbox;
  box.asking = false;
  box.state = 'ready';
  box.note = '';
  const page = m.notifications || [];
  if (asked && asked.more) {
    const known = new Set(box.items.map((n) => n.id));
    box.items.push(...page.filter((n) => !known.has(n.id)));
  } else {
    box.items = page;
  }
  box.next = m.next || null;
  setUnread(m.unread);
}

// A page request refused: unavailable (asked again while open), or a note.
function inboxRefused(down, code, message) {
  const box = app.inbox;
  if (down) {
    box.state = 'unavailable';
    box.note = `Notifications are unavailable right now${message ? ` (${message})` : ''}; trying again shortly.`;
    clearTimeout(box.retry);
    box.retry = setTimeout(() => { if (app.inbox.open) loadInbox(); }, INBOX_RETRY_MS);
  } else {
    box.note = `${message || 'The inbox could not be loaded'} (${code})`;
  }
  renderInbox();
}

function setUnread(n) {
  if (typeof n !== 'number') return;
  const box = app.inbox;
  box.unread = n;
  // None unread: every one shown is read (perhaps in another tab).
  if (n === 0) for (const item of box.items) item.read = true;
  renderInbox();
}

function onNotification(m) {
  const box = app.inbox;
  if (!m.id) return;
  const n = {
    id: m.id, kind: m.kind, title: m.title, body: m.body, data: m.data || {},
    created_ms: m.created_ms, expires_ms: m.expires_ms, read: !!m.read,
  };
  if (!box.items.some((i) => i.id === n.id)) {
    box.items.unshift(n);
    if (!n.read && box.unread !== null) box.unread += 1;
  }
  if (box.unread === null) loadUnread();
  announce(`New notification: ${n.title}`);
  renderInbox();
}

function markRead(n) {
  if (n.read || !app.online) return;
  n.read = true;
  if (app.inbox.unread) app.inbox.unread -= 1;
  request('inbox_change', {type: 'notification_read', notification_id: n.id});
  renderInbox();
}

function markAllRead() {
  if (!app.online) return;
  for (const n of app.inbox.items) n.read = true;
  app.inbox.unread = 0;
  request('inbox_change', {type: 'notifications_read_all'});
  renderInbox();
}

function deleteNotification(n) {
  if (!app.online) return;
  const box = app.inbox;
  box.items = box.items.filter((i) => i.id !== n.id);
  if (!n.read && box.unread) box.unread -= 1;
  request('inbox_change', {type: 'notification_delete', notification_id: n.id});
  renderInbox();
}

// An invite acted on from its card: its notifications are read.
function readInviteNotifications(code) {
  for (const n of app.inbox.items) {
    if (n.kind === 'match_invite' && n.data && n.data.code === code) markRead(n);
  }
}

// Whether what a notification offers (an invite, a rematch) has run out.
function offerExpired(n) {
  const until = Number(n.data && n.data.expires_ms);
  return until > 0 && until <= now();
}

// Joins an invite from the inbox, as its card's Accept does.
function joinFromInbox(n) {
  const code = n.data && n.data.code;
  if (!code || !app.online) return;
  markRead(n);
  if (['queued', 'hosting'].includes(app.queue.state)) send({type: 'leave'});
  const invite = app.invites.get(code);
  if (invite) invite.accepting = true;
  request('accept', {type: 'join_code', code}, {code});
  renderInvites();
}

// Declines it; the notification has done its job and goes.
function declineFromInbox(n) {
  const code = n.data && n.data.code;
  if (!code || !app.online) return;
  request('decline', {type: 'decline_invite', code}, {code});
  app.invites.delete(code);
  renderInvites();
  deleteNotification(n);
}

// Answers a rematch offer, as the final screen's Rematch does.
function rematchFromInbox(n) {
  const matchId = n.data && n.data.match_id;
  if (!matchId || !app.online) return;
  markRead(n);
  request('rematch', {type: 'rematch', match_id: matchId});
}

function toggleInbox(open = !app.inbox.open) {
  app.inbox.open = open;
  if (open) loadInbox();
  else clearTimeout(app.inbox.retry);
  renderInbox();
}

function renderBell() {
  const n = app.inbox.unread;
  const bell = $('bell');
  bell.disabled = !app.auth;
  bell.dataset.unread = n === null ? '' : String(n);
  bell.setAttribute('aria-expanded', String(app.inbox.open));
  bell.setAttribute('aria-label', n ? `Notifications, ${n} unread` : 'Notifications');
  $('bell-count').hidden = !n;
  $('bell-count').textContent = n > 99 ? '99+' : String(n || '');
}

function inboxButton(text, key, act, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.key = key;
  button.dataset.act = act;
  button.textContent = text;
  button.addEventListener('click', onClick);
  return button;
}

// One notification: opening it (its text is a button) marks it read; an
// invite or a rematch offer can be answered from here.
function notificationRow(n) {
  const li = document.createElement('li');
  li.dataset.id = n.id;
  li.dataset.kind = n.kind;
  li.dataset.read = String(!!n.read);
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'open';
  open.dataset.key = `open:${n.id}`;
  open.dataset.act = 'open';
  const title = document.createElement('strong');
  if (!n.read) {
    const unread = document.createElement('span');
    unread.className = 'visually-hidden';
    unread.textContent = 'Unread: ';
    title.append(unread);
  }
  title.append(n.title || label(n.kind || 'notification'));
  open.append(title);
  if (n.body) {
    const body = document.createElement('span');
    body.textContent = n.body;
    open.append(body);
  }
  const when = document.createElement('span');
  when.className = 'when';
  when.textContent = n.created_ms ? new Date(n.created_ms).toLocaleString() : '';
  open.append(when);
  open.addEventListener('click', () => markRead(n));
  const actions = document.createElement('span');
  actions.className = 'row-actions';
  const data = n.data || {};
  if (n.kind === 'match_invite' && data.code) {
    const join = inboxButton('Join', `join:${n.id}`, 'join', () => joinFromInbox(n));
    join.classList.add('primary');
    actions.append(join, inboxButton('Decline', `decline:${n.id}`, 'decline', () => declineFromInbox(n)));
  } else if (n.kind === 'rematch_offer' && data.match_id) {
    const rematch = inboxButton('Rematch', `rematch:${n.id}`, 'rematch', () => rematchFromInbox(n));
    rematch.classList.add('primary');
    actions.append(rematch);
  }
  const remove = inboxButton('Delete', `delete:${n.id}`, 'delete', () => deleteNotification(n));
  remove.classList.add('quiet');
  remove.setAttribute('aria-label', `Delete “${n.title || label(n.kind || 'notification')}”`);
  actions.append(remove);
  li.append(open, actions);
  return li;
}

function renderInbox() {
  const box = app.inbox;
  const panel = $('inbox');
  panel.hidden = !box.open;
  panel.dataset.inbox = box.state;
  renderBell();
  if (!box.open) return;
  const focused = document.activeElement && panel.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  $('inbox-note').textContent = box.note || (box.state === 'loading' && box.items.length === 0 ? 'Loading…' : '');
  $('inbox-list').replaceChildren(...box.items.map(notificationRow));
  $('inbox-empty').hidden = box.state !== 'ready' || box.items.length > 0;
  $('inbox-more').hidden = !box.next;
  updateInboxButtons();
  if (focused) {
    const again = panel.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// What follows the connection and the match: Join and Rematch wait while a
// match is played (or made), and for an offer that has not run out.
function updateInboxButtons() {
  const box = app.inbox;
  const playing = !!(app.match && !app.match.over) || app.queue.state === 'matching';
  $('inbox-more').disabled = !app.online || box.asking;
  $('inbox-read-all').disabled = !app.online || !box.unread;
  for (const li of $('inbox-list').children) {
    const n = box.items.find((i) => i.id === li.dataset.id);
    const expired = !!n && offerExpired(n);
    for (const button of li.querySelectorAll('button[data-act]')) {
      const offer = ['join', 'rematch'].includes(button.dataset.act);
      button.disabled = !app.online || (offer && (playing || expired)) || (button.dataset.act === 'decline' && expired);
      if (offer) button.title = expired ? 'This has run out' : playing ? 'Finish your match first' : '';
    }
  }
}

$('bell').addEventListener('click', () => toggleInbox());
$('inbox-close').addEventListener('click', () => {
  toggleInbox(false);
  $('bell').focus();
});
$('inbox-read-all').addEventListener('click', markAllRead);
$('inbox-more').addEventListener('click', () => loadInbox(true));
// Offers run out while the panel is open.
setInterval(() => { if (app.inbox.open) updateInboxButtons(); }, 1000);

// ---------------------------------------------------------------- rendering

function render() {
  const m = app.match;
  const screen = !m ? 'lobby' : m.over ? 'final' : 'match';
  // Back in the lobby: what is playable may have changed meanwhile.
  if (screen === 'lobby' && app.screen && app.screen !== 'lobby') {
    loadModes();
    loadLobby();
  }
  app.screen = screen;
  document.body.dataset.screen = screen;
  $('me').textContent = app.auth ? `signed in as ${app.auth.user_id}` : 'not signed in';
  $('me').dataset.user = app.auth ? app.auth.user_id : '';
  $('lobby').hidden = screen !== 'lobby';
  $('match').hidden = screen === 'lobby';
  $('archive').hidden = screen === 'match';
  if (screen === 'lobby') renderLobby(); else renderMatch(m);
  renderSocial();
}

function renderLobby() {
  const q = app.queue;
  const idle = q.state === 'idle';
  const listing = modeListing($('mode').value);
  for (const id of ['queue', 'play-bot', 'invite']) $(id).disabled = !app.online || !idle || !listing;
  $('join-code').disabled = !app.online || !idle; // a code brings its own mode
  $('mode').disabled = !app.modes || app.modes.length === 0;
  $('mode-about').textContent = listing ? listing.description
    : app.modes ? 'No mode is playable right now; the list is checked again every 30 s.'
      : app.modesError ? `Could not load the modes (${app.modesError}); retrying…` : 'Loading the modes…';
  renderModeDetails(listing);
  $('queue-status').hidden = idle;
  $('invite-code').hidden = q.state !== 'hosting';
  $('leave').hidden = !['queued', 'hosting'].includes(q.state);
  $('leave').textContent = q.state === 'hosting' ? 'Cancel invite' : 'Leave queue';
  $('leave').disabled = !app.online;
  let text = '';
  if (q.state === 'queued') {
    text = `Looking for an opponent (${q.kind}, ${q.mode}): number ${q.position} of ${q.queue_size} in the queue, ` +
      `waiting ${seconds(q.waited_ms)}, about ${seconds(q.estimated_wait_ms)} to go.`;
  } else if (q.state === 'hosting' && app.direct) {
    // A code made for one friend: only they may join it.
    $('invite-code').hidden = true;
    text = `Waiting for ${friendName(app.direct.uid)} to accept your invite (${modeName(q.mode)}); ` +
      `it stands until ${new Date(q.expires_ms).toLocaleTimeString()}.`;
  } else if (q.state === 'hosting') {
    text = `Give this code to a friend (${q.mode}); it works until ${new Date(q.expires_ms).toLocaleTimeString()}:`;
    $('invite-code').textContent = q.code;
  } else if (q.state === 'matching') {
    text = 'Opponent found, setting up the match…';
  } else if (q.state === 'playing') {
    text = 'Joining the match…';
  }
  $('queue-text').textContent = text;
  $('queue-status').dataset.state = q.state;
  renderNow();
}

function renderMatch(m) {
  const view = m.view;
  const snap = m.snap;
  const me = app.auth && app.auth.user_id;
  const mine = myTurn();
  const listing = matchListing(m);
  const actions = matchActions(m);
  $('match').dataset.seq = m.lastSeq;
  $('match-mode').textContent = snap ? `${listing ? listing.name : snap.mode}` +
    `${snap.ranked ? ' · ranked' : ''} · ${(snap.players || []).map(who).join(' vs ')}` : '';
  $('match').dataset.turn = !view || m.over ? 'none' : mine ? 'me' : 'them';

  // Players and their banked scores.
  const players = view ? view.players : [];
  $('players').replaceChildren(...players.map((p) => {
    const card = document.createElement('div');
    card.className = 'player';
    card.dataset.player = p.id;
    card.dataset.me = String(p.id === me);
    card.classList.toggle('on-turn', !!view && view.turn === p.id && !m.over);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = who(p.id);
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = p.score;
    card.append(name, score);
    return card;
  }));

  // Whose turn, the dice, the turn score.
  const moves = actions.filter((a) => a.name !== 'forfeit').map((a) => label(a.name).toLowerCase());
  $('turn').textContent = !view ? 'Loading the match…' : m.over ? 'Game over'
    : mine ? (moves.length ? `Your turn: ${either(moves)}` : 'Your turn') : `${who(view.turn || '')} is playing…`;
  const dice = $('dice');
  if (String(m.diceSeq) !== dice.dataset.seq) {
    dice.dataset.seq = m.diceSeq;
    dice.dataset.dice = m.dice ? m.dice.join(',') : '';
    dice.setAttribute('aria-label', m.dice ? `dice: ${m.dice.join(' and ')}` : 'no dice yet');
    dice.replaceChildren(...(m.dice || [0, 0]).map(face));
    dice.classList.remove('fresh');
    void dice.offsetWidth; // restart the roll animation
    if (m.dice) dice.classList.add('fresh');
  }
  $('roll-kind').textContent = m.dice ? `${who(m.diceBy)} rolled ${m.dice.join(' and ')}${KINDS[m.diceKind] ? `: ${KINDS[m.diceKind]}` : ''}` : '';
  const turnScore = view ? view.turn_score : 0;
  $('turn-score-line').hidden = !!m.over;
  $('turn-score').textContent = turnScore;
  $('turn-score').dataset.value = turnScore;
  const multiplier = view ? view.multiplier : 1;
  $('multiplier').hidden = !(multiplier > 1) || !!m.over;
  $('multiplier').textContent = zeroHour() ? `level ×${multiplier}` : `×${multiplier}`;

  // Buttons: the mode's actions (True Grit has no bank, a published mode may
  // have its own), only on our turn, and one action at a time.
  const ready = mine && app.online && !m.acting;
  for (const name of ['roll', 'bank', 'forfeit']) {
    const action = actions.find((a) => a.name === name);
    $(name).hidden = !action;
    $(name).title = action ? action.description : '';
  }
  $('roll').disabled = !ready || $('roll').hidden;
  $('bank').disabled = !ready || turnScore <= 0 || $('bank').hidden;
  $('forfeit').disabled = !app.online || !view || !!m.over || !!m.acting || $('forfeit').hidden;
  renderCustomActions(actions.filter((a) => !BUILT_IN_ACTIONS.includes(a.name)), ready);
  $('controls').hidden = !!m.over;
  renderTimer();

  // Fair dice.
  $('seed-hash').textContent = snap ? snap.seed_hash : '…';
  $('seed').textContent = snap && snap.seed ? snap.seed : 'revealed at the end';
  const status = $('seed-status');
  status.dataset.status = m.seedStatus;
  status.textContent = {
    pending: 'waiting for the end', checking: 'checking…',
    verified: 'verified: SHA-256(seed) matches the published hash',
    mismatch: 'MISMATCH: the seed does not match the published hash',
    unavailable: 'could not check here (needs https)',
    missing: 'the server did not reveal the seed',
  }[m.seedStatus];

  // The end.
  $('final').hidden = !m.over;
  if (m.over) renderFinal(m);
}

function renderFinal(m) {
  const standings = m.over.standings || [];
  const winner = standings.find((s) => s.result === 'win');
  const me = app.auth && app.auth.user_id;
  const heading = $('winner');
  heading.dataset.winner = winner ? winner.player : '';
  heading.dataset.result = !winner ? 'draw' : winner.player === me ? 'win' : 'loss';
  heading.textContent = (!winner ? 'A draw!' : winner.player === me ? 'You win!' : `${who(winner.player)} wins`) +
    (m.over.reason === 'forfeit' ? ' (by forfeit)' : '');
  $('standings').tBodies[0].replaceChildren(...standings.map((s) => {
    const row = document.createElement('tr');
    row.dataset.player = s.player;
    row.dataset.result = s.result;
    for (const text of [s.rank, who(s.player), s.score, s.result]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
  const bot = m.snap && (m.snap.bots || []).length > 0;
  const rematch = $('rematch');
  rematch.hidden = bot;
  rematch.disabled = !app.online || m.rematch === 'offered';
  rematch.textContent = m.rematch === 'asked' ? 'Accept rematch' : m.rematch === 'offered' ? 'Rematch offered…' : 'Rematch';
}

// One button per custom action of the match's mode, titled with its
// description; rebuilt only when the mode's actions change.
function renderCustomActions(custom, ready) {
  const box = $('custom-actions');
  const key = JSON.stringify(custom.map((a) => [a.name, a.description]));
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...custom.map((a) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'custom-action';
      button.dataset.action = a.name;
      button.title = a.description || '';
      button.textContent = label(a.name);
      button.addEventListener('click', () => act('custom', a.name));
      return button;
    }));
  }
  for (const button of box.children) button.disabled = !ready;
}

function renderTimer() {
  const m = app.match;
  const el = $('timer');
  const snap = m && m.snap;
  // A deadline is only good for the state it came with.
  if (!snap || !snap.deadline_ms || m.over || snap.seq < m.lastSeq) {
    el.textContent = '';
    delete el.dataset.left;
    return;
  }
  const left = Math.max(0, snap.deadline_ms - now());
  const turn = m.view && m.view.turn;
  el.dataset.left = left;
  // A bot's deadline is only when it will act: not worth a countdown.
  el.textContent = myTurn() ? `${Math.ceil(left / 1000)} s left`
    : turn && who(turn) !== 'Bot' ? `${who(turn)}: ${Math.ceil(left / 1000)} s left` : '';
  el.classList.toggle('urgent', myTurn() && left < 10000);
}
setInterval(() => {
  renderTimer();
  renderConnectionBanners();
}, 250);

function face(value) {
  const die = document.createElement('span');
  die.className = 'die';
  die.dataset.value = value;
  for (let cell = 0; cell < 9; cell++) {
    const pip = document.createElement('span');
    if ((PIPS[value] || []).includes(cell)) pip.className = 'pip';
    die.append(pip);
  }
  return die;
}

// ---------------------------------------------------------------- controls

$('mode').addEventListener('change', () => {
  render();
  renderFriends(); // the Invite buttons name the mode
});
$('queue').addEventListener('click', () => send({type: 'join', mode: $('mode').value, kind: $('kind').value}));
$('play-bot').addEventListener('click', () => send({type: 'join', mode: $('mode').value, kind: 'quick', opponent: 'bot'}));
$('invite').addEventListener('click', () => send({type: 'invite', mode: $('mode').value}));
$('join-code-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const code = $('code').value.trim();
  if (code) send({type: 'join_code', code});
});
$('leave').addEventListener('click', () => send({type: 'leave'}));
$('roll').addEventListener('click', () => act('roll'));
$('bank').addEventListener('click', () => act('bank'));

// Forfeit asks twice (without a blocking dialog).
let forfeitArmed = null;
$('forfeit').addEventListener('click', () => {
  const button = $('forfeit');
  if (forfeitArmed) {
    clearTimeout(forfeitArmed);
    forfeitArmed = null;
    button.textContent = 'Forfeit';
    act('forfeit');
    return;
  }
  button.textContent = 'Really forfeit?';
  forfeitArmed = setTimeout(() => { forfeitArmed = null; button.textContent = 'Forfeit'; }, 3000);
});

$('play-again').addEventListener('click', () => {
  const m = app.match;
  if (m) {
    clearTimeout(m.refresh);
    app.left.add(m.id);
  }
  app.match = null;
  app.queue = {state: 'idle'};
  if (app.online) send({type: 'status'});
  refreshArchive();
  render();
});
$('rematch').addEventListener('click', () => {
  if (app.match) send({type: 'rematch', match_id: app.match.id});
});

$('rename-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('display-name-input').value.trim();
  if (!name) return;
  $('rename').disabled = true;
  try {
    app.archive.profile = await rest('PUT', '/users/me', {display_name: name});
    archiveAnswered();
    toast('Name saved.', 'info');
    // The leaderboard shows names too.
    loadBoard(app.archive.loads);
  } catch (err) {
    if (['unavailable', 'timeout'].includes(err.code)) archiveFailed(err, 'your stats');
    else toast(`${err.message} (${err.code})`);
  } finally {
    $('rename').disabled = false;
    renderArchive();
  }
});
$('history-more').addEventListener('click', () => loadHistory(app.archive.loads, true));
$('board-mode').addEventListener('change', () => loadBoard(app.archive.loads));
$('board-around').addEventListener('change', () => loadBoard(app.archive.loads));

// For tests and debugging: drop the connection as a network failure would.
window.dashdice = {drop: () => app.ws && app.ws.close()};

render();
renderArchive();
renderFriends();
renderInbox();
loadModes();
loadLobby(); // GET /regions until the socket is up
connect();
