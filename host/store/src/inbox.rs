//! Notifications in Redis: each user's inbox, their devices, and the
//! bookkeeping that keeps pushes few.
//!
//! The store keeps what it is given: a notification's JSON (rendered and
//! encoded by the notifier) under its id and creation time, and a device's
//! token and platform name. It never reads the JSON.
//!
//! ## Layout
//!
//! A user's keys carry the hash tag `{nt:<uid>}`, so in a Redis Cluster
//! they share one slot and each script touches one slot only.
//!
//! | key | type | holds | ttl |
//! |---|---|---|---|
//! | `{nt:<uid>}:ids` | zset | notification id, scored by its creation time (ms) | [`InboxSettings::ttl_ms`] from the last notification added |
//! | `{nt:<uid>}:body` | hash | notification id → its JSON | as `ids` |
//! | `{nt:<uid>}:unread` | set | the ids not yet read | as `ids` |
//! | `{nt:<uid>}:dev` | zset | device token, scored by when it was (last) registered (ms) | [`InboxSettings::device_ttl_ms`] from the last registration |
//! | `{nt:<uid>}:devp` | hash | device token → platform (`web`, `android`, `ios`) | as `dev` |
//! | `{nt:<uid>}:push` | string | pushes granted in the current window (counter) | the window, [`InboxSettings::push_window_ms`], from its first push |
//! | `{nt:<uid>}:sent:<id>` | string | `1`: notification `id` was pushed (or collapsed, or refused by the cap) | [`InboxSettings::sent_ttl_ms`] |
//! | `{nt:<uid>}:col:<key>` | string | `1`: a push with collapse key `key` went out | [`InboxSettings::collapse_ms`] |
//! | `nt:owner:<digest>` | string | the uid that registered the device token whose SHA-256 (first 16 bytes, hex) is `digest` | as `dev` |
//! | `nt:{ntuS}:users` | set | uids with an inbox or a device (`S` = first byte of SHA-256(uid) mod [`USER_SHARDS`], two digits) | none |
//!
//! ## The inbox
//!
//! Every change is one Lua script (`inbox/*.lua`, each prefixed with
//! `inbox/common.lua`) over the user's three inbox keys, so `ids`, `body`
//! and `unread` move together and the unread count (`SCARD`) is exact.
//! Each script first drops what has expired (created at or before now less
//! the ttl), so an expired notification is never listed or counted. Adding
//! an id already there changes nothing (idempotent, so a request delivered
//! twice is one notification); past [`InboxSettings::cap`] the oldest are
//! dropped. A notification is `read` when its id is not in `unread`: the
//! JSON never changes once stored.
//!
//! Pages are newest first: creation time descending, then id descending
//! (byte order, as the zset orders equal scores). A page's cursor is the
//! last notification's `<created ms>:<id>`: the next page holds what sorts
//! after it, so deleting or adding meanwhile neither repeats nor skips one.
//!
//! ## Devices
//!
//! A user has at most [`InboxSettings::max_devices`]; registering one more
//! drops the oldest registration. A token belongs to one user: registering
//! it moves it (`nt:owner:` records who has it; the previous owner loses
//! it). The owner record and the users' device keys sit in different slots,
//! so a move is three steps (claim the owner record, remove from the old
//! owner, add to the new), each atomic; a crash between them leaves the
//! token with both users until one of them pushes to it and FCM answers
//! for the wrong one, which is only a misdirected push to the device's own
//! app (FCM tokens are per app install).
//!
//! ## Pushes
//!
//! [`InboxStore::claim_push`] decides, in one script over the user's keys,
//! whether a notification may be pushed: not if it was pushed before (a
//! redelivered request), not if a push with the same collapse key went out
//! within [`InboxSettings::collapse_ms`] (one "your turn", not twenty), and
//! not past [`InboxSettings::pushes_per_window`] a window per user. The
//! state is in Redis, so any number of notifier instances agree.
//!
//! A granted claim is a lease ([`InboxSettings::push_lease_ms`]): the
//! marker says `pending` until the pusher confirms
//! ([`InboxStore::confirm_push`]) that FCM had the pushes, and then `sent`.
//! A notifier killed between the claim and the confirmation leaves a lease
//! that runs out, so the request, delivered again, pushes then: a push is
//! lost only if the lease outlives every redelivery, and sent twice only if
//! the pusher dies after FCM took it and before it confirmed.
//!
//! ## Known users
//!
//! Broadcasts to everyone reach every uid in the `users` sets: added with a
//! user's first notification or device, never removed (a user whose inbox
//! expired still has an account; a broadcast gives them an inbox again).

