//! The workers behind the gateway, as typed calls: the match host and the
//! matchmaker over NATS request/reply, and the live subjects a connection
//! listens to. Subject names come from [`dashdice_proto::bus`]; every request carries
//! the current span's trace context, so one trace runs gateway → worker →
//! Redis.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::error::ApiError;
use dashdice_proto::bus::{self, EventsRequest, MatchIdRequest, Reply, endpoint, queue_endpoint};
use dashdice_proto::matches::{ActRequest, ActionReply, SequencedEvent, Snapshot};
use dashdice_proto::queue::{
    CreateInviteRequest, Invite, JoinInviteRequest, JoinRequest, PlayerRequest, RematchRequest,
    RematchStatus, Status,
};

#[derive(Clone)]
pub struct Backend {
    nats: async_nats::Client,
    /// How long a worker has to answer one request.
    timeout: Duration,
}

impl Backend {
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        Backend { nats, timeout }
    }

    /// Whether the NATS connection is up (for `/ready`).
    pub fn connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    async fn request<Q: Serialize, A: DeserializeOwned>(
        &self,
        subject: String,
        request: &Q,
    ) -> Result<A, ApiError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ApiError::internal(format!("encoding a request: {e}")))?;
        let headers = bus::trace_headers(&tracing::Span::current().context());
        let call = self
            .nats
            .request_with_headers(subject, headers, body.into());
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(ApiError::new(
                    "timeout",
                    "the service did not answer in time; retrying with the same request_id is safe",
                ));
            }
            Ok(Err(e)) => return Err(request_error(e)),
            Ok(Ok(reply)) => reply,
        };
        serde_json::from_slice::<Reply<A>>(&reply.payload)
            .map_err(|e| ApiError::internal(format!("an unreadable reply from a service: {e}")))?
            .into_result()
            .map_err(ApiError::from)
    }

    pub async fn join(&self, request: &JoinRequest) -> Result<Status, ApiError> {
        self.request(bus::queue_request(queue_endpoint::JOIN), request)
            .await
    }

    pub async fn leave(&self, player: &str) -> Result<Status, ApiError> {
        let request = PlayerRequest {
            player: player.to_owned(),
        };
        self.request(bus::queue_request(queue_endpoint::LEAVE), &request)
            .await
    }

    pub async fn status(&self, player: &str) -> Result<Status, ApiError> {
        let request = PlayerRequest {
            player: player.to_owned(),
        };
        self.request(bus::queue_request(queue_endpoint::STATUS), &request)
            .await
    }

    pub async fn create_invite(&self, request: &CreateInviteRequest) -> Result<Invite, ApiError> {
        self.request(bus::queue_request(queue_endpoint::PRIVATE_CREATE), request)
            .await
    }

    pub async fn join_invite(&self, request: &JoinInviteRequest) -> Result<Status, ApiError> {
        self.request(bus::queue_request(queue_endpoint::PRIVATE_JOIN), request)
            .await
    }

    pub async fn rematch(&self, request: &RematchRequest) -> Result<RematchStatus, ApiError> {
        self.request(bus::queue_request(queue_endpoint::REMATCH), request)
            .await
    }

    pub async fn act(&self, request: &ActRequest) -> Result<ActionReply, ApiError> {
        self.request(bus::match_request(endpoint::ACT), request)
            .await
    }

    pub async fn get(&self, match_id: &str) -> Result<Snapshot, ApiError> {
        let request = MatchIdRequest {
            match_id: match_id.to_owned(),
        };
        self.request(bus::match_request(endpoint::GET), &request)
            .await
    }

    /// The match's events with `seq > after`, oldest first.
    pub async fn events(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, ApiError> {
        let request = EventsRequest {
            match_id: match_id.to_owned(),
            after,
        };
        self.request(bus::match_request(endpoint::EVENTS), &request)
            .await
    }

    /// The match's live events (core NATS: at most once; see `ws` for how
    /// gaps are filled).
    pub async fn live_events(&self, match_id: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.nats
            .subscribe(bus::match_events(match_id))
            .await
            .map_err(|e| ApiError::new("unavailable", format!("nats: {e}")))
    }

    /// The player's notices: match found, rematch offered.
    pub async fn notices(&self, player: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.nats
            .subscribe(bus::user_notify(player))
            .await
            .map_err(|e| ApiError::new("unavailable", format!("nats: {e}")))
    }
}

fn request_error(e: async_nats::RequestError) -> ApiError {
    use async_nats::RequestErrorKind;
    match e.kind() {
        RequestErrorKind::NoResponders => ApiError::new(
            "unavailable",
            "no service is answering right now; try again shortly",
        ),
        RequestErrorKind::TimedOut => ApiError::new(
            "timeout",
            "the service did not answer in time; retrying with the same request_id is safe",
        ),
        _ => ApiError::new("unavailable", format!("nats: {e}")),
    }
}
