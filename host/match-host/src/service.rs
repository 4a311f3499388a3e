//! The match-host role: serves [`MatchHost`] on NATS as a micro service
//! (`$SRV.PING|INFO|STATS` work from the `nats` CLI), publishes each match's
//! events, and fires due turn timers. With notifications on
//! ([`run_notifying`]), each action or timeout that makes it a human
//! player's turn also asks the notifier for a `your_turn` (see
//! [`your_turn`]); the notifier pushes it only if that player is away.
//! With a reconnect window ([`Options::reconnect_window`]), it also ends
//! matches whose players are gone (see [`abandon`](crate::abandon)).
//!
//! Stateless: any number of these run side by side in one queue group; every
//! match lives in Redis, so any instance serves any match, and a killed instance
//! loses nothing that was committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::abandon::{Seen, check_every, may_be_gone};
use crate::{ActionReply, Applied, LivePlayers, MatchError, MatchHost};
use dashdice_proto::bus::{self, RecordStream, endpoint};
use dashdice_proto::client::{Notifications, PresenceClient, Requester};
use dashdice_proto::matches::MatchRequest;
use dashdice_proto::notify::{NotificationKind, NotifyRequest};
use dashdice_proto::presence::{MAX_QUERY, Presence, PresenceStatus};
use dashdice_proto::record::MatchRecord;
use dashdice_service::endpoints::{Endpoints, Service, serve};
use dashdice_service::telemetry::names;

/// How often due turn timers are looked for.
pub const TIMER_TICK: Duration = Duration::from_millis(100);
/// How often the live-match gauge is refreshed and unrecorded matches swept.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// A finished match whose record is still not stored this long after it
/// ended is taken to have lost its host, and any host stores the record.
pub const RECORD_GRACE: Duration = Duration::from_secs(5);
/// Largest request payload accepted.
pub const MAX_REQUEST_BYTES: usize = 16 << 10;
/// How long a record that could not be stored is tried again (with
/// backoff, reopening the stream) before it is left to the sweep.
pub const RECORD_RETRY_FOR: Duration = Duration::from_secs(10);
/// How long the abandonment check waits for presence's answer.
pub const PRESENCE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most live matches per timer shard one abandonment check looks at.
const LIVE_SCAN_LIMIT: usize = 10_000;

/// What the match host does besides serving requests.
#[derive(Clone)]
pub struct Options {
    /// Ask the notifier to tell players it is their turn.
    pub notifications: Option<Notifications>,
    /// End abandoned matches (see [`abandon`](crate::abandon)): a player
    /// gone past this window forfeits, and a match every player left ends
    /// as void. `None`: only the turn timers end a match nobody plays.
    pub reconnect_window: Option<Duration>,
    /// How long a finished match's record may stay unstored before any
    /// host's sweep stores it.
    pub record_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            notifications: None,
            reconnect_window: None,
            record_grace: RECORD_GRACE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("nats: {0}")]
    Nats(String),
}

fn nats_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Nats(e.to_string())
}

/// The match host's micro service.
const SERVICE: Service = Service {
    name: bus::MATCH_SERVICE,
    description: "DashDice match host: creates matches and applies actions authoritatively",
    queue_group: bus::MATCH_QUEUE_GROUP,
    group: bus::MATCH_GROUP,
    endpoints: &[
        endpoint::CREATE,
        endpoint::ACT,
        endpoint::GET,
        endpoint::EVENTS,
        endpoint::RECORD,
    ],
    requests_metric: names::MATCH_REQUESTS,
    seconds_metric: names::MATCH_REQUEST_SECONDS,
    max_in_flight: None,
};

/// Runs the match host on `client` until the connection closes, asking
/// for no notifications.
pub async fn run(client: async_nats::Client, host: MatchHost) -> Result<(), ServiceError> {
    run_notifying(client, host, None).await
}

/// [`run`], asking the notifier (through `notifications`, if any) to tell
/// players it is their turn.
pub async fn run_notifying(
    client: async_nats::Client,
    host: MatchHost,
    notifications: Option<Notifications>,
) -> Result<(), ServiceError> {
    let options = Options {
        notifications,
        ..Options::default()
    };
    run_with(client, host, options).await
}

