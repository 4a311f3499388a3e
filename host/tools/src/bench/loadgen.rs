//! `dashdice loadgen`: simulated players against a running gateway, over
//! real WebSockets, as the web page plays.
//!
//! Each player signs in as a guest (`POST /api/v1/auth/guest`, so the
//! gateway must be in dev mode, as `dashdice up` is), opens one WebSocket,
//! and then, until the run's time is up: joins the quick queue, waits for
//! its match, plays it to the end (roll until the turn score reaches 20,
//! then bank; True Grit only rolls), thinking for about `think` before each
//! action, and queues again. Players start spread over `ramp`.
//!
//! Measured client side: time to match (from sending `join` to the match
//! being known) and action round trip (from sending `act` to its `acted`
//! answer). Every `error` message, dropped connection, or wait past
//! [`STALL`] counts as an error, by code. A 429 on sign-in or upgrade is
//! retried after its `Retry-After` and counted apart: that is the gateway
//! protecting itself, not failing. An `unavailable` (or `timeout`) answer
//! to sign-in, upgrade, join, leave or act, and a sign-in or upgrade whose
//! connection is closed unanswered, is retried as PROTOCOL.md
//! advises, with exponential backoff and jitter ([`Backoff`]; an act keeps
//! its request id, so a retry applies it at most once), and counted apart;
//! it becomes an error only if it lasts past [`STALL`].
//!
//! The loadgen is a client: it speaks the gateway's protocol (PROTOCOL.md)
//! as any client would, and shares no code with the gateway.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Samples;

/// A wait this long for an answer or an event counts as an error.
const STALL: Duration = Duration::from_secs(30);
/// The first wait before retrying an `unavailable` answer...
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// ...which doubles each retry, up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// A join answered `in_match` or `matching` (the last match's end is still
/// on its way to the matchmaker, or a match is being made) asks the status
/// after this; so does a leave that came too late.
const ASK_AGAIN: Duration = Duration::from_millis(50);

/// Exponential backoff with jitter: each wait is drawn uniformly from the
/// upper half of a step that starts at [`BACKOFF_FIRST`] and doubles up to
/// [`BACKOFF_CAP`], so players refused together do not come back together.
#[derive(Debug)]
struct Backoff {
    step: Duration,
    started: Instant,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            step: BACKOFF_FIRST,
            started: Instant::now(),
        }
    }

    /// The wait before the next retry.
    fn delay(&mut self, rng: &mut impl RngCore) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(BACKOFF_CAP);
        let half = step / 2;
        let jitter = rng.next_u32() as f64 / f64::from(u32::MAX);
        half + half.mul_f64(jitter)
    }

    /// Waits before the next retry, counting it; `Err` once retrying has
    /// lasted past [`STALL`] (the refusal's `code` counts as the error).
    async fn wait(
        &mut self,
        rng: &mut impl RngCore,
        tally: &Tally,
        code: &str,
    ) -> Result<(), Failed> {
        if self.started.elapsed() >= STALL {
            return Err(Failed::new(code));
        }
        tally.unavailable.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.delay(rng)).await;
        Ok(())
    }
}

