//! The one error type of the gateway: every refusal, from a route or a
//! WebSocket message, is `{"error": {"code", "message"}}` with a stable code
//! and the HTTP status that code implies (the table is in PROTOCOL.md).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashdice_proto::ErrorCode;

use dashdice_proto::bus::ErrorBody;
use dashdice_proto::client::CallError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `rate_limited`: seconds until a retry may pass.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::TooLarge,
            format!("requests and messages are limited to {limit} bytes"),
        )
    }

    pub fn rate_limited(retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..Self::new(
                ErrorCode::RateLimited,
                "too many requests; slow down and retry after the given time",
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The HTTP status for this error's code.
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// The body, as REST answers it and a WebSocket `error` carries it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

/// The HTTP status of a stable error code, whether the gateway or a worker
/// behind it chose the code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden | NotAPlayer | NotInMatch | NotFriends | Blocked | NotInvited => {
            StatusCode::FORBIDDEN
        }
        NotFound | UnknownMatch | UnknownUser | UnknownCode | UnknownEndpoint => {
            StatusCode::NOT_FOUND
        }
        BadRequest | Yourself | BadCursor | MalformedJson | UnknownMode | UnknownRegion
        | UnknownAction | InvalidConfig => StatusCode::BAD_REQUEST,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Timeout => StatusCode::GATEWAY_TIMEOUT,
        Internal | ModeFault | Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        // The request was understood but the state does not allow it now.
        NotYourTurn | GameOver | NothingToBank | Rejected | MatchExists | AlreadyQueued
        | InMatch | Matching | Hosting | CodeUsed | OwnCode | RematchExpired | OpponentBusy
        | Conflict | TooManySubscriptions | ModeWithdrawn | AlreadyFriends | AlreadyRequested
        | NoRequest | TooManyFriends => StatusCode::CONFLICT,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A worker's refusal passes through with its code and message; a call
/// nobody answered says so (`timeout`, `unavailable`).
impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Refused(body) => ApiError::new(body.code, body.message),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorCode::TooLarge, e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "send the body as JSON, with `Content-Type: application/json`",
            ),
            other => ApiError::new(ErrorCode::MalformedJson, other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

/// `/api/v1/ws` asked without a WebSocket upgrade (or a broken one).
impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: WebSocketUpgradeRejection) -> Self {
        ApiError::bad_request(format!(
            "this route takes a WebSocket upgrade (GET with `Connection: upgrade`, \
             `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`): {}",
            rejection.body_text()
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(dashdice_service::telemetry::names::GATEWAY_REJECTIONS, "code" => self.code.as_str())
            .increment(1);
        let status = self.status();
        let retry_after = self.retry_after_s;
        let mut response =
            (status, Json(serde_json::json!({ "error": self.body() }))).into_response();
        if let Some(s) = retry_after
            && let Ok(value) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
