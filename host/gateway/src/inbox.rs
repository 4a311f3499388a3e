//! The player's side of notifications: their inbox and their devices, as
//! REST routes and WebSocket messages, checked here before the notifier
//! (`dd.notify.*`, through [`super::backend`]) is asked.
//!
//! ```text
//!   GET    /api/v1/notifications?before=C&limit=N   `notifications` {before?, limit?}   → InboxPage
//!   GET    /api/v1/notifications/unread             `unread`                            → {"unread": n}
//!   POST   /api/v1/notifications/{id}/read          `notification_read` {notification_id}
//!   POST   /api/v1/notifications/read-all           `notifications_read_all`
//!   DELETE /api/v1/notifications/{id}               `notification_delete` {notification_id}
//!   POST   /api/v1/users/me/devices {token, platform}  `register_device`   → {"devices": n}
//!   DELETE /api/v1/users/me/devices {token}            `unregister_device` → {"devices": n}
//! ```
//!
//! The user is always the token's: no route or message names one, so nobody
//! reads or changes another user's inbox or devices. New notifications and
//! unread counts are pushed by the notifier on the user's notice subject,
//! which every session already forwards (`notification`, `inbox_changed`).
//!
//! On the WebSocket a notification is named by `notification_id`, since
//! `id` is every message's own correlation id.

use serde::Deserialize;

use super::error::ApiError;
use dashdice_proto::notify::{
    self, InboxDelete, InboxList, InboxMark, MAX_PAGE, Platform, RegisterDevice, UnregisterDevice,
};

/// The page size the notifier uses when none is asked for.
pub const DEFAULT_INBOX_PAGE: u32 = 20;
/// The longest notification id, in bytes (as [`notify::check_request`]
/// allows).
pub const MAX_NOTIFICATION_ID: usize = 200;
/// The longest inbox cursor, in bytes: cursors are the notifier's own, and
/// short; anything longer was not made by it.
pub const MAX_CURSOR: usize = 512;

/// `GET /api/v1/notifications?before=C&limit=N`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
}

impl InboxQuery {
    /// The notifier's request for a page of `uid`'s inbox.
    pub fn request(self, uid: &str) -> Result<InboxList, ApiError> {
        let limit = parse_inbox_limit(self.limit.as_deref())?;
        list_request(uid, self.before, limit)
    }
}

/// `POST /api/v1/users/me/devices`: `{"token": "...", "platform": "web"}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFields {
    pub token: String,
    pub platform: String,
}

/// `DELETE /api/v1/users/me/devices`: `{"token": "..."}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenFields {
    pub token: String,
}

fn bad_limit(got: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "`limit` is a whole number from 1 to {MAX_PAGE} (default {DEFAULT_INBOX_PAGE}); got {got}"
    ))
}

/// An inbox page size as asked: none (the default, sent as 0) or 1 to
/// [`MAX_PAGE`].
pub fn inbox_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(0),
        Some(n) if n == 0 || n > MAX_PAGE => Err(bad_limit(n)),
        Some(n) => Ok(n),
    }
}

/// An inbox page size from a query string (`?limit=20`).
pub fn parse_inbox_limit(text: Option<&str>) -> Result<Option<u32>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(n) => inbox_limit(Some(n)).map(Some),
            Err(_) => Err(bad_limit(format_args!("{text:?}"))),
        },
    }
}

/// A page of `uid`'s inbox, newest first, older than `before` (a page's
/// `next`).
pub fn list_request(
    uid: &str,
    before: Option<String>,
    limit: Option<u32>,
) -> Result<InboxList, ApiError> {
    if let Some(cursor) = &before
        && (cursor.is_empty() || cursor.len() > MAX_CURSOR)
    {
        return Err(ApiError::bad_request(format!(
            "`before` is a page's `next` (1 to {MAX_CURSOR} bytes), or absent for the newest page"
        )));
    }
    Ok(InboxList {
        uid: uid.to_owned(),
        before,
        limit: inbox_limit(limit)?,
    })
}

/// A notification id as a client names it: 1 to [`MAX_NOTIFICATION_ID`]
/// bytes, no spaces (the ids the notifier gives).
pub fn notification_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_NOTIFICATION_ID || id.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(format!(
            "a notification id is 1 to {MAX_NOTIFICATION_ID} bytes without spaces (a notification's `id`)"
        )));
    }
    Ok(())
}

/// Marks `uid`'s notification `id` read.
pub fn mark_request(uid: &str, id: String) -> Result<InboxMark, ApiError> {
    notification_id(&id)?;
    Ok(InboxMark {
        uid: uid.to_owned(),
        id,
    })
}