/// Whether a refusal is worth retrying with backoff: a worker or the bus
/// is down or slow (PROTOCOL.md's advice to clients).
fn retryable(code: Option<&str>) -> bool {
    matches!(code, Some("unavailable" | "timeout"))
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The gateway: `http://host:port`.
    pub url: String,
    pub players: usize,
    pub duration: Duration,
    /// Player `n` plays `modes[n % len]`.
    pub modes: Vec<String>,
    /// Mean think time before each action (uniform in ½..1½ of it).
    pub think: Duration,
    /// Players start evenly over this.
    pub ramp: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--url {0:?}: expected http://host:port or https://host:port")]
    Url(String),
    #[error("cannot reach the gateway at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "the gateway at {0} does not offer guest sign-in: run it in dev mode (dashdice up, or dashdice gateway --dev)"
    )]
    NoGuests(String),
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub players: usize,
    /// Players queued for this long...
    pub queueing_seconds: f64,
    /// ...and the last match ended after this long.
    pub seconds: f64,
    /// Distinct matches the players were in.
    pub matches: u64,
    /// Matches played to the end, counted per player (two per match).
    pub matches_finished_per_player: u64,
    pub actions: u64,
    pub actions_per_sec: f64,
    pub action_ms_p50: f64,
    pub action_ms_p95: f64,
    pub action_ms_p99: f64,
    pub action_ms_max: f64,
    pub time_to_match_ms_p50: f64,
    pub time_to_match_ms_p95: f64,
    pub time_to_match_ms_p99: f64,
    /// Errors by code (the gateway's, or `disconnected`, `stalled`, ...).
    pub errors: BTreeMap<String, u64>,
    /// 429s on sign-in or upgrade, retried.
    pub rate_limited_retries: u64,
    /// `unavailable` and `timeout` answers, and connections closed unanswered, retried with backoff.
    pub unavailable_retries: u64,
}

impl LoadReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn render(&self) -> String {
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            let detail: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            format!("{} ({})", self.error_count(), detail.join(", "))
        };
        format!(
            "{} players queueing for {:.0} s, the last match over at {:.1} s\n\
             matches        {} ({} played to the end, counted per player)\n\
             actions        {} ({:.0}/s)\n\
             action rtt     p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             time to match  p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms\n\
             errors         {}\n\
             429 retries    {}\n\
             retried        {} (unavailable, timeout or closed unanswered, with backoff)\n",
            self.players,
            self.queueing_seconds,
            self.seconds,
            self.matches,
            self.matches_finished_per_player,
            self.actions,
            self.actions_per_sec,
            self.action_ms_p50,
            self.action_ms_p95,
            self.action_ms_p99,
            self.action_ms_max,
            self.time_to_match_ms_p50,
            self.time_to_match_ms_p95,
            self.time_to_match_ms_p99,
            errors,
            self.rate_limited_retries,
            self.unavailable_retries,
        )
    }
}

/// Shared counters and samples (µs).
#[derive(Default)]
struct Tally {
    actions: AtomicU64,
    matches: Mutex<HashSet<String>>,
    matches_finished: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    action_us: Mutex<Samples>,
    match_wait_us: Mutex<Samples>,
}

impl Tally {
    fn error(&self, code: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code.to_owned()).or_default() += 1;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.lock().map(|e| e.values().sum()).unwrap_or(0)
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Runs the players and reports.
pub async fn run(options: &LoadOptions, bar: ProgressBar) -> Result<LoadReport, LoadError> {
    let base = options.url.trim_end_matches('/').to_owned();
    let ws_base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(LoadError::Url(options.url.clone()));
    };
    // Sign-in connections never carry a token, so each one open counts
    // against the gateway's cap on unverified connections per IP (64 by
    // default): keep few of them idle.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(8)
        .build()
        .map_err(|e| LoadError::Unreachable {
            url: base.clone(),
            detail: e.to_string(),
        })?;
    // One sign-in up front says whether the run can work at all.
    match http.post(format!("{base}/api/v1/auth/guest")).send().await {
        Err(e) => {
            return Err(LoadError::Unreachable {
                url: base,
                detail: e.to_string(),
            });
        }
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            return Err(LoadError::NoGuests(base));
        }
        Ok(_) => {}
    }

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + options.duration;
    let ctx = Arc::new(Ctx {
        base,
        ws_base,
        http,
        tally: tally.clone(),
        deadline,
        think: options.think,
    });
    let mut players = Vec::with_capacity(options.players);
    for n in 0..options.players {
        let ctx = ctx.clone();
        let mode = options
            .modes
            .get(n % options.modes.len().max(1))
            .cloned()
            .unwrap_or_else(|| "classic".to_owned());
        let delay = options
            .ramp
            .mul_f64(n as f64 / options.players.max(1) as f64);
        players.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            Player::start(ctx, n as u64, mode).await;
        }));
    }

    bar.set_length(options.duration.as_secs());
    let ticker = {
        let tally = tally.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "{} matches, {} actions, {} errors",
                    tally.matches.lock().map_or(0, |m| m.len()),
                    tally.actions.load(Ordering::Relaxed),
                    tally.error_count(),
                ));
            }
        })
    };
    for player in players {
        if player.await.is_err() {
            tally.error("player_panicked");
        }
    }
    ticker.abort();
    bar.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    let action = tally
        .action_us
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let wait = tally
        .match_wait_us
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let ms = |us: u64| us as f64 / 1000.0;
    let actions = tally.actions.load(Ordering::Relaxed);
    Ok(LoadReport {
        players: options.players,
        queueing_seconds: options.duration.as_secs_f64(),
        seconds,
        matches: tally.matches.lock().map_or(0, |m| m.len() as u64),
        matches_finished_per_player: tally.matches_finished.load(Ordering::Relaxed),
        actions,
        actions_per_sec: actions as f64 / seconds.max(f64::EPSILON),
        action_ms_p50: ms(action.quantile(0.50)),
        action_ms_p95: ms(action.quantile(0.95)),
        action_ms_p99: ms(action.quantile(0.99)),
        action_ms_max: ms(action.quantile(1.0)),
        time_to_match_ms_p50: ms(wait.quantile(0.50)),
        time_to_match_ms_p95: ms(wait.quantile(0.95)),
        time_to_match_ms_p99: ms(wait.quantile(0.99)),
        errors: tally.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        rate_limited_retries: tally.rate_limited.load(Ordering::Relaxed),
        unavailable_retries: tally.unavailable.load(Ordering::Relaxed),
    })
}