use redis::Script;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::StoreError;

/// Shards of the known-users set.
pub const USER_SHARDS: u8 = 16;

fn span(op: &'static str, uid: &str) -> tracing::Span {
    tracing::info_span!("redis", op, uid, db.system = "redis")
}

/// Where a user's notification keys live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxKeys {
    uid: String,
}

impl InboxKeys {
    pub fn new(uid: &str) -> Self {
        InboxKeys {
            uid: uid.to_owned(),
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{{nt:{}}}:{what}", self.uid)
    }

    pub fn ids(&self) -> String {
        self.key("ids")
    }

    pub fn bodies(&self) -> String {
        self.key("body")
    }

    pub fn unread(&self) -> String {
        self.key("unread")
    }

    pub fn devices(&self) -> String {
        self.key("dev")
    }

    pub fn platforms(&self) -> String {
        self.key("devp")
    }

    pub fn pushes(&self) -> String {
        self.key("push")
    }

    pub fn sent(&self, id: &str) -> String {
        self.key(&format!("sent:{id}"))
    }

    pub fn collapse(&self, collapse_key: &str) -> String {
        self.key(&format!("col:{collapse_key}"))
    }

    /// The known-users set this user is in.
    pub fn users(&self) -> String {
        users_key(Sha256::digest(self.uid.as_bytes())[0] % USER_SHARDS)
    }
}

fn users_key(shard: u8) -> String {
    format!("nt:{{ntu{shard:02}}}:users")
}

/// The key recording who registered `token`.
fn owner_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("nt:owner:{hex}")
}

/// The store's bounds and timings. The notifier passes the values of
/// `dashdice_proto::notify` (which the defaults mirror); tests shorten
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxSettings {
    /// Notifications an inbox keeps at most (the oldest go).
    pub cap: usize,
    /// How long a notification is kept after its creation.
    pub ttl_ms: u64,
    /// Devices a user has at most (the oldest registration goes).
    pub max_devices: usize,
    /// How long a device is kept after its last registration (FCM counts a
    /// token unused for 270 days as stale; apps register on every start).
    pub device_ttl_ms: u64,
    /// Pushes a user gets at most per [`Self::push_window_ms`].
    pub pushes_per_window: u32,
    pub push_window_ms: u64,
    /// At most one push per collapse key per user this long.
    pub collapse_ms: u64,
    /// How long a pushed notification is remembered, so a redelivered
    /// request does not push again (the notification stream keeps a
    /// request a day at most).
    pub sent_ttl_ms: u64,
    /// How long a granted, unconfirmed push holds its notification: longer
    /// than a push with all its retries takes, shorter than the stream's
    /// redelivery wait.
    pub push_lease_ms: u64,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            cap: 100,
            ttl_ms: 30 * 24 * 3600 * 1000,
            max_devices: 10,
            device_ttl_ms: 270 * 24 * 3600 * 1000,
            pushes_per_window: 10,
            push_window_ms: 60_000,
            collapse_ms: 60_000,
            sent_ttl_ms: 24 * 3600 * 1000,
            push_lease_ms: 60_000,
        }
    }
}

/// A notification to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotification<'a> {
    pub id: &'a str,
    pub created_ms: u64,
    /// The notification as the notifier encodes it; kept as is.
    pub json: &'a str,
}

/// What adding a notification did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Kept: new in the inbox.
    Stored,
    /// A notification with this id is there already; nothing changed.
    Duplicate,
    /// Too old to keep (created a ttl ago or more); nothing changed.
    Expired,
    /// Older than the cap's worth of newer ones: dropped at once.
    Dropped,
}

/// A notification as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredNotification {
    pub id: String,
    pub created_ms: u64,
    /// As given to [`InboxStore::add`].
    pub json: String,
    pub read: bool,
}

/// Where a page of an inbox starts: after the notification created at
/// `created_ms` with id `id`. As text, `<created ms>:<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxCursor {
    pub created_ms: u64,
    pub id: String,
}

