//! The REST routes under `/api/v1` (listed in PROTOCOL.md): small handlers
//! over typed extractors, each one backend call.

use dashdice_proto::ErrorCode;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum_extra::TypedHeader;
use axum_extra::extract::WithRejection;
use axum_extra::headers::Authorization;
use axum_extra::headers::authorization::Bearer;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Gateway;
use super::auth::GuestToken;
use super::error::ApiError;
use super::inbox::{self, DeviceFields, DeviceTokenFields, InboxQuery};
use super::listen::ConnectionTag;
use super::protocol::{
    ActFields, CodeFields, DirectInviteFields, FriendReply, FriendsReply, HistoryQuery,
    InviteFields, JoinFields, LeaderboardQuery, MatchAnswer, ModesReply, PresenceParams,
    PresencesReply, RenameFields, fresh_request_id, player_action, player_named, renaming_self,
};
use super::social;
use dashdice_proto::archive::{HistoryPage, Leaderboard, Profile};
use dashdice_proto::matches::{ActRequest, ActionReply, SequencedEvent};
use dashdice_proto::notify::{Devices, InboxPage, Unread};
use dashdice_proto::presence::Lobby;
use dashdice_proto::queue::{
    CreateInviteRequest, Invite, JoinInviteRequest, RematchRequest, RematchStatus, Status,
};

type Gw = State<Arc<Gateway>>;
/// A query string whose rejections are [`ApiError`]s (`bad_request`).
type Params<T> = WithRejection<Query<T>, ApiError>;
/// Path segments whose rejections (bad percent-encoding, not UTF-8) are
/// [`ApiError`]s (`bad_request`).
type Segments<T> = WithRejection<Path<T>, ApiError>;

/// A JSON body that is one object with exactly `T`'s fields: an array, a
/// string, a number or a stray field is `malformed_json`, a missing
/// `Content-Type: application/json` is `bad_request`, an oversized body
/// `too_large`. Every REST body is read through it.
pub struct Object<T>(pub T);

impl<S, T> FromRequest<S> for Object<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(request, state).await?;
        super::protocol::read_object(value).map(Object)
    }
}

/// The signed-in user, from a verified bearer token, within their rate.
pub struct User(pub String);

impl<S> FromRequestParts<S> for User
where
    Arc<Gateway>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let gateway = Arc::<Gateway>::from_ref(state);
        let TypedHeader(Authorization(bearer)) =
            TypedHeader::<Authorization<Bearer>>::from_request_parts(parts, state)
                .await
                .map_err(|_| {
                    ApiError::unauthorized("sign in: send `Authorization: Bearer <token>`")
                })?;
        let user = gateway.auth.verify(bearer.token()).await?;
        if let Some(tag) = parts.extensions.get::<ConnectionTag>() {
            tag.verified();
        }
        gateway.rates.check_user(&user)?;
        Ok(User(user))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge, rejection.body_text())
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    }
}

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when NATS is connected and Redis answers.
pub async fn ready(State(gateway): Gw) -> Response {
    let nats = gateway.backend.connected();
    let redis = match gateway.redis.clone() {
        None => true,
        Some(redis) => redis.answers(std::time::Duration::from_secs(2)).await,
    };
    let ready = nats && redis;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "nats": nats,
        "redis": redis,
    });
    (status, Json(body)).into_response()
}

pub async fn metrics(State(gateway): Gw) -> Response {
    match &gateway.metrics {
        Some(handle) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are not recorded in this process").into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is under /api/v1 (see PROTOCOL.md)")
}

/// A route asked with a method it does not take (the `Allow` header, which
/// axum adds, lists those it does).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {}; `Allow` lists the methods it takes",
            uri.path()
        ),
    )
}

pub async fn guest(State(gateway): Gw) -> Result<Json<GuestToken>, ApiError> {
    gateway.auth.guest().map(Json)
}

/// `GET /modes`: the modes players can queue for now, with their actions.
/// Public: the lobby shows them before sign-in.
pub async fn modes(State(gateway): Gw) -> Json<ModesReply> {
    Json(ModesReply {
        modes: gateway.modes.playable(),
    })
}

pub async fn me(User(user): User) -> Json<serde_json::Value> {
    Json(json!({ "user_id": user }))
}

pub async fn join(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<JoinFields>,
) -> Result<Json<Status>, ApiError> {
    let request = fields.request(&user, &gateway.config.default_region);
    gateway.backend.join(&request).await.map(Json)
}

pub async fn leave(State(gateway): Gw, User(user): User) -> Result<Json<Status>, ApiError> {
    gateway.backend.leave(&user).await.map(Json)
}

