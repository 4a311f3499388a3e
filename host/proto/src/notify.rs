//! Notifications: what a player is told when they may not be looking.
//!
//! A role that has something to tell a player (a friend request, a direct
//! invite, a rematch offer, their turn, a match result) publishes a
//! [`NotifyRequest`] on the JetStream stream [`crate::bus::NOTIFY_STREAM`]
//! (through [`crate::client::Notifications`]) and moves on. The notifier
//! role reads the stream, renders the request's title and body from the
//! kind's template, keeps it in the user's inbox, hands it to the user's
//! open sockets as [`crate::queue::Notice::Notification`], and pushes it to
//! their registered devices (FCM) when they are away or offline. Nobody
//! else calls FCM, and no request path waits on a push.
//!
//! The inbox is read and changed over the notifier's endpoints
//! (`dd.notify.*`): [`InboxList`], [`InboxUnread`], [`InboxMark`],
//! [`InboxMarkAll`], [`InboxDelete`]; devices with [`RegisterDevice`] and
//! [`UnregisterDevice`]; operators send a [`Broadcast`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Notifications a user's inbox keeps at most; a new one past it drops the
/// oldest.
pub const INBOX_CAP: usize = 100;
/// How long a notification stays in an inbox (30 days).
pub const INBOX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// The longest title, in characters (a broadcast's, or a rendered one).
pub const MAX_TITLE: usize = 80;
/// The longest body, in characters.
pub const MAX_BODY: usize = 500;
/// The most `data` entries a notification carries.
pub const MAX_DATA_ENTRIES: usize = 16;
/// The longest `data` key or value, in bytes.
pub const MAX_DATA_VALUE: usize = 256;
/// The most devices a user registers; one more replaces the oldest.
pub const MAX_DEVICES: usize = 10;
/// The longest device token, in bytes (FCM registration tokens are ~160).
pub const MAX_DEVICE_TOKEN: usize = 4096;
/// A page of the inbox holds at most this many.
pub const MAX_PAGE: u32 = 50;
/// Pushes a user receives at most per minute (collapsed ones count once).
pub const PUSHES_PER_MINUTE: u32 = 10;

/// What a notification is about. Each has a template (title and body) in
/// the notifier, and the `data` it carries names what to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// data: `from` (uid), `from_name` (optional).
    FriendRequest,
    /// data: `by` (uid), `by_name` (optional).
    FriendAccepted,
    /// data: `from`, `code`, `mode`, `expires_ms`.
    MatchInvite,
    /// data: `from`, `match_id`, `expires_ms`.
    RematchOffer,
    /// Only pushed when the player is away or offline; collapsed per
    /// match. data: `match_id`, `mode`, `opponent`.
    YourTurn,
    /// data: `match_id`, `mode`, `outcome` (`won`, `lost`, `draw`, `void`),
    /// `score` (optional).
    MatchResult,
    /// An operator's message: the title and body are the broadcast's own.
    Broadcast,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 7] = [
        NotificationKind::FriendRequest,
        NotificationKind::FriendAccepted,
        NotificationKind::MatchInvite,
        NotificationKind::RematchOffer,
        NotificationKind::YourTurn,
        NotificationKind::MatchResult,
        NotificationKind::Broadcast,
    ];

    /// The wire name (`friend_request`, ...), also the subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::FriendRequest => "friend_request",
            NotificationKind::FriendAccepted => "friend_accepted",
            NotificationKind::MatchInvite => "match_invite",
            NotificationKind::RematchOffer => "rematch_offer",
            NotificationKind::YourTurn => "your_turn",
            NotificationKind::MatchResult => "match_result",
            NotificationKind::Broadcast => "broadcast",
        }
    }
}

/// A request to notify one user, on the stream (JSON; the JetStream message
/// id is `id`, so a request published twice within the stream's duplicate
/// window is stored once, and the inbox keeps one notification per id).
///
/// ```json
/// {"id":"ntf-…","uid":"u1","kind":"friend_request","data":{"from":"u2"},"created_ms":1800000000000}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyRequest {
    /// Unique per notification; the same event always makes the same id
    /// (for example `your_turn:<match>:<seq>`), so retries are harmless.
    pub id: String,
    pub uid: String,
    pub kind: NotificationKind,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    pub created_ms: u64,
    /// A broadcast's own title and body (ignored for other kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl NotifyRequest {
    /// A request of `kind` with `data` as key/value pairs (no title or body
    /// of its own: those are a broadcast's).
    pub fn new<K: Into<String>, V: Into<String>>(
        id: impl Into<String>,
        uid: impl Into<String>,
        kind: NotificationKind,
        data: impl IntoIterator<Item = (K, V)>,
        created_ms: u64,
    ) -> Self {
        NotifyRequest {
            id: id.into(),
            uid: uid.into(),
            kind,
            data: data
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            created_ms,
            title: None,
            body: None,
        }
    }
}

/// A notification as the inbox keeps it and a player sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    pub created_ms: u64,
    pub expires_ms: u64,
    #[serde(default)]
    pub read: bool,
}

/// A page of a user's inbox, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    pub notifications: Vec<Notification>,
    /// Unread notifications in the whole inbox.
    pub unread: u32,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `dd.notify.inbox.list`: a page of `uid`'s inbox → [`InboxPage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxList {
    pub uid: String,
    /// A cursor from [`InboxPage::next`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// 1..=[`MAX_PAGE`]; 0 means the default (20).
    #[serde(default)]
    pub limit: u32,
}

/// `dd.notify.inbox.unread`: `uid`'s unread count → [`Unread`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxUnread {
    pub uid: String,
}