impl InboxCursor {
    /// Reads a cursor's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (created, id) = text.split_once(':')?;
        if id.is_empty() || !created.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(InboxCursor {
            created_ms: created.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for InboxCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.created_ms, self.id)
    }
}

/// A page of an inbox, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    pub notifications: Vec<StoredNotification>,
    /// Unread notifications in the whole inbox.
    pub unread: u32,
    /// Where the next (older) page starts; `None` on the last.
    pub next: Option<InboxCursor>,
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub token: String,
    /// As registered (`web`, `android`, `ios`).
    pub platform: String,
    pub registered_ms: u64,
}

/// What registering a device did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registered {
    /// The user's devices now.
    pub devices: u32,
    /// The user who had the token before, if another.
    pub moved_from: Option<String>,
    /// The user's oldest tokens, dropped to stay within the cap.
    pub replaced: Vec<String>,
}

/// Whether a notification may be pushed ([`InboxStore::claim_push`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushClaim {
    Granted,
    /// It was pushed (or refused) before.
    Duplicate,
    /// A push with the same collapse key went out within the window.
    Collapsed,
    /// Another pusher holds the lease on it (or died holding it): ask
    /// again once the lease ran out.
    Pending,
    /// The user had their pushes this window.
    Limited,
}

impl PushClaim {
    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PushClaim::Granted => "granted",
            PushClaim::Duplicate => "duplicate",
            PushClaim::Collapsed => "collapsed",
            PushClaim::Pending => "pending",
            PushClaim::Limited => "limited",
        }
    }
}

/// `list.lua`'s reply: unread, more, then id, created, JSON, unread flag.
type ListReply = (u32, i64, Vec<(String, u64, String, i64)>);

/// Inboxes and devices in Redis: a connection (reconnecting) and the
/// scripts.
#[derive(Clone)]
pub struct InboxStore {
    conn: ConnectionManager,
    settings: InboxSettings,
    add: Script,
    list: Script,
    mark: Script,
    delete: Script,
    read_all: Script,
    unread: Script,
    register: Script,
    unregister: Script,
    disown: Script,
    push: Script,
}

const COMMON: &str = include_str!("inbox/common.lua");