/// [`run`] with `options`.
pub async fn run_with(
    client: async_nats::Client,
    host: MatchHost,
    options: Options,
) -> Result<(), ServiceError> {
    let Options {
        notifications,
        reconnect_window,
        record_grace,
    } = options;
    // Before the service announces itself: everything it needs is ready
    // when it first answers PING.
    let records = RecordStream::open(&client).await.map_err(nats_error)?;
    if notifications.is_some() {
        // Made here if missing, so turns are kept even before a notifier
        // first starts.
        let js = async_nats::jetstream::new(client.clone());
        bus::open_notify_stream(&js).await.map_err(nats_error)?;
    }
    let host = Arc::new(Host {
        client: client.clone(),
        records,
        notifications,
        logic: Arc::new(host),
        record_grace,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(timers(host.clone()));
    tasks.spawn(housekeeping(host.clone()));
    if let Some(window) = reconnect_window.filter(|w| !w.is_zero()) {
        tasks.spawn(abandonment(host.clone(), window));
    }
    let served = serve(client, SERVICE, host).await;
    tasks.abort_all();
    served.map_err(nats_error)
}

/// The match host on the bus: answers requests and announces their effects.
struct Host {
    client: async_nats::Client,
    records: RecordStream,
    notifications: Option<Notifications>,
    logic: Arc<MatchHost>,
    record_grace: Duration,
}

impl Endpoints for Host {
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        tracing::info_span!("match request", endpoint, outcome = tracing::field::Empty)
    }

    /// One request: decode, call the host, publish events, encode the reply.
    async fn handle(&self, endpoint: &'static str, payload: &[u8]) -> bus::Answer {
        let request = match MatchRequest::decode(endpoint, payload, MAX_REQUEST_BYTES) {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        let host = &self.logic;
        match request {
            MatchRequest::Create(req) => {
                let created = host
                    .create(&req)
                    .await
                    .map(|reply| Applied { reply, new: true });
                if let Ok(created) = &created {
                    metrics::counter!(names::MATCHES_CREATED, "mode" => created.reply.snapshot.mode.clone())
                        .increment(1);
                }
                self.published(created).await
            }
            MatchRequest::Act(req) => self.published(host.act(&req).await).await,
            MatchRequest::Get(req) => respond(host.get(&req.match_id).await),
            MatchRequest::Events(req) => respond(host.events_since(&req.match_id, req.after).await),
            MatchRequest::Record(req) => respond(host.record(&req.match_id).await),
        }
    }
}

fn respond<T: Serialize>(result: Result<T, MatchError>) -> bus::Answer {
    if let Err(e) = &result
        && matches!(
            e,
            MatchError::ModeFault(_) | MatchError::Store(_) | MatchError::Corrupt(_)
        )
    {
        tracing::warn!(code = e.code().as_str(), error = %e, "match request failed");
    }
    bus::answer(result, MatchError::code)
}

/// Where a request's side effects go: events, the end announcement, the record.
impl Host {
    /// Publishes a newly applied action's effects (a repeated request
    /// publishes nothing again), then replies.
    async fn published(&self, result: Result<Applied, MatchError>) -> bus::Answer {
        if let Ok(Applied { reply, new: true }) = &result {
            self.announce(reply).await;
        }
        respond(result.map(|applied| applied.reply))
    }

    /// Events on the match's subject; at the end, the standings and the record.
    async fn announce(&self, reply: &ActionReply) {
        publish_events(&self.client, reply).await;
        if let Some(notifications) = &self.notifications
            && let Some(request) = your_turn(reply, dashdice_proto::clock::now_ms())
        {
            // In the background: neither the reply nor the events wait.
            notifications.spawn(request);
        }
        if !reply.snapshot.finished {
            return;
        }
        metrics::counter!(names::MATCHES_FINISHED, "mode" => reply.snapshot.mode.clone())
            .increment(1);
        let Some(record) = reply.snapshot.record() else {
            tracing::error!(match_id = %reply.snapshot.match_id, "a finished match's view lacks its record");
            return;
        };
        let ended = bus::MatchEnded {
            match_id: record.match_id.clone(),
            mode: record.mode.clone(),
            mode_version: record.mode_version.to_string(),
            standings: record.standings.clone(),
        };
        if let Ok(body) = serde_json::to_vec(&ended) {
            let _ = self.client.publish(bus::MATCH_ENDED, body.into()).await;
        }
        self.store_record(&record).await;
    }

    /// Stores a finished match's record in JetStream and notes it in Redis;
    /// if that fails, tries again in the background for
    /// [`RECORD_RETRY_FOR`], and after that the housekeeping sweep of any
    /// host does.
    async fn store_record(&self, record: &MatchRecord) {
        let id = &record.match_id;
        match self.records.store(record).await {
            Ok(()) => noted(&self.logic, id).await,
            Err(e) => {
                tracing::warn!(match_id = %id, error = %e, "could not store the match record; trying again");
                tokio::spawn(retry_record(
                    self.client.clone(),
                    self.records.clone(),
                    self.logic.clone(),
                    record.clone(),
                ));
            }
        }
    }
}

/// Notes in Redis that a match's record is stored.
async fn noted(host: &MatchHost, match_id: &str) {
    if let Err(e) = host.store().recorded(match_id).await {
        tracing::warn!(%match_id, error = %e, "record stored, but not noted (it will be stored again, deduplicated)");
    }
}

/// Tries to store a record again, with backoff, for [`RECORD_RETRY_FOR`]:
/// a NATS restart fails writes until the client reconnects, and then
/// "no stream found" until JetStream has recovered its streams, so each
/// try first opens the stream again (making it if it is missing). A
/// repeat is harmless: the stream drops duplicates by match id. Past the
/// bound, the sweep of any host stores it.
async fn retry_record(
    client: async_nats::Client,
    records: RecordStream,
    host: Arc<MatchHost>,
    record: MatchRecord,
) {
    let id = &record.match_id;
    let js = async_nats::jetstream::new(client);
    let until = tokio::time::Instant::now() + RECORD_RETRY_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        tokio::time::sleep(pause).await;
        metrics::counter!(names::RECORD_RETRIES).increment(1);
        if let Err(e) = bus::open_record_stream(&js).await {
            tracing::debug!(match_id = %id, error = %e, "the record stream is not there yet");
        }
        match records.store(&record).await {
            Ok(()) => {
                tracing::info!(match_id = %id, "stored a match record on a later try");
                noted(&host, id).await;
                return;
            }
            Err(e) if tokio::time::Instant::now() + pause < until => {
                tracing::debug!(match_id = %id, error = %e, "the match record is still not stored");
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                metrics::counter!(names::RECORDS_PENDING).increment(1);
                tracing::error!(match_id = %id, error = %e, "could not store the match record; the sweep will retry");
                return;
            }
        }
    }
}

/// The `your_turn` request an applied action (or timeout, or a new match)
/// calls for: when its events start or pass a turn and the match, still
/// on, is now on a human player's turn. Id `your_turn:<match_id>:<seq>`
/// (the seq of the event that gave the turn: the same turn always asks the
/// same), data `match_id`, `mode` and `opponent` (who passed the turn, or
/// else the first other player). `None` for everything else, which is
/// most actions: they are looked at without allocating.
pub fn your_turn(reply: &ActionReply, now_ms: u64) -> Option<NotifyRequest> {
    use dashdice_mode_sdk::Event;
    let snapshot = &reply.snapshot;
    if snapshot.finished {
        return None;
    }
    let (seq, player, passed_by) = reply.events.iter().rev().find_map(|e| match &e.event {
        Event::TurnPassed { from, to } => Some((e.seq, to, Some(from))),
        Event::TurnStarted { player } => Some((e.seq, player, None)),
        _ => None,
    })?;
    if snapshot.turn.as_ref() != Some(player) || snapshot.bots.contains(player) {
        return None;
    }
    let opponent = passed_by
        .filter(|from| *from != player)
        .or_else(|| snapshot.players.iter().find(|p| *p != player))?;
    Some(NotifyRequest::new(
        format!("your_turn:{}:{seq}", snapshot.match_id),
        player.as_str(),
        NotificationKind::YourTurn,
        [
            ("match_id", snapshot.match_id.as_str()),
            ("mode", snapshot.mode.as_str()),
            ("opponent", opponent.as_str()),
        ],
        now_ms,
    ))
}

async fn publish_events(client: &async_nats::Client, reply: &ActionReply) {
    let subject = bus::match_events(&reply.snapshot.match_id);
    // Events carry the trace of the request that caused them.
    let headers = bus::trace_headers(&tracing::Span::current().context());
    for event in &reply.events {
        let Ok(body) = serde_json::to_vec(event) else {
            continue;
        };
        if let Err(e) = client
            .publish_with_headers(subject.clone(), headers.clone(), body.into())
            .await
        {
            // Committed events are never lost: clients catch up with
            // `dd.match.events` from their last sequence number.
            tracing::warn!(%subject, error = %e, "could not publish an event");
        }
    }
}

/// Fires due turn timers. Every host runs this; a timer fires once because
/// firing is an idempotent, compare-and-set action.
async fn timers(out: Arc<Host>) {
    let host = &out.logic;
    let mut tick = tokio::time::interval(TIMER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = dashdice_proto::clock::now_ms();
        let due = match host.store().due_timers(now, 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due timers");
                continue;
            }
        };
        for (match_id, deadline) in due {
            let span = tracing::info_span!("turn timer", %match_id);
            match host
                .fire_timeout(&match_id, deadline)
                .instrument(span.clone())
                .await
            {
                Ok(Some(Applied { reply, new: true })) => {
                    let forfeit = reply
                        .events
                        .iter()
                        .any(|e| matches!(e.event, dashdice_mode_sdk::Event::Forfeited { .. }));
                    let action = if forfeit { "forfeit" } else { "timeout" };
                    metrics::counter!(names::TIMERS_FIRED, "action" => action).increment(1);
                    out.announce(&reply).instrument(span).await
                }
                Ok(_) => {}
                Err(MatchError::UnknownMatch(_)) => {
                    let _ = host.store().clear_timer(&match_id).await;
                }
                Err(e) => tracing::warn!(%match_id, error = %e, "could not fire a turn timer"),
            }
        }
    }
}