pub async fn status(State(gateway): Gw, User(user): User) -> Result<Json<Status>, ApiError> {
    gateway.backend.status(&user).await.map(Json)
}

pub async fn create_invite(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<InviteFields>,
) -> Result<(StatusCode, Json<Invite>), ApiError> {
    let request = CreateInviteRequest {
        player: user,
        mode: fields.mode,
    };
    let invite = gateway.backend.create_invite(&request).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

pub async fn join_code(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<CodeFields>,
) -> Result<Json<Status>, ApiError> {
    let request = JoinInviteRequest {
        player: user,
        code: fields.code,
    };
    gateway.backend.join_invite(&request).await.map(Json)
}

/// `GET /matches/{id}`: the match while its host has it; after that, as the
/// archive keeps it (with `"archived": true`).
pub async fn get_match(
    State(gateway): Gw,
    _: User,
    WithRejection(Path(match_id), _): Segments<String>,
) -> Result<Json<MatchAnswer>, ApiError> {
    gateway.backend.live_or_archived(&match_id).await.map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    #[serde(default)]
    since: u64,
}

pub async fn events(
    State(gateway): Gw,
    _: User,
    WithRejection(Path(match_id), _): Segments<String>,
    WithRejection(Query(since), _): Params<Since>,
) -> Result<Json<Vec<SequencedEvent>>, ApiError> {
    gateway
        .backend
        .events(&match_id, since.since)
        .await
        .map(Json)
}

pub async fn rematch(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(match_id), _): Segments<String>,
) -> Result<Json<RematchStatus>, ApiError> {
    let request = RematchRequest {
        player: user,
        match_id,
    };
    gateway.backend.rematch(&request).await.map(Json)
}

/// `POST /matches/{id}/{action}`: roll, bank, forfeit, or a designer mode's
/// `custom` action (its `name` and `payload` in the body). The request id is
/// the body's `request_id`, else the `Idempotency-Key` header, else a fresh
/// one.
pub async fn act(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path((match_id, action)), _): Segments<(String, String)>,
    headers: HeaderMap,
    WithRejection(body, _): WithRejection<Bytes, ApiError>,
) -> Result<Json<ActionReply>, ApiError> {
    let fields: ActFields = if body.iter().all(u8::is_ascii_whitespace) {
        ActFields::default()
    } else {
        let value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}")))?;
        super::protocol::read_object(value)?
    };
    let action = player_action(&action, fields.name, fields.payload)?;
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request_id = match fields.request_id.or(header_key) {
        Some(id) => id,
        None => fresh_request_id()?,
    };
    let request = ActRequest {
        match_id,
        player: user,
        request_id,
        action,
    };
    gateway.backend.act(&request).await.map(Json)
}

/// `GET /users/{uid}` (`me`: the caller): a player's public profile. The
/// caller's own is empty until the archive knows them; anyone else's is
/// `unknown_user` until then.
pub async fn profile(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(uid), _): Segments<String>,
) -> Result<Json<Profile>, ApiError> {
    let uid = player_named(Some(&uid), &user)?;
    let profile = if uid == user {
        gateway.backend.own_profile(&user).await?
    } else {
        gateway.backend.profile(&uid).await?
    };
    Ok(Json(profile))
}

/// `PUT /users/{uid}` (`me`, or the caller's own id): the caller renames
/// themselves.
pub async fn rename(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(uid), _): Segments<String>,
    Object(fields): Object<RenameFields>,
) -> Result<Json<Profile>, ApiError> {
    renaming_self(&uid, &user)?;
    let request = fields.request(&user)?;
    gateway.backend.rename(&request).await.map(Json)
}

/// `GET /users/{uid}/matches?limit=N&cursor=C`: a page of a player's
/// history, newest first.
pub async fn history(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(uid), _): Segments<String>,
    WithRejection(Query(query), _): Params<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let request = query.request(&uid, &user)?;
    gateway.backend.history(&request).await.map(Json)
}

/// `GET /leaderboards/{mode}?limit=N&around=me`: the mode's leaderboard
/// this season.
pub async fn leaderboard(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(mode), _): Segments<String>,
    WithRejection(Query(query), _): Params<LeaderboardQuery>,
) -> Result<Json<Leaderboard>, ApiError> {
    let request = query.request(mode, &user)?;
    gateway.backend.leaderboard(&request).await.map(Json)
}

/// `GET /presence?uids=a,b`: the presence of the caller's friends (or
/// opponents), once.
pub async fn presence(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Query(params), _): Params<PresenceParams>,
) -> Result<Json<PresencesReply>, ApiError> {
    let presences = social::visible_presences(&gateway, &user, params.uids()).await?;
    Ok(Json(PresencesReply { presences }))
}