impl InboxStore {
    /// Connects with the default settings (see [`Self::with_settings`]).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        let inbox = |own: &str| Script::new(&format!("{COMMON}{own}"));
        Ok(InboxStore {
            conn,
            settings: InboxSettings::default(),
            add: inbox(include_str!("inbox/add.lua")),
            list: inbox(include_str!("inbox/list.lua")),
            mark: inbox(include_str!("inbox/mark.lua")),
            delete: inbox(include_str!("inbox/delete.lua")),
            read_all: inbox(include_str!("inbox/read_all.lua")),
            unread: inbox(include_str!("inbox/unread.lua")),
            register: Script::new(include_str!("inbox/register.lua")),
            unregister: Script::new(include_str!("inbox/unregister.lua")),
            disown: Script::new(include_str!("inbox/disown.lua")),
            push: Script::new(include_str!("inbox/push.lua")),
        })
    }

    pub fn with_settings(mut self, settings: InboxSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> InboxSettings {
        self.settings
    }

    /// Notifications created at or before this have expired at `now_ms`.
    fn cutoff(&self, now_ms: u64) -> i64 {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let ttl = i64::try_from(self.settings.ttl_ms).unwrap_or(i64::MAX);
        now.saturating_sub(ttl)
    }

    /// A call of an inbox script on `uid`'s three inbox keys, the cutoff
    /// its first argument.
    fn inbox_call<'a>(
        &self,
        script: &'a Script,
        uid: &str,
        now_ms: u64,
    ) -> redis::ScriptInvocation<'a> {
        let keys = InboxKeys::new(uid);
        let mut call = script.prepare_invoke();
        call.key(keys.ids())
            .key(keys.bodies())
            .key(keys.unread())
            .arg(self.cutoff(now_ms));
        call
    }

    /// Keeps `n` in `uid`'s inbox unless its id is there already (see
    /// [`Added`]), and the unread count after.
    pub async fn add(
        &self,
        uid: &str,
        n: &NewNotification<'_>,
        now_ms: u64,
    ) -> Result<(Added, u32), StoreError> {
        let mut call = self.inbox_call(&self.add, uid, now_ms);
        call.arg(n.id)
            .arg(n.created_ms)
            .arg(n.json)
            .arg(self.settings.cap.max(1))
            .arg(self.settings.ttl_ms.max(1));
        let (status, unread): (String, u32) = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_add", uid))
            .await?;
        let added = match status.as_str() {
            "stored" => Added::Stored,
            "duplicate" => Added::Duplicate,
            "expired" => Added::Expired,
            _ => Added::Dropped,
        };
        if added == Added::Stored {
            self.know(uid).await?;
        }
        Ok((added, unread))
    }

    /// Up to `limit` notifications of `uid`'s, newest first, after
    /// `before` (or from the newest).
    pub async fn list(
        &self,
        uid: &str,
        before: Option<&InboxCursor>,
        limit: u32,
        now_ms: u64,
    ) -> Result<InboxPage, StoreError> {
        let mut call = self.inbox_call(&self.list, uid, now_ms);
        match before {
            Some(c) => call.arg(c.created_ms).arg(&c.id),
            None => call.arg("").arg(""),
        };
        call.arg(limit.max(1));
        let (unread, more, rows): ListReply = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_list", uid))
            .await?;
        let notifications: Vec<StoredNotification> = rows
            .into_iter()
            .filter(|(_, _, json, _)| !json.is_empty())
            .map(|(id, created_ms, json, unread)| StoredNotification {
                id,
                created_ms,
                json,
                read: unread == 0,
            })
            .collect();
        let next = (more == 1)
            .then(|| notifications.last())
            .flatten()
            .map(|last| InboxCursor {
                created_ms: last.created_ms,
                id: last.id.clone(),
            });
        Ok(InboxPage {
            notifications,
            unread,
            next,
        })
    }

    /// `uid`'s unread notifications.
    pub async fn unread(&self, uid: &str, now_ms: u64) -> Result<u32, StoreError> {
        Ok(self
            .inbox_call(&self.unread, uid, now_ms)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_unread", uid))
            .await?)
    }

    /// Marks `id` read: the unread count after, or `None` if `uid` has no
    /// notification `id`. Marking twice is fine.
    pub async fn mark_read(
        &self,
        uid: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<u32>, StoreError> {
        let mut call = self.inbox_call(&self.mark, uid, now_ms);
        call.arg(id);
        let (found, unread): (i64, u32) = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_mark", uid))
            .await?;
        Ok((found == 1).then_some(unread))
    }

    /// Marks every notification of `uid`'s read: the unread count after (0).
    pub async fn mark_all_read(&self, uid: &str, now_ms: u64) -> Result<u32, StoreError> {
        Ok(self
            .inbox_call(&self.read_all, uid, now_ms)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_read_all", uid))
            .await?)
    }

    /// Deletes `id`: the unread count after, or `None` if `uid` has no
    /// notification `id`.
    pub async fn delete(
        &self,
        uid: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<u32>, StoreError> {
        let mut call = self.inbox_call(&self.delete, uid, now_ms);
        call.arg(id);
        let (found, unread): (i64, u32) = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("inbox_delete", uid))
            .await?;
        Ok((found == 1).then_some(unread))
    }

    /// `uid`'s device `token` (on `platform`) gets pushes: added, or
    /// refreshed (it becomes the newest); taken from another user who had
    /// it; the oldest dropped past the cap.
    pub async fn register_device(
        &self,
        uid: &str,
        token: &str,
        platform: &str,
        now_ms: u64,
    ) -> Result<Registered, StoreError> {
        let ttl = self.settings.device_ttl_ms.max(1);
        let previous: Option<String> = redis::cmd("SET")
            .arg(owner_key(token))
            .arg(uid)
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .query_async(&mut self.conn.clone())
            .instrument(span("device_owner", uid))
            .await?;
        let moved_from = previous.filter(|p| p != uid);
        if let Some(previous) = &moved_from {
            let keys = InboxKeys::new(previous);
            let _: (i64, u32) = self
                .unregister
                .key(keys.devices())
                .key(keys.platforms())
                .arg(token)
                .invoke_async(&mut self.conn.clone())
                .instrument(span("device_move", previous))
                .await?;
        }
        let keys = InboxKeys::new(uid);
        let (devices, replaced): (u32, Vec<String>) = self
            .register
            .key(keys.devices())
            .key(keys.platforms())
            .arg(token)
            .arg(platform)
            .arg(now_ms)
            .arg(self.settings.max_devices.max(1))
            .arg(ttl)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("device_register", uid))
            .await?;
        for token in &replaced {
            self.disown(uid, token).await?;
        }
        self.know(uid).await?;
        Ok(Registered {
            devices,
            moved_from,
            replaced,
        })
    }

    /// `uid`'s device `token` gets no more pushes: whether it was theirs,
    /// and their devices now. An unknown token is fine.
    pub async fn unregister_device(
        &self,
        uid: &str,
        token: &str,
    ) -> Result<(bool, u32), StoreError> {
        let keys = InboxKeys::new(uid);
        let (removed, devices): (i64, u32) = self
            .unregister
            .key(keys.devices())
            .key(keys.platforms())
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("device_unregister", uid))
            .await?;
        if removed == 1 {
            self.disown(uid, token).await?;
        }
        Ok((removed == 1, devices))
    }

    /// `uid`'s devices, the most recently registered first.
    pub async fn devices(&self, uid: &str) -> Result<Vec<Device>, StoreError> {
        let keys = InboxKeys::new(uid);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREVRANGE")
            .arg(keys.devices())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("HGETALL")
            .arg(keys.platforms());
        let (tokens, platforms): (
            Vec<(String, u64)>,
            std::collections::HashMap<String, String>,
        ) = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("devices", uid))
            .await?;
        Ok(tokens
            .into_iter()
            .map(|(token, registered_ms)| Device {
                platform: platforms.get(&token).cloned().unwrap_or_default(),
                token,
                registered_ms,
            })
            .collect())
    }

    /// Whether `id` may be pushed to `uid` now (see [`PushClaim`]); a
    /// granted push with `collapse_key` holds back others with that key
    /// for [`InboxSettings::collapse_ms`].
    pub async fn claim_push(
        &self,
        uid: &str,
        id: &str,
        collapse_key: Option<&str>,
    ) -> Result<PushClaim, StoreError> {
        let keys = InboxKeys::new(uid);
        let s = &self.settings;
        let mut call = self.push.prepare_invoke();
        call.key(keys.pushes()).key(keys.sent(id));
        if let Some(collapse) = collapse_key {
            call.key(keys.collapse(collapse));
        }
        call.arg(s.pushes_per_window)
            .arg(s.push_window_ms.max(1))
            .arg(s.sent_ttl_ms.max(1))
            .arg(s.collapse_ms.max(1))
            .arg(s.push_lease_ms.max(1))
            .arg(id);
        let claim: String = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("push_claim", uid))
            .await?;
        Ok(match claim.as_str() {
            "granted" => PushClaim::Granted,
            "duplicate" => PushClaim::Duplicate,
            "collapsed" => PushClaim::Collapsed,
            "pending" => PushClaim::Pending,
            _ => PushClaim::Limited,
        })
    }

    /// The pushes of a granted claim were made (or given up): `id` is
    /// `sent`, never pushed again.
    pub async fn confirm_push(&self, uid: &str, id: &str) -> Result<(), StoreError> {
        let keys = InboxKeys::new(uid);
        let () = redis::cmd("SET")
            .arg(keys.sent(id))
            .arg("sent")
            .arg("PX")
            .arg(self.settings.sent_ttl_ms.max(1))
            .query_async(&mut self.conn.clone())
            .instrument(span("push_confirm", uid))
            .await?;
        Ok(())
    }

    /// Up to about `count` known users of shard `shard` (0..[`USER_SHARDS`])
    /// from `cursor` (0 to start), and the cursor to go on from (0: done).
    /// A user may come twice (a `SSCAN` while the set grows).
    pub async fn known_users(
        &self,
        shard: u8,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        Ok(redis::cmd("SSCAN")
            .arg(users_key(shard))
            .arg(cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.conn.clone())
            .instrument(span("known_users", ""))
            .await?)
    }

    /// Records `uid` among the known users.
    async fn know(&self, uid: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("SADD")
            .arg(InboxKeys::new(uid).users())
            .arg(uid)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Forgets that `uid` owns `token`, if they still do.
    async fn disown(&self, uid: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .disown
            .key(owner_key(token))
            .arg(uid)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