/// Once a second: refreshes the live-match gauge, and stores the records of
/// finished matches whose host died before storing them.
async fn housekeeping(out: Arc<Host>) {
    let (records, host) = (&out.records, &out.logic);
    let grace = u64::try_from(out.record_grace.as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match host.store().live_matches().await {
            Ok(live) => metrics::gauge!(names::MATCHES_LIVE).set(live as f64),
            Err(e) => tracing::warn!(error = %e, "could not count live matches"),
        }
        let before = dashdice_proto::clock::now_ms().saturating_sub(grace);
        let stale = match host.store().unrecorded(before, 100).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "could not list unrecorded matches");
                continue;
            }
        };
        for match_id in stale {
            match host.record(&match_id).await {
                Ok(record) => {
                    if records.store(&record).await.is_ok() {
                        let _ = host.store().recorded(&match_id).await;
                        tracing::info!(%match_id, "stored a record its host left behind");
                    }
                }
                Err(MatchError::UnknownMatch(_)) => {
                    tracing::error!(%match_id, "a finished match expired before its record was stored");
                    let _ = host.store().recorded(&match_id).await;
                }
                Err(e) => tracing::warn!(%match_id, error = %e, "could not rebuild a match record"),
            }
        }
    }
}

/// Every [`check_every`] the reconnect window: ends the live matches whose
/// players are gone (see [`abandon`](crate::abandon)). One look at the
/// timer sets lists the live matches; each match's players are read once
/// (they never change) and kept while it is live; presence is asked in
/// batches of whole matches; only a match with a player presence says may
/// be gone has its log read. A batch presence does not answer decides
/// nothing. Every host runs this; the end is applied once, by
/// compare-and-set.
async fn abandonment(out: Arc<Host>, window: Duration) {
    let presence = PresenceClient::new(Requester::new(out.client.clone(), PRESENCE_TIMEOUT));
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let mut known = HashMap::new();
    let mut tick = tokio::time::interval(check_every(window));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        check_abandoned(&out, &presence, &mut known, window_ms)
            .instrument(tracing::debug_span!("abandonment check"))
            .await;
    }
}

