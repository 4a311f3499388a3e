//! The rules, on the stores alone: what a notification request becomes
//! (kept or dropped, told to the user's sockets or not, pushed or not, to
//! which devices), and the inbox and device requests.
//!
//! For a [`NotifyRequest`], by the user's presence:
//!
//! - `your_turn`: only for a player away or offline (an online player sees
//!   the board); kept in the inbox and pushed, collapsed per match.
//! - every other kind: kept in the inbox, told to the user's sockets as
//!   [`Notice::Notification`] when newly kept (a redelivered request was
//!   told already), and pushed when they are away or offline.
//!
//! Pushing ([`Notifier::handle`]): no FCM configured → skipped; no devices
//! → nothing; else the store grants the push or not
//! ([`InboxStore::claim_push`]: once per notification, once per collapse
//! key a minute, at most [`PUSHES_PER_MINUTE`] per user a minute, in Redis
//! so every notifier agrees), and every device gets it. A device FCM calls
//! dead is forgotten; one FCM gave up on is logged and counted. A push is
//! at most once: a request redelivered after a crash mid-push pushes
//! nothing more.
//!
//! Nothing here touches NATS: the service passes a [`Sockets`] to tell.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use dashdice_proto::ErrorCode;
use dashdice_proto::clock::{self, SharedClock};
use dashdice_proto::ids::valid_id;
use dashdice_proto::notify::{
    Audience, Devices, INBOX_CAP, INBOX_TTL_MS, InboxDelete, InboxList, InboxMark, InboxPage,
    MAX_DEVICES, MAX_PAGE, Notification, NotificationKind, NotifyRequest, PUSHES_PER_MINUTE,
    Platform, RegisterDevice, Unread, UnregisterDevice, check_device_token, check_request,
};
use dashdice_proto::queue::Notice;
use dashdice_service::telemetry::names;
use dashdice_store::StoreError;
use dashdice_store::inbox::{
    Added, InboxCursor, InboxSettings, InboxStore, NewNotification, PushClaim, USER_SHARDS,
};
use dashdice_store::presence::{PresenceStore, Status};
use futures_util::StreamExt;

use crate::fcm::{Fcm, Push, PushOutcome};
use crate::templates::render;

/// A page's size when the request leaves it at 0.
pub const DEFAULT_PAGE: u32 = 20;
/// Users whose presence is read in one round trip (broadcast audiences).
const PRESENCE_BATCH: usize = 500;
/// Known users read per `SSCAN` (broadcasts to everyone).
const SCAN_BATCH: usize = 1_000;
/// Devices pushed to at once for one notification.
const DEVICES_IN_FLIGHT: usize = 4;

/// Where a user's open sockets are told things (the user's notice
/// subject, in the service).
pub trait Sockets: Send + Sync {
    fn tell(&self, uid: &str, notice: &Notice) -> impl Future<Output = ()> + Send;
}

/// Why a notification request was not handled.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request can never be handled (it fails the checks): dropped.
    #[error("the notification request is invalid: {0}")]
    Invalid(String),
    /// Redis failed: the request should come again later.
    #[error("the notification store failed: {0}")]
    Store(#[from] StoreError),
    /// Another notifier holds the push's lease (or died holding it): the
    /// request should come again once it ran out.
    #[error("another notifier is pushing this notification")]
    PushPending,
}

/// What became of a notification request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Newly kept (and told, and pushed as the rules say).
    Stored,
    /// Kept before (a redelivery): not told again; pushed only if it was
    /// not before.
    Duplicate,
    /// Too old to keep, or older than a full inbox: nothing done.
    Expired,
    /// A `your_turn` for a player who is online: nothing done.
    DroppedOnline,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Expired => "expired",
            Outcome::DroppedOnline => "dropped_online",
        }
    }
}

/// Why an inbox, device or broadcast request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadCursor(String),
    /// The notifier cannot do it now (stopping).
    #[error("{0}")]
    Unavailable(String),
    #[error("the notification store is unavailable: {0}")]
    Store(#[from] StoreError),
}

impl RequestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::BadRequest(_) => ErrorCode::BadRequest,
            RequestError::NotFound(_) => ErrorCode::NotFound,
            RequestError::BadCursor(_) => ErrorCode::BadCursor,
            RequestError::Unavailable(_) | RequestError::Store(_) => ErrorCode::Unavailable,
        }
    }
}

