//! The workers behind the gateway, as typed calls: the match host and the
//! matchmaker over NATS request/reply, and the live subjects a connection
//! listens to, through `dashdice_proto`'s typed clients: every request
//! carries the current span's trace context, so one trace runs gateway →
//! worker → Redis. Nothing is retried here: a client that saw `timeout`
//! repeats its request with the same request id.

use std::time::Duration;

use super::error::ApiError;
use dashdice_proto::ErrorCode;
use dashdice_proto::bus;
use dashdice_proto::client::{MatchHostClient, MatchmakerClient, Requester};
use dashdice_proto::matches::{ActRequest, ActionReply, SequencedEvent, Snapshot};
use dashdice_proto::queue::{
    CreateInviteRequest, Invite, JoinInviteRequest, JoinRequest, RematchRequest, RematchStatus,
    Status,
};

#[derive(Clone)]
pub struct Backend {
    bus: Requester,
    host: MatchHostClient,
    queue: MatchmakerClient,
}

impl Backend {
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        let bus = Requester::new(nats, timeout);
        Backend {
            host: MatchHostClient::new(bus.clone()),
            queue: MatchmakerClient::new(bus.clone()),
            bus,
        }
    }

    /// Whether the NATS connection is up (for `/ready`).
    pub fn connected(&self) -> bool {
        self.bus.connected()
    }

    pub async fn join(&self, request: &JoinRequest) -> Result<Status, ApiError> {
        Ok(self.queue.join(request).await?)
    }

    pub async fn leave(&self, player: &str) -> Result<Status, ApiError> {
        Ok(self.queue.leave(player).await?)
    }

    pub async fn status(&self, player: &str) -> Result<Status, ApiError> {
        Ok(self.queue.status(player).await?)
    }

    pub async fn create_invite(&self, request: &CreateInviteRequest) -> Result<Invite, ApiError> {
        Ok(self.queue.create_invite(request).await?)
    }

    pub async fn join_invite(&self, request: &JoinInviteRequest) -> Result<Status, ApiError> {
        Ok(self.queue.join_invite(request).await?)
    }

    pub async fn rematch(&self, request: &RematchRequest) -> Result<RematchStatus, ApiError> {
        Ok(self.queue.rematch(request).await?)
    }

    pub async fn act(&self, request: &ActRequest) -> Result<ActionReply, ApiError> {
        Ok(self.host.act(request).await?)
    }

    pub async fn get(&self, match_id: &str) -> Result<Snapshot, ApiError> {
        Ok(self.host.get(match_id).await?)
    }

    /// The match's events with `seq > after`, oldest first.
    pub async fn events(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, ApiError> {
        Ok(self.host.events(match_id, after).await?)
    }

    /// The match's live events (core NATS: at most once; see `ws` for how
    /// gaps are filled).
    pub async fn live_events(&self, match_id: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.bus
            .nats()
            .subscribe(bus::match_events(match_id))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("nats: {e}")))
    }

    /// The player's notices: match found, rematch offered.
    pub async fn notices(&self, player: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.bus
            .nats()
            .subscribe(bus::user_notify(player))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("nats: {e}")))
    }
}