/// One abandonment check; `known` keeps live matches' players between
/// checks (`None`: over).
async fn check_abandoned(
    out: &Host,
    presence: &PresenceClient,
    known: &mut HashMap<String, Option<LivePlayers>>,
    window_ms: u64,
) {
    let host = &out.logic;
    let live = match host.store().due_timers(u64::MAX, LIVE_SCAN_LIMIT).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "could not list live matches");
            return;
        }
    };
    let ids: HashSet<&str> = live.iter().map(|(id, _)| id.as_str()).collect();
    known.retain(|id, _| ids.contains(id.as_str()));
    for id in ids {
        if known.contains_key(id) {
            continue;
        }
        match host.live_players(id).await {
            Ok(players) => {
                known.insert(id.to_owned(), players);
            }
            Err(e) => tracing::debug!(match_id = %id, error = %e, "could not read a live match"),
        }
    }
    let now = dashdice_proto::clock::now_ms();
    // Matches younger than the window cannot be abandoned yet.
    let due: Vec<(&String, &LivePlayers)> = known
        .iter()
        .filter_map(|(id, players)| Some((id, players.as_ref()?)))
        .filter(|(_, p)| !p.humans.is_empty() && now.saturating_sub(p.created_ms) >= window_ms)
        .collect();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut batch: Vec<String> = Vec::new();
    for (i, (_, players)) in due.iter().enumerate() {
        batch.extend(players.humans.iter().cloned());
        let next = due.get(i + 1).map_or(0, |(_, p)| p.humans.len());
        if batch.len() + next > MAX_QUERY || i + 1 == due.len() {
            let uids = std::mem::take(&mut batch);
            match presence.query(uids).await {
                Ok(answered) => seen.extend(answered.iter().map(|p| (p.uid.clone(), seen_of(p)))),
                Err(e) => {
                    tracing::debug!(error = %e, "presence did not answer; nothing is decided for these matches");
                }
            }
        }
    }
    for (id, players) in due {
        let told: Option<Vec<Seen>> = players
            .humans
            .iter()
            .map(|h| seen.get(h).copied())
            .collect();
        let Some(told) = told else {
            continue;
        };
        if !told
            .iter()
            .any(|&s| may_be_gone(s, players.created_ms, now, window_ms))
        {
            continue;
        }
        let span = tracing::info_span!("abandoned match", match_id = %id);
        let lookup = |uid: &str| seen.get(uid).copied().unwrap_or(Seen::Unknown);
        match host
            .end_abandoned(id, lookup, now, window_ms)
            .instrument(span.clone())
            .await
        {
            Ok(Some((applied, verdict))) => {
                metrics::counter!(names::MATCHES_ABANDONED, "outcome" => verdict.outcome())
                    .increment(1);
                tracing::info!(match_id = %id, outcome = verdict.outcome(), "ended a match its players left");
                out.announce(&applied.reply).instrument(span).await;
            }
            Ok(None) | Err(MatchError::UnknownMatch(_)) => {}
            Err(e) => {
                tracing::warn!(match_id = %id, error = %e, "could not end an abandoned match")
            }
        }
    }
}