struct Ctx {
    base: String,
    ws_base: String,
    http: reqwest::Client,
    tally: Arc<Tally>,
    deadline: Instant,
    think: Duration,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a player's session stopped early: the error code to count.
struct Failed(String);

impl Failed {
    fn new(code: impl Into<String>) -> Self {
        Failed(code.into())
    }
}

struct Player {
    ctx: Arc<Ctx>,
    socket: Socket,
    me: String,
    mode: String,
    rng: ChaCha8Rng,
    /// Numbers message ids and request ids.
    next_id: u64,
    /// The matches this session played to the end: a status naming one of
    /// them as playing is stale (the matchmaker has not heard of its end
    /// yet), not a new match.
    finished: HashSet<String>,
}

/// The match as this player knows it.
#[derive(Default)]
struct Table {
    seq: u64,
    turn: Option<String>,
    turn_score: i64,
    finished: bool,
}

impl Table {
    fn apply_snapshot(&mut self, snapshot: &Value) {
        let seq = snapshot["seq"].as_u64().unwrap_or(0);
        if seq < self.seq {
            return;
        }
        self.seq = seq;
        self.finished = snapshot["finished"].as_bool().unwrap_or(false);
        self.turn = snapshot["turn"].as_str().map(str::to_owned);
        self.turn_score = snapshot["view"]["turn_score"].as_i64().unwrap_or(0);
    }