/// The notifier's stores and FCM client, shared by the consumer and the
/// endpoints.
#[derive(Clone)]
pub struct Notifier {
    inbox: InboxStore,
    presence: PresenceStore,
    fcm: Option<Arc<Fcm>>,
    clock: SharedClock,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("fcm", &self.fcm)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// The inbox with the limits of `dashdice_proto::notify`; without FCM
    /// (`None`: no key configured) nothing is pushed.
    pub fn new(inbox: InboxStore, presence: PresenceStore, fcm: Option<Fcm>) -> Self {
        let defaults = inbox.settings();
        let inbox = inbox.with_settings(InboxSettings {
            cap: INBOX_CAP,
            ttl_ms: INBOX_TTL_MS,
            max_devices: MAX_DEVICES,
            pushes_per_window: PUSHES_PER_MINUTE,
            push_window_ms: 60_000,
            collapse_ms: 60_000,
            ..defaults
        });
        Notifier {
            inbox,
            presence,
            fcm: fcm.map(Arc::new),
            clock: clock::system(),
        }
    }

    /// Reads time from `clock` (tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn inbox(&self) -> &InboxStore {
        &self.inbox
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Handles one notification request (see the module docs). An error
    /// is either for good ([`DeliveryError::Invalid`]) or passing
    /// ([`DeliveryError::Store`]: handling it again is safe).
    pub async fn handle<S: Sockets>(
        &self,
        request: &NotifyRequest,
        sockets: &S,
    ) -> Result<Outcome, DeliveryError> {
        check_request(request).map_err(DeliveryError::Invalid)?;
        let now = self.now_ms();
        let uid = request.uid.as_str();
        let present = self
            .presence
            .query(std::slice::from_ref(&request.uid))
            .await?
            .first()
            .map_or(Status::Offline, |p| p.status);
        let away = present != Status::Online;
        if request.kind == NotificationKind::YourTurn && !away {
            metrics::counter!(names::NOTIFY_YOUR_TURN_DROPPED).increment(1);
            return Ok(Outcome::DroppedOnline);
        }
        let rendered = render(request);
        // A request from the future (a skewed clock) is as of now, so it
        // neither sorts above newer ones for long nor outlives its ttl.
        let created_ms = match request.created_ms {
            0 => now,
            at => at.min(now),
        };
        let notification = Notification {
            id: request.id.clone(),
            kind: request.kind,
            title: rendered.title,
            body: rendered.body,
            data: request.data.clone(),
            created_ms,
            expires_ms: created_ms.saturating_add(INBOX_TTL_MS),
            read: false,
        };
        let json = serde_json::to_string(&notification)
            .map_err(|e| DeliveryError::Invalid(e.to_string()))?;
        let new = NewNotification {
            id: &notification.id,
            created_ms,
            json: &json,
        };
        let (added, _) = self.inbox.add(uid, &new, now).await?;
        let outcome = match added {
            Added::Stored => Outcome::Stored,
            Added::Duplicate => Outcome::Duplicate,
            Added::Expired | Added::Dropped => return Ok(Outcome::Expired),
        };
        if outcome == Outcome::Stored && request.kind != NotificationKind::YourTurn {
            sockets
                .tell(uid, &Notice::Notification(notification.clone()))
                .await;
        }
        if away {
            self.push(uid, &notification, rendered.collapse_key.as_deref())
                .await?;
        }
        Ok(outcome)
    }