/// What a player's presence says for the abandonment rules.
fn seen_of(presence: &Presence) -> Seen {
    match presence.status {
        PresenceStatus::Online | PresenceStatus::Away => Seen::Connected,
        PresenceStatus::Offline => Seen::Offline {
            last_seen_ms: presence.last_seen_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(events: serde_json::Value, turn: &str, finished: bool) -> ActionReply {
        serde_json::from_value(json!({
            "events": events,
            "match": {
                "match_id": "m1", "mode": "classic", "mode_version": "v",
                "players": ["alice", "bob", "bot-1"], "bots": ["bot-1"],
                "seq": 9, "turn": turn, "deadline_ms": null, "seed_hash": "h",
                "seed": null, "finished": finished, "created_ms": 1, "view": {}
            }
        }))
        .expect("a reply")
    }

    #[test]
    fn a_passed_turn_asks_for_the_player_now_on_turn() {
        let passed = json!([
            {"seq": 7, "type": "busted", "player": "alice", "lost": 50, "reason": "single_one"},
            {"seq": 8, "type": "turn_passed", "from": "alice", "to": "bob"}
        ]);
        let r = your_turn(&reply(passed, "bob", false), 5).expect("a request");
        assert_eq!(r.id, "your_turn:m1:8");
        assert_eq!(r.uid, "bob");
        assert_eq!(r.kind, NotificationKind::YourTurn);
        assert_eq!(r.data.get("opponent").map(String::as_str), Some("alice"));
        assert_eq!(r.data.get("mode").map(String::as_str), Some("classic"));
        assert!(dashdice_proto::notify::check_request(&r).is_ok());
    }

    #[test]
    fn rolls_bots_and_ends_ask_for_nothing() {
        let rolled = json!([{"seq": 3, "type": "rolled", "player": "alice", "dice": [1, 2], "kind": "normal"}]);
        assert!(your_turn(&reply(rolled, "alice", false), 5).is_none());
        let to_bot = json!([{"seq": 4, "type": "turn_passed", "from": "bob", "to": "bot-1"}]);
        assert!(your_turn(&reply(to_bot, "bot-1", false), 5).is_none());
        let started = json!([{"seq": 1, "type": "turn_started", "player": "alice"}]);
        assert!(your_turn(&reply(started.clone(), "alice", true), 5).is_none());
        let first =
            your_turn(&reply(started, "alice", false), 5).expect("a new match's first turn");
        assert_eq!(first.data.get("opponent").map(String::as_str), Some("bob"));
    }
}
