//! The one error type of the gateway: every refusal, from a route or a
//! WebSocket message, is `{"error": {"code", "message"}}` with a stable code
//! and the HTTP status that code implies (the table is in PROTOCOL.md).

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use dashdice_proto::bus::ErrorBody;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: Cow<'static, str>,
    pub message: String,
    /// For `rate_limited`: seconds until a retry may pass.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new("unauthorized", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("bad_request", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            "too_large",
            format!("requests and messages are limited to {limit} bytes"),
        )
    }

    pub fn rate_limited(retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..Self::new(
                "rate_limited",
                "too many requests; slow down and retry after the given time",
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("internal", message)
    }

    /// The HTTP status for this error's code.
    pub fn status(&self) -> StatusCode {
        status_of(&self.code)
    }

    /// The body, as REST answers it and a WebSocket `error` carries it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
        }
    }
}

/// The HTTP status of a stable error code, whether the gateway or a worker
/// behind it chose the code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" | "not_a_player" | "not_in_match" => StatusCode::FORBIDDEN,
        "not_found" | "unknown_match" | "unknown_code" | "unknown_endpoint" => {
            StatusCode::NOT_FOUND
        }
        "bad_request" | "malformed_json" | "unknown_mode" | "unknown_region" | "unknown_action"
        | "invalid_config" => StatusCode::BAD_REQUEST,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        "internal" | "mode_fault" => StatusCode::INTERNAL_SERVER_ERROR,
        // The request was understood but the state does not allow it now:
        // not_your_turn, game_over, nothing_to_bank, already_queued, in_match,
        // matching, hosting, code_used, own_code, conflict, rematch_expired, ...
        _ => StatusCode::CONFLICT,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A worker's refusal passes through with its code and message.
impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError::new(e.code, e.message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new("too_large", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "send the body as JSON, with `Content-Type: application/json`",
            ),
            other => ApiError::new("malformed_json", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(dashdice_service::telemetry::names::GATEWAY_REJECTIONS, "code" => self.code.to_string())
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