    /// Pushes `n` to `uid`'s devices, if the store grants it.
    async fn push(
        &self,
        uid: &str,
        n: &Notification,
        collapse_key: Option<&str>,
    ) -> Result<(), DeliveryError> {
        let Some(fcm) = &self.fcm else {
            metrics::counter!(names::NOTIFY_PUSHES, "outcome" => "skipped").increment(1);
            return Ok(());
        };
        let devices = self.inbox.devices(uid).await?;
        if devices.is_empty() {
            metrics::counter!(names::NOTIFY_PUSHES, "outcome" => "no_devices").increment(1);
            return Ok(());
        }
        let claim = self.inbox.claim_push(uid, &n.id, collapse_key).await?;
        if claim == PushClaim::Pending {
            return Err(DeliveryError::PushPending);
        }
        if claim != PushClaim::Granted {
            metrics::counter!(names::NOTIFY_PUSHES, "outcome" => claim.as_str()).increment(1);
            return Ok(());
        }
        let mut data: BTreeMap<String, String> = n.data.clone();
        data.insert("id".to_owned(), n.id.clone());
        data.insert("kind".to_owned(), n.kind.as_str().to_owned());
        let pushes: Vec<Push> = devices
            .into_iter()
            .filter_map(|d| {
                Some(Push {
                    platform: platform(&d.platform)?,
                    token: d.token,
                    title: n.title.clone(),
                    body: n.body.clone(),
                    data: data.clone(),
                    collapse_key: collapse_key.map(str::to_owned),
                })
            })
            .collect();
        futures_util::stream::iter(pushes)
            .for_each_concurrent(DEVICES_IN_FLIGHT, |push| async move {
                let outcome = fcm.send(&push).await;
                self.pushed(uid, &push, outcome).await;
            })
            .await;
        self.inbox.confirm_push(uid, &n.id).await?;
        Ok(())
    }

    /// Counts a push to one device and acts on its outcome.
    async fn pushed(&self, uid: &str, push: &Push, outcome: PushOutcome) {
        match outcome {
            PushOutcome::Sent { .. } => {
                metrics::counter!(names::NOTIFY_PUSHES, "outcome" => "sent").increment(1);
            }
            PushOutcome::Unregistered => {
                metrics::counter!(names::NOTIFY_PUSHES, "outcome" => "unregistered").increment(1);
                match self.inbox.unregister_device(uid, &push.token).await {
                    Ok((true, _)) => {
                        metrics::counter!(names::NOTIFY_TOKENS_REMOVED).increment(1);
                    }
                    Ok((false, _)) => {}
                    // It stays until the next push finds it dead again.
                    Err(e) => {
                        tracing::warn!(uid, error = %e, "could not forget a dead device token")
                    }
                }
            }
            PushOutcome::GaveUp { reason, attempts } => {
                metrics::counter!(names::NOTIFY_PUSHES, "outcome" => "gave_up").increment(1);
                tracing::warn!(uid, %reason, attempts, "a push was given up");
            }
        }
    }