    fn apply_event(&mut self, event: &Value, me: &str) {
        let seq = event["seq"].as_u64().unwrap_or(0);
        if seq <= self.seq {
            return;
        }
        self.seq = seq;
        match event["type"].as_str() {
            Some("turn_started") => {
                self.turn = event["player"].as_str().map(str::to_owned);
                self.turn_score = 0;
            }
            Some("turn_passed") => {
                self.turn = event["to"].as_str().map(str::to_owned);
                self.turn_score = 0;
            }
            Some("turn_score_changed") if event["player"] == me => {
                self.turn_score = event["total"].as_i64().unwrap_or(0);
            }
            Some("game_over") => {
                self.finished = true;
                self.turn = None;
            }
            _ => {}
        }
    }
}

impl Player {
    /// Signs in, connects and plays until the run is over; failures are
    /// counted, and the player starts over with a new session while there
    /// is time.
    async fn start(ctx: Arc<Ctx>, n: u64, mode: String) {
        let mut rng = ChaCha8Rng::seed_from_u64(n);
        while Instant::now() < ctx.deadline {
            let token = match sign_in(&ctx, &mut rng).await {
                Ok(token) => token,
                Err(Failed(code)) => {
                    ctx.tally.error(&code);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let (socket, me) = match connect(&ctx, &token, &mut rng).await {
                Ok(connected) => connected,
                Err(Failed(code)) => {
                    ctx.tally.error(&code);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut player = Player {
                ctx: ctx.clone(),
                socket,
                me,
                mode: mode.clone(),
                rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
                next_id: 0,
                finished: HashSet::new(),
            };
            match player.play_until_done().await {
                Ok(()) => {
                    let _ = player.socket.close(None).await;
                    return;
                }
                Err(Failed(code)) => {
                    ctx.tally.error(&code);
                    let _ = player.socket.close(None).await;
                }
            }
        }
    }

    async fn play_until_done(&mut self) -> Result<(), Failed> {
        while Instant::now() < self.ctx.deadline {
            let Some(match_id) = self.queue().await? else {
                return Ok(());
            };
            self.play(&match_id).await?;
            self.finished.insert(match_id);
            self.ctx
                .tally
                .matches_finished
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    async fn send(&mut self, message: Value) -> Result<(), Failed> {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .map_err(|_| Failed::new("disconnected"))
    }

    /// The next JSON message from the gateway.
    async fn next(&mut self, within: Duration) -> Result<Value, Failed> {
        loop {
            let frame = tokio::time::timeout(within, self.socket.next())
                .await
                .map_err(|_| Failed::new("stalled"))?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text).map_err(|_| Failed::new("bad_server_json"));
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    return Err(Failed(format!("closed_{code}")));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Failed::new("disconnected")),
            }
        }
    }

    /// Joins the quick queue and waits for a match: its id, or `None` if
    /// the run ended first (the ticket is withdrawn).
    async fn queue(&mut self) -> Result<Option<String>, Failed> {
        let sent = Instant::now();
        let join_id = format!("j{}", self.id());
        let join = json!({"type": "join", "id": join_id, "mode": self.mode, "kind": "quick"});
        self.send(join.clone()).await?;
        let leave_id = format!("l{}", self.id());
        let status_id = format!("s{}", self.id());
        let mut leaving = false;
        let mut backoff = Backoff::new();
        loop {
            // Time is up: withdraw the ticket, unless a match beat us to it.
            // (Status pushes come every second while queued, so this runs.)
            if !leaving && Instant::now() >= self.ctx.deadline {
                self.send(json!({"type": "leave", "id": leave_id})).await?;
                leaving = true;
            }
            let message = self.next(STALL).await?;
            let id = message["id"].as_str();
            let found = match message["type"].as_str() {
                Some("queue") => match QueueAnswer::read(&message["status"]) {
                    QueueAnswer::Playing(m) if !self.finished.contains(m) => Some(m),
                    // Left: nothing to wait for.
                    QueueAnswer::Idle if id == Some(leave_id.as_str()) => return Ok(None),
                    // Too late to leave (a match is being made) or the
                    // ticket went back to the queue: ask again shortly.
                    // The match, if one comes, is played.
                    _ if id == Some(leave_id.as_str()) => {
                        tokio::time::sleep(ASK_AGAIN).await;
                        leaving = false;
                        None
                    }
                    // No ticket (the join was refused because the last
                    // match had not ended yet, and now it has): join again.
                    QueueAnswer::Idle | QueueAnswer::Playing(_)
                        if id == Some(status_id.as_str()) && !leaving =>
                    {
                        tokio::time::sleep(ASK_AGAIN).await;
                        self.send(join.clone()).await?;
                        None
                    }
                    // Queued or matching: pushes follow.
                    _ => None,
                },
                Some("match_found") => message["match_id"].as_str(),
                Some("error") if id == Some(join_id.as_str()) || id == Some(status_id.as_str()) => {
                    match message["error"]["code"].as_str() {
                        // The last match's end is still on its way to the
                        // matchmaker, or a match is being made for us (its
                        // notice may be lost): ask what we are doing.
                        Some("in_match" | "matching") => {
                            tokio::time::sleep(ASK_AGAIN).await;
                            self.send(json!({"type": "status", "id": status_id}))
                                .await?;
                            None
                        }
                        code if retryable(code) => {
                            let code = code.unwrap_or("error");
                            backoff.wait(&mut self.rng, &self.ctx.tally, code).await?;
                            self.send(join.clone()).await?;
                            None
                        }
                        code => return Err(Failed::new(code.unwrap_or("error"))),
                    }
                }
                Some("error")
                    if id == Some(leave_id.as_str())
                        && retryable(message["error"]["code"].as_str()) =>
                {
                    let code = message["error"]["code"].as_str().unwrap_or("error");
                    backoff.wait(&mut self.rng, &self.ctx.tally, code).await?;
                    leaving = false;
                    None
                }
                Some("error") => {
                    return Err(Failed::new(
                        message["error"]["code"].as_str().unwrap_or("error"),
                    ));
                }
                _ => None,
            };
            if let Some(match_id) = found {
                let match_id = match_id.to_owned();
                self.ctx
                    .tally
                    .match_wait_us
                    .lock()
                    .map(|mut s| s.record(u64::from(micros(sent.elapsed()))))
                    .ok();
                if let Ok(mut matches) = self.ctx.tally.matches.lock() {
                    matches.insert(match_id.clone());
                }
                return Ok(Some(match_id));
            }
        }
    }

    /// Plays `match_id` to its end (the session follows it on its own).
    async fn play(&mut self, match_id: &str) -> Result<(), Failed> {
        let mut table = Table::default();
        loop {
            if table.finished {
                return Ok(());
            }
            if table.turn.as_deref() == Some(self.me.as_str()) {
                let think = self
                    .ctx
                    .think
                    .mul_f64(0.5 + (self.rng.next_u32() as f64 / u32::MAX as f64));
                self.absorb_for(match_id, &mut table, think).await?;
                if table.finished || table.turn.as_deref() != Some(self.me.as_str()) {
                    continue;
                }
                let banks = self.mode != "true-grit";
                let action = if banks && table.turn_score >= 20 {
                    "bank"
                } else {
                    "roll"
                };
                self.act(match_id, action, &mut table).await?;
            } else {
                let message = self.next(STALL).await?;
                self.absorb(match_id, &message, &mut table)?;
            }
        }
    }

    /// Takes in what the gateway pushes for `think`.
    async fn absorb_for(
        &mut self,
        match_id: &str,
        table: &mut Table,
        think: Duration,
    ) -> Result<(), Failed> {
        let until = tokio::time::Instant::now() + think;
        loop {
            let message = tokio::select! {
                message = self.next(STALL) => message?,
                _ = tokio::time::sleep_until(until) => return Ok(()),
            };
            self.absorb(match_id, &message, table)?;
        }
    }

    fn absorb(&mut self, match_id: &str, message: &Value, table: &mut Table) -> Result<(), Failed> {
        match message["type"].as_str() {
            Some("match") if message["match"]["match_id"] == match_id => {
                table.apply_snapshot(&message["match"]);
            }
            Some("event") if message["match_id"] == match_id => {
                table.apply_event(&message["event"], &self.me);
            }
            // A late answer to a queue request of before the match
            // (`in_match`: yes, we are): nothing went wrong.
            Some("error")
                if is_queue_request(message["id"].as_str())
                    && matches!(
                        message["error"]["code"].as_str(),
                        Some("in_match" | "matching")
                    ) => {}
            Some("error") => {
                return Err(Failed::new(
                    message["error"]["code"].as_str().unwrap_or("error"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    async fn act(&mut self, match_id: &str, action: &str, table: &mut Table) -> Result<(), Failed> {
        let id = self.id();
        let request_id = format!("{}-{id}", self.me);
        let sent = Instant::now();
        let act = json!({"type": "act", "id": id, "match_id": match_id,
            "action": action, "request_id": request_id});
        self.send(act.clone()).await?;
        let mut backoff = Backoff::new();
        loop {
            let message = self.next(STALL).await?;
            match message["type"].as_str() {
                // The same request id: applied at most once however often
                // it is sent.
                Some("error")
                    if message["id"] == id.as_str()
                        && retryable(message["error"]["code"].as_str()) =>
                {
                    let code = message["error"]["code"].as_str().unwrap_or("error");
                    backoff.wait(&mut self.rng, &self.ctx.tally, code).await?;
                    self.send(act.clone()).await?;
                }
                Some("acted") if message["id"] == id.as_str() => {
                    self.ctx
                        .tally
                        .action_us
                        .lock()
                        .map(|mut s| s.record(u64::from(micros(sent.elapsed()))))
                        .ok();
                    self.ctx.tally.actions.fetch_add(1, Ordering::Relaxed);
                    table.apply_snapshot(&message["reply"]["match"]);
                    return Ok(());
                }
                _ => self.absorb(match_id, &message, table)?,
            }
        }
    }
}

/// A guest token, retrying 429s after their `Retry-After` and 503s with
/// backoff.
async fn sign_in(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Result<String, Failed> {
    let mut backoff = Backoff::new();
    loop {
        let response = ctx
            .http
            .post(format!("{}/api/v1/auth/guest", ctx.base))
            .send()
            .await;
        // A connection closed unanswered (the gateway's cap on unverified
        // connections per IP, say) is tried again with backoff.
        let Ok(response) = response else {
            backoff.wait(rng, &ctx.tally, "sign_in_failed").await?;
            continue;
        };
        if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            ctx.tally.rate_limited.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(retry_after(response.headers())).await;
            continue;
        }
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            backoff.wait(rng, &ctx.tally, "sign_in_503").await?;
            continue;
        }
        if !response.status().is_success() {
            return Err(Failed(format!("sign_in_{}", response.status().as_u16())));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|_| Failed::new("sign_in_failed"))?;
        return body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failed::new("sign_in_failed"));
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let seconds = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, 10))
}

/// A signed-in WebSocket session: the socket and the user id it speaks for.
async fn connect(ctx: &Ctx, token: &str, rng: &mut ChaCha8Rng) -> Result<(Socket, String), Failed> {
    let mut backoff = Backoff::new();
    loop {
        let mut request = format!("{}/api/v1/ws", ctx.ws_base)
            .into_client_request()
            .map_err(|_| Failed::new("bad_url"))?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Failed::new("bad_token"))?;
        request.headers_mut().insert("authorization", bearer);
        // Nagle off, as browsers have it for WebSockets.
        match tokio_tungstenite::connect_async_with_config(request, None, true).await {
            Ok((mut socket, _)) => {
                let welcome = tokio::time::timeout(STALL, socket.next())
                    .await
                    .map_err(|_| Failed::new("stalled"))?;
                let Some(Ok(Message::Text(text))) = welcome else {
                    return Err(Failed::new("no_welcome"));
                };
                let welcome: Value =
                    serde_json::from_str(&text).map_err(|_| Failed::new("bad_server_json"))?;
                let me = welcome["user_id"]
                    .as_str()
                    .ok_or_else(|| Failed::new("no_welcome"))?
                    .to_owned();
                return Ok((socket, me));
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 429 =>
            {
                ctx.tally.rate_limited.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry_after(response.headers())).await;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 503 =>
            {
                backoff.wait(rng, &ctx.tally, "upgrade_503").await?;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(Failed(format!("upgrade_{}", response.status().as_u16())));
            }
            // Closed before the upgrade (the gateway's cap on unverified
            // connections per IP, a gateway restarting): again, with backoff.
            Err(_) => backoff.wait(rng, &ctx.tally, "connect_failed").await?,
        }
    }
}

/// What a `queue` status says, as far as waiting for a match goes.
#[derive(Debug, PartialEq)]
enum QueueAnswer<'a> {
    Playing(&'a str),
    Idle,
    /// Queued, matching, hosting, or something newer.
    Waiting,
}

impl<'a> QueueAnswer<'a> {
    fn read(status: &'a Value) -> Self {
        match status["state"].as_str() {
            Some("playing") => status["match_id"]
                .as_str()
                .map_or(QueueAnswer::Waiting, QueueAnswer::Playing),
            Some("idle") => QueueAnswer::Idle,
            _ => QueueAnswer::Waiting,
        }
    }
}

/// Whether a message id is one of [`Player::queue`]'s (join, leave, status).
fn is_queue_request(id: Option<&str>) -> bool {
    id.is_some_and(|id| id.starts_with(['j', 'l', 's']))
}

/// Parses a duration like `60s`, `2m`, `1m30s`, `500ms` (humantime's
/// format), or a bare number of seconds like `90`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?}: {e} (expected a duration like 60s, 2m or 500ms)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut backoff = Backoff::new();
        let mut step = BACKOFF_FIRST;
        for _ in 0..12 {
            let delay = backoff.delay(&mut rng);
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside {:?}..={step:?}",
                step / 2
            );
            step = (step * 2).min(BACKOFF_CAP);
        }
        assert_eq!(step, BACKOFF_CAP, "the cap is reached");
        assert!(backoff.delay(&mut rng) <= BACKOFF_CAP, "and never passed");
        // Jitter: players refused together come back spread out.
        let firsts: HashSet<Duration> = (0..50).map(|_| Backoff::new().delay(&mut rng)).collect();
        assert!(firsts.len() > 40, "first delays are spread: {firsts:?}");
        assert!(
            firsts
                .iter()
                .all(|d| *d >= BACKOFF_FIRST / 2 && *d <= BACKOFF_FIRST)
        );
    }

    #[test]
    fn only_unavailable_and_timeout_are_retried() {
        assert!(retryable(Some("unavailable")));
        assert!(retryable(Some("timeout")));
        for code in ["not_your_turn", "in_match", "rate_limited", "internal"] {
            assert!(!retryable(Some(code)), "{code}");
        }
        assert!(!retryable(None));
    }

    #[test]
    fn queue_answers_read_as_waiting_unless_playing_or_idle() {
        let playing = json!({"state": "playing", "match_id": "m1"});
        assert_eq!(QueueAnswer::read(&playing), QueueAnswer::Playing("m1"));
        assert_eq!(
            QueueAnswer::read(&json!({"state": "idle"})),
            QueueAnswer::Idle
        );
        // A leave answered `matching` has not left: the match is being made.
        for waiting in ["matching", "queued", "hosting", "something_new"] {
            assert_eq!(
                QueueAnswer::read(&json!({"state": waiting})),
                QueueAnswer::Waiting,
                "{waiting}"
            );
        }
        assert!(is_queue_request(Some("j12")) && is_queue_request(Some("s3")));
        assert!(!is_queue_request(Some("7")) && !is_queue_request(None));
    }

    #[test]
    fn a_table_follows_events_and_ignores_stale_ones() {
        let mut table = Table::default();
        table.apply_snapshot(
            &json!({"seq": 2, "finished": false, "turn": "a", "view": {"turn_score": 0}}),
        );
        table.apply_event(
            &json!({"seq": 3, "type": "turn_score_changed", "player": "a", "total": 8}),
            "a",
        );
        assert_eq!((table.turn.as_deref(), table.turn_score), (Some("a"), 8));
        table.apply_event(
            &json!({"seq": 3, "type": "turn_passed", "from": "a", "to": "b"}),
            "a",
        );
        assert_eq!(
            table.turn.as_deref(),
            Some("a"),
            "a repeated seq changes nothing"
        );
        table.apply_event(
            &json!({"seq": 4, "type": "turn_passed", "from": "a", "to": "b"}),
            "a",
        );
        assert_eq!((table.turn.as_deref(), table.turn_score), (Some("b"), 0));
        table.apply_snapshot(&json!({"seq": 1, "finished": true, "turn": null, "view": {}}));
        assert!(!table.finished, "an older snapshot changes nothing");
        table.apply_event(
            &json!({"seq": 5, "type": "game_over", "reason": "won", "standings": []}),
            "a",
        );
        assert!(table.finished);
    }
}