/// `dd.notify.inbox.read`: marks one notification read → [`Unread`];
/// `not_found` if `uid` has no notification `id`. Marking twice is fine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMark {
    pub uid: String,
    pub id: String,
}

/// `dd.notify.inbox.read_all`: marks every notification read → [`Unread`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMarkAll {
    pub uid: String,
}

/// `dd.notify.inbox.delete`: deletes one notification → [`Unread`];
/// `not_found` if `uid` has no notification `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxDelete {
    pub uid: String,
    pub id: String,
}

/// The unread count after a read or a change; also told to the user's
/// sockets as [`crate::queue::Notice::InboxChanged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unread {
    pub unread: u32,
}

/// Where a device gets its pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Web,
    Android,
    Ios,
}

/// `dd.notify.devices.register`: `uid`'s device (an FCM registration token)
/// gets pushes → [`Devices`]. Registering again refreshes it; a token
/// registered by another user moves to this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterDevice {
    pub uid: String,
    pub token: String,
    pub platform: Platform,
}

/// `dd.notify.devices.unregister`: `uid`'s device gets no more pushes →
/// [`Devices`]. An unknown token is fine (idempotent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterDevice {
    pub uid: String,
    pub token: String,
}

/// How many devices the user has registered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Devices {
    pub devices: u32,
}

/// Who a broadcast reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Audience {
    /// Every user the notifier knows (an inbox or a device).
    All,
    /// Users online or away now.
    Online,
    /// Users online or away now whose first connection is in `region`.
    Region { region: String },
}

/// `dd.notify.broadcast` (operators only: the NATS permissions give this
/// subject to the ops user alone): `title` and `body` to `audience`, each
/// user notified as with a [`NotifyRequest`] of kind `broadcast` (inbox,
/// socket, push), paced by the notifier's broadcast rate → [`Broadcasted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Sending the same id again reaches nobody twice.
    pub id: String,
    pub audience: Audience,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// How many users a broadcast was queued for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcasted {
    pub users: u64,
}

/// Why a notification request, a device or a broadcast is refused: the
/// checks every role applies before sending and the notifier applies again
/// on receipt. The message says which limit.
pub fn check_request(request: &NotifyRequest) -> Result<(), String> {
    if !crate::ids::valid_id(&request.uid) {
        return Err("a uid is 1 to 128 letters, digits, - or _".to_owned());
    }
    if request.id.is_empty() || request.id.len() > 200 || request.id.contains(char::is_whitespace) {
        return Err("a notification id is 1 to 200 bytes without spaces".to_owned());
    }
    check_data(&request.data)?;
    if request.kind == NotificationKind::Broadcast {
        check_text(
            request.title.as_deref().unwrap_or(""),
            request.body.as_deref().unwrap_or(""),
        )?;
    }
    Ok(())
}

/// A title and body within [`MAX_TITLE`] and [`MAX_BODY`], the title not
/// empty.
pub fn check_text(title: &str, body: &str) -> Result<(), String> {
    if title.trim().is_empty() {
        return Err("a title is required".to_owned());
    }
    if title.chars().count() > MAX_TITLE {
        return Err(format!("a title is at most {MAX_TITLE} characters"));
    }
    if body.chars().count() > MAX_BODY {
        return Err(format!("a body is at most {MAX_BODY} characters"));
    }
    Ok(())
}

/// At most [`MAX_DATA_ENTRIES`] entries of at most [`MAX_DATA_VALUE`] bytes.
pub fn check_data(data: &BTreeMap<String, String>) -> Result<(), String> {
    if data.len() > MAX_DATA_ENTRIES {
        return Err(format!("data has at most {MAX_DATA_ENTRIES} entries"));
    }
    if data
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > MAX_DATA_VALUE || v.len() > MAX_DATA_VALUE)
    {
        return Err(format!(
            "data keys are 1 to {MAX_DATA_VALUE} bytes and values at most {MAX_DATA_VALUE}"
        ));
    }
    Ok(())
}

/// A device token FCM could have issued: 1..=[`MAX_DEVICE_TOKEN`] bytes of
/// `[A-Za-z0-9_:-]` (FCM tokens are URL-safe base64 with a `:`).
pub fn check_device_token(token: &str) -> Result<(), String> {
    if token.is_empty() || token.len() > MAX_DEVICE_TOKEN {
        return Err(format!("a device token is 1 to {MAX_DEVICE_TOKEN} bytes"));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
    {
        return Err("a device token holds only letters, digits and _ - : .".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_themselves_as_they_serialize() {
        for kind in NotificationKind::ALL {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn device_tokens_are_checked() {
        assert!(check_device_token("fcm-Token_1:APA91b").is_ok());
        assert!(check_device_token("").is_err());
        assert!(check_device_token("has space").is_err());
        assert!(check_device_token(&"a".repeat(MAX_DEVICE_TOKEN + 1)).is_err());
    }

    #[test]
    fn broadcasts_need_a_title_within_limits() {
        let mut r = NotifyRequest {
            id: "b1".into(),
            uid: "u1".into(),
            kind: NotificationKind::Broadcast,
            data: BTreeMap::new(),
            created_ms: 1,
            title: None,
            body: None,
        };
        assert!(check_request(&r).is_err());
        r.title = Some("Maintenance".into());
        r.body = Some("x".repeat(MAX_BODY + 1));
        assert!(check_request(&r).is_err());
        r.body = Some("Tonight at 22:00".into());
        assert!(check_request(&r).is_ok());
    }
}