    /// A page of `r.uid`'s inbox.
    pub async fn list(&self, r: &InboxList) -> Result<InboxPage, RequestError> {
        check_uid(&r.uid)?;
        let limit = match r.limit {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(RequestError::BadRequest(format!(
                    "limit is at most {MAX_PAGE}, got {n}"
                )));
            }
            n => n,
        };
        let before = match r.before.as_deref() {
            None => None,
            Some(text) => Some(InboxCursor::parse(text).ok_or_else(|| {
                RequestError::BadCursor(format!(
                    "{text:?} is not a cursor of this inbox; pass a page's next, or none for the newest page"
                ))
            })?),
        };
        let page = self
            .inbox
            .list(&r.uid, before.as_ref(), limit, self.now_ms())
            .await?;
        let notifications = page
            .notifications
            .into_iter()
            .filter_map(|stored| {
                match serde_json::from_str::<Notification>(&stored.json) {
                    Ok(mut n) => {
                        n.read = stored.read;
                        Some(n)
                    }
                    Err(e) => {
                        tracing::warn!(uid = %r.uid, id = %stored.id, error = %e, "an unreadable notification in an inbox; skipped");
                        None
                    }
                }
            })
            .collect();
        Ok(InboxPage {
            notifications,
            unread: page.unread,
            next: page.next.map(|c| c.to_string()),
        })
    }

    pub async fn unread(&self, uid: &str) -> Result<Unread, RequestError> {
        check_uid(uid)?;
        let unread = self.inbox.unread(uid, self.now_ms()).await?;
        Ok(Unread { unread })
    }

    pub async fn mark_read(&self, r: &InboxMark) -> Result<Unread, RequestError> {
        check_uid(&r.uid)?;
        check_id(&r.id)?;
        let unread = self.inbox.mark_read(&r.uid, &r.id, self.now_ms()).await?;
        unread
            .map(|unread| Unread { unread })
            .ok_or_else(|| not_found(&r.id))
    }

    pub async fn mark_all_read(&self, uid: &str) -> Result<Unread, RequestError> {
        check_uid(uid)?;
        let unread = self.inbox.mark_all_read(uid, self.now_ms()).await?;
        Ok(Unread { unread })
    }

    pub async fn delete(&self, r: &InboxDelete) -> Result<Unread, RequestError> {
        check_uid(&r.uid)?;
        check_id(&r.id)?;
        let unread = self.inbox.delete(&r.uid, &r.id, self.now_ms()).await?;
        unread
            .map(|unread| Unread { unread })
            .ok_or_else(|| not_found(&r.id))
    }

    pub async fn register_device(&self, r: &RegisterDevice) -> Result<Devices, RequestError> {
        check_uid(&r.uid)?;
        check_device_token(&r.token).map_err(RequestError::BadRequest)?;
        let registered = self
            .inbox
            .register_device(&r.uid, &r.token, platform_name(r.platform), self.now_ms())
            .await?;
        if let Some(from) = &registered.moved_from {
            tracing::info!(uid = %r.uid, from = %from, "a device token moved to another user");
        }
        Ok(Devices {
            devices: registered.devices,
        })
    }

    pub async fn unregister_device(&self, r: &UnregisterDevice) -> Result<Devices, RequestError> {
        check_uid(&r.uid)?;
        check_device_token(&r.token).map_err(RequestError::BadRequest)?;
        let (_, devices) = self.inbox.unregister_device(&r.uid, &r.token).await?;
        Ok(Devices { devices })
    }

    /// The uids a broadcast to `audience` reaches, each once, sorted.
    pub async fn audience(&self, audience: &Audience) -> Result<Vec<String>, RequestError> {
        let mut users = std::collections::BTreeSet::new();
        match audience {
            Audience::All => {
                for shard in 0..USER_SHARDS {
                    let mut cursor = 0;
                    loop {
                        let (next, uids) =
                            self.inbox.known_users(shard, cursor, SCAN_BATCH).await?;
                        users.extend(uids);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
            Audience::Online | Audience::Region { .. } => {
                if let Audience::Region { region } = audience
                    && region.is_empty()
                {
                    return Err(RequestError::BadRequest("a region is required".to_owned()));
                }
                let connected = self.presence.connected_users().await?;
                for batch in connected.chunks(PRESENCE_BATCH) {
                    for p in self.presence.query(batch).await? {
                        let reached = p.status != Status::Offline
                            && match audience {
                                Audience::Region { region } => {
                                    p.region.as_deref() == Some(region.as_str())
                                }
                                _ => true,
                            };
                        if reached {
                            users.insert(p.uid);
                        }
                    }
                }
            }
        }
        Ok(users.into_iter().collect())
    }
}

fn check_uid(uid: &str) -> Result<(), RequestError> {
    if valid_id(uid) {
        Ok(())
    } else {
        Err(RequestError::BadRequest(
            "a uid is 1 to 128 letters, digits, - or _".to_owned(),
        ))
    }
}

fn check_id(id: &str) -> Result<(), RequestError> {
    if id.is_empty() || id.len() > 200 || id.contains(char::is_whitespace) {
        return Err(RequestError::BadRequest(
            "a notification id is 1 to 200 bytes without spaces".to_owned(),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> RequestError {
    RequestError::NotFound(format!(
        "no notification {id:?} in this inbox (deleted, or expired)"
    ))
}

/// A platform as the store keeps it (its wire name).
fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Web => "web",
        Platform::Android => "android",
        Platform::Ios => "ios",
    }
}

fn platform(name: &str) -> Option<Platform> {
    match name {
        "web" => Some(Platform::Web),
        "android" => Some(Platform::Android),
        "ios" => Some(Platform::Ios),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_stored_by_their_wire_names() {
        for p in [Platform::Web, Platform::Android, Platform::Ios] {
            let wire = serde_json::to_string(&p).expect("json");
            assert_eq!(wire, format!("\"{}\"", platform_name(p)));
            assert_eq!(platform(platform_name(p)), Some(p));
        }
        assert_eq!(platform("fax"), None);
    }
}