/// Deletes `uid`'s notification `id`.
pub fn delete_request(uid: &str, id: String) -> Result<InboxDelete, ApiError> {
    notification_id(&id)?;
    Ok(InboxDelete {
        uid: uid.to_owned(),
        id,
    })
}

/// The platform a client names: `web`, `android` or `ios`.
pub fn platform(name: &str) -> Result<Platform, ApiError> {
    match name {
        "web" => Ok(Platform::Web),
        "android" => Ok(Platform::Android),
        "ios" => Ok(Platform::Ios),
        other => Err(ApiError::bad_request(format!(
            "{other:?} is not a platform: web, android or ios"
        ))),
    }
}

fn device_token(token: &str) -> Result<(), ApiError> {
    notify::check_device_token(token).map_err(ApiError::bad_request)
}

/// `uid`'s device (an FCM registration token) gets pushes.
pub fn register_request(
    uid: &str,
    token: String,
    platform_name: &str,
) -> Result<RegisterDevice, ApiError> {
    device_token(&token)?;
    Ok(RegisterDevice {
        uid: uid.to_owned(),
        platform: platform(platform_name)?,
        token,
    })
}

/// `uid`'s device gets no more pushes.
pub fn unregister_request(uid: &str, token: String) -> Result<UnregisterDevice, ApiError> {
    device_token(&token)?;
    Ok(UnregisterDevice {
        uid: uid.to_owned(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_proto::ErrorCode;

    fn query(uri: &str) -> Result<InboxList, ApiError> {
        let uri: axum::http::Uri = uri.parse().expect("uri");
        axum::extract::Query::<InboxQuery>::try_from_uri(&uri)
            .map_err(ApiError::from)
            .and_then(|q| q.0.request("alice"))
    }

    #[test]
    fn inbox_queries_are_read_and_checked() {
        let request = query("/notifications?before=c1&limit=5").expect("valid");
        assert_eq!(
            request,
            InboxList {
                uid: "alice".into(),
                before: Some("c1".into()),
                limit: 5
            }
        );
        let request = query("/notifications").expect("valid");
        assert_eq!((request.before, request.limit), (None, 0), "the default");
        assert_eq!(query("/notifications?limit=50").expect("valid").limit, 50);
        for uri in [
            "/notifications?limit=0",
            "/notifications?limit=51",
            "/notifications?limit=-1",
            "/notifications?limit=ten",
            "/notifications?uid=bob",
            "/notifications?before=",
        ] {
            let e = query(uri).expect_err(uri);
            assert_eq!(e.code, ErrorCode::BadRequest, "{uri}");
        }
        let e = query("/notifications?limit=99").expect_err("too many");
        assert!(
            e.message.contains("`limit` is a whole number from 1 to 50"),
            "{}",
            e.message
        );
        let long = format!("/notifications?before={}", "c".repeat(MAX_CURSOR + 1));
        assert_eq!(query(&long).expect_err("long").code, ErrorCode::BadRequest);
    }

    #[test]
    fn notification_ids_are_checked() {
        assert!(mark_request("alice", "friend_request:bob:1".into()).is_ok());
        assert!(delete_request("alice", "x".repeat(MAX_NOTIFICATION_ID)).is_ok());
        for bad in [
            String::new(),
            "a b".into(),
            "x".repeat(MAX_NOTIFICATION_ID + 1),
        ] {
            let e = mark_request("alice", bad.clone()).expect_err("refused");
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.message.contains("notification id"), "{}", e.message);
            assert!(delete_request("alice", bad).is_err());
        }
    }

    #[test]
    fn devices_are_checked_before_the_notifier_is_asked() {
        let request =
            register_request("alice", "fcm-Token_1:APA91b".into(), "android").expect("valid");
        assert_eq!(request.platform, Platform::Android);
        assert_eq!(request.uid, "alice");
        for (token, platform) in [
            ("", "web"),
            ("has space", "web"),
            ("ok", "windows"),
            ("ok", "Web"),
        ] {
            let e = register_request("alice", token.into(), platform).expect_err(token);
            assert_eq!(e.code, ErrorCode::BadRequest, "{token} {platform}");
        }
        let e = register_request("alice", "ok".into(), "windows").expect_err("platform");
        assert!(e.message.contains("web, android or ios"), "{}", e.message);
        let e = unregister_request("alice", "x".repeat(notify::MAX_DEVICE_TOKEN + 1))
            .expect_err("long");
        assert!(e.message.contains("device token"), "{}", e.message);
        assert!(unregister_request("alice", "tok".into()).is_ok());
    }
}