/// `GET /friends`: the caller's friends (with their presence), requests
/// both ways and blocks.
pub async fn friends(State(gateway): Gw, User(user): User) -> Result<Json<FriendsReply>, ApiError> {
    let links = social::friends_with_presence(&gateway, &user).await?;
    Ok(Json(FriendsReply { links }))
}

/// `POST /friends/{uid}/{verb}`: request, accept, decline, block, unblock
/// (and remove, also `DELETE /friends/{uid}`).
pub async fn befriend(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path((uid, verb)), _): Segments<(String, String)>,
) -> Result<Json<FriendReply>, ApiError> {
    let endpoint = social::friend_verb(&verb)?;
    let link = gateway.backend.befriend(endpoint, &user, &uid).await?;
    Ok(Json(FriendReply { uid, link }))
}

/// `DELETE /friends/{uid}`: ends a friendship, or withdraws a request.
pub async fn remove_friend(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(uid), _): Segments<String>,
) -> Result<Json<FriendReply>, ApiError> {
    let endpoint = dashdice_proto::bus::archive_endpoint::FRIENDS_REMOVE;
    let link = gateway.backend.befriend(endpoint, &user, &uid).await?;
    Ok(Json(FriendReply { uid, link }))
}

/// `POST /invites` `{"to","mode"}`: invites a friend to a private match.
pub async fn invite_friend(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<DirectInviteFields>,
) -> Result<(StatusCode, Json<Invite>), ApiError> {
    let invite = social::invite_friend(&gateway, &user, &fields.to, fields.mode).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

/// `POST /invites/{code}/decline`: declines a friend's invite.
pub async fn decline_invite(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(code), _): Segments<String>,
) -> Result<Json<Status>, ApiError> {
    let request = JoinInviteRequest { player: user, code };
    gateway.backend.decline_invite(&request).await.map(Json)
}

/// `GET /regions`: online users per region, queue sizes and recent median
/// waits. Public, like `/modes`: the lobby shows them before sign-in.
pub async fn regions(State(gateway): Gw) -> Result<Json<Lobby>, ApiError> {
    gateway.backend.lobby().await.map(Json)
}

/// `GET /notifications?before=C&limit=N`: a page of the caller's inbox,
/// newest first.
pub async fn notifications(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Query(query), _): Params<InboxQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    let request = query.request(&user)?;
    gateway.backend.inbox(&request).await.map(Json)
}

/// `GET /notifications/unread`: `{"unread": n}`.
pub async fn unread(State(gateway): Gw, User(user): User) -> Result<Json<Unread>, ApiError> {
    gateway.backend.unread(&user).await.map(Json)
}

/// `POST /notifications/{id}/read`: the unread count after it.
pub async fn notification_read(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(id), _): Segments<String>,
) -> Result<Json<Unread>, ApiError> {
    let request = inbox::mark_request(&user, id)?;
    gateway.backend.mark_read(&request).await.map(Json)
}

/// `POST /notifications/read-all`: `{"unread": 0}`, unless one came since.
pub async fn notifications_read_all(
    State(gateway): Gw,
    User(user): User,
) -> Result<Json<Unread>, ApiError> {
    gateway.backend.mark_all_read(&user).await.map(Json)
}

/// `DELETE /notifications/{id}`: the unread count after it.
pub async fn notification_delete(
    State(gateway): Gw,
    User(user): User,
    WithRejection(Path(id), _): Segments<String>,
) -> Result<Json<Unread>, ApiError> {
    let request = inbox::delete_request(&user, id)?;
    gateway
        .backend
        .delete_notification(&request)
        .await
        .map(Json)
}

/// `POST /users/me/devices` `{"token","platform"}`: the caller's device
/// gets pushes; `{"devices": n}`.
pub async fn register_device(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<DeviceFields>,
) -> Result<Json<Devices>, ApiError> {
    let request = inbox::register_request(&user, fields.token, &fields.platform)?;
    gateway.backend.register_device(&request).await.map(Json)
}

/// `DELETE /users/me/devices` `{"token"}`: the caller's device gets no more
/// pushes; `{"devices": n}`.
pub async fn unregister_device(
    State(gateway): Gw,
    User(user): User,
    Object(fields): Object<DeviceTokenFields>,
) -> Result<Json<Devices>, ApiError> {
    let request = inbox::unregister_request(&user, fields.token)?;
    gateway.backend.unregister_device(&request).await.map(Json)
}
