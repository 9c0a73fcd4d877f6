//! Continuous load through the load balancer, as the service's users make it, and the check
//! that no acknowledged write was lost.
//!
//! - **The bot runtime** reads its channel's integration on every message: GETs of one
//!   integration at a steady rate.
//! - **The admin UI** reads the integration and saves it back with `If-Match` (the whole object
//!   it read, with a new description: a marker unique to that write), reloads the list and reads
//!   the history. Two of them edit the same integration, so some saves meet a 412, as the
//!   If-Match protocol means them to.
//!
//! A request fails when it gets no response (a socket error or a timeout) or a status other than
//! 2xx, except a PUT's 412. [`check_writes`] then reads the history from PostgreSQL: every 200 PUT
//! must be there, at the version its ETag named, with the marker it wrote and the status and
//! settings it read, and the final row must be the last acknowledged write.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use reqwest::header::{ETAG, IF_MATCH};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every request gets at most this long unless the plan says otherwise; more is a failure, not a
/// wait.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the load consists of.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The integration the bot reads and the admins edit.
    pub integration: &'static str,
    /// Bot runtimes, each reading once per `bot_interval`.
    pub bots: usize,
    pub bot_interval: Duration,
    /// Admin UIs, each saving (GET then PUT with If-Match) and then pausing `writer_pause`.
    pub writers: usize,
    pub writer_pause: Duration,
    /// One admin UI reading the history, and one reloading the list, at these intervals.
    pub history_interval: Duration,
    pub list_interval: Duration,
    /// Whether an admin's read after its acknowledged write must show that write (or a later
    /// one), whichever replica answers it: what a key-value store shared by every replica
    /// promises.
    pub read_your_writes: bool,
    /// How long a request may take before it counts as failed.
    pub request_timeout: Duration,
}

impl Plan {
    /// About 80 requests/s: 40 bot reads, 2 admins saving (a GET and a PUT) about 8 times a
    /// second each, history and list reads. Enough to have requests in flight at every step of a
    /// rollout, little enough for a shared 2-core machine.
    pub fn steady() -> Self {
        Self {
            integration: "facebook",
            bots: 2,
            bot_interval: Duration::from_millis(50),
            writers: 2,
            writer_pause: Duration::from_millis(100),
            history_interval: Duration::from_millis(200),
            list_interval: Duration::from_millis(250),
            read_your_writes: false,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    BotGet,
    AdminGet,
    AdminPut,
    History,
    List,
}

/// One request's fate.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// When it was sent, from the start of the load.
    pub at: Duration,
    pub took: Duration,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// `X-Served-By` (`<slot>/<port>`): which replica answered.
    pub served_by: Option<String>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        match self.status {
            None => true,
            Some(412) => self.kind != Kind::AdminPut,
            Some(status) => !(200..300).contains(&status),
        }
    }

    /// The port of the replica that answered.
    pub fn port(&self) -> Option<u16> {
        self.served_by.as_deref()?.rsplit('/').next()?.parse().ok()
    }
}

/// A PUT the load sent: its marker, and what came of it.
#[derive(Debug, Clone)]
pub struct SentWrite {
    pub marker: String,
    pub status: Option<u16>,
    /// The version the 200's ETag named.
    pub version: Option<i64>,
    pub served_by: Option<String>,
    pub at: Duration,
}

#[derive(Default)]
struct Shared {
    outcomes: Mutex<Vec<Outcome>>,
    writes: Mutex<Vec<SentWrite>>,
    /// An admin read an older version than one it had just written.
    stale_reads_after_write: Mutex<Vec<String>>,
    marks: Mutex<Vec<(Duration, String)>>,
}

/// Load running in the background until [`Load::stop`].
pub struct Load {
    started: Instant,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Load {
    pub fn start(base_url: &str, plan: &Plan) -> Self {
        let client = crate::client(plan.request_timeout);
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        let agent = |interval: Duration| Agent {
            client: client.clone(),
            base: base_url.trim_end_matches('/').to_owned(),
            item: format!("/admin/integrations/{}", plan.integration),
            shared: shared.clone(),
            stopped: stopped.clone(),
            started,
            interval,
        };
        let mut tasks = Vec::new();
        for _ in 0..plan.bots {
            tasks.push(tokio::spawn(agent(plan.bot_interval).read(Kind::BotGet)));
        }
        tasks.push(tokio::spawn(agent(plan.history_interval).read(Kind::History)));
        tasks.push(tokio::spawn(agent(plan.list_interval).read(Kind::List)));
        for writer in 0..plan.writers {
            tasks.push(tokio::spawn(agent(plan.writer_pause).write(writer, plan.read_your_writes)));
        }
        Self { started, stop, tasks, shared }
    }

    /// Names the phase that begins now, for the report.
    pub fn mark(&self, phase: impl Into<String>) {
        let phase = phase.into();
        eprintln!("fleet: {:>6.2} s  {phase}", self.started.elapsed().as_secs_f64());
        self.shared.marks.lock().unwrap().push((self.started.elapsed(), phase));
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every agent (each finishes the request it is in) and reports.
    pub async fn stop(self) -> Report {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.expect("a load agent panicked");
        }
        fn take<T>(list: &Mutex<Vec<T>>) -> Vec<T> {
            std::mem::take(&mut *list.lock().unwrap())
        }
        let mut outcomes: Vec<Outcome> = take(&self.shared.outcomes);
        outcomes.sort_by_key(|outcome| outcome.at);
        Report {
            duration: self.started.elapsed(),
            outcomes,
            writes: take(&self.shared.writes),
            stale_reads_after_write: take(&self.shared.stale_reads_after_write),
            marks: take(&self.shared.marks),
        }
    }
}

struct Agent {
    client: reqwest::Client,
    base: String,
    item: String,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    started: Instant,
    interval: Duration,
}

struct Answer {
    status: u16,
    etag: Option<i64>,
    body: Vec<u8>,
}

impl Agent {
    /// Reads `kind`'s path once per interval, at a steady rate (a late tick is not made up).
    async fn read(mut self, kind: Kind) {
        let path = match kind {
            Kind::History => format!("{}/history", self.item),
            Kind::List => "/admin/integrations".to_owned(),
            _ => self.item.clone(),
        };
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = self.stopped.changed() => break,
            }
            if *self.stopped.borrow() {
                break;
            }
            self.send(kind, self.client.get(format!("{}{path}", self.base))).await;
        }
    }

    /// An admin UI saving the integration again and again: GET, then PUT of what it read with a
    /// new description and `If-Match`.
    async fn write(mut self, writer: usize, read_your_writes: bool) {
        let url = format!("{}{}", self.base, self.item);
        let mut last_acknowledged: Option<i64> = None;
        for sequence in 0.. {
            if *self.stopped.borrow() {
                break;
            }
            let read = self.send(Kind::AdminGet, self.client.get(&url)).await;
            if let Some(Answer { status: 200, etag: Some(version), body }) = read {
                if let (true, Some(written)) = (read_your_writes, last_acknowledged) {
                    if version < written {
                        self.shared
                            .stale_reads_after_write
                            .lock()
                            .unwrap()
                            .push(format!("admin {writer} wrote version {written}, then read version {version}"));
                    }
                }
                let marker = format!("fleet admin {writer} save {sequence}");
                let mut object: Value = serde_json::from_slice(&body).unwrap_or_default();
                object["description"] = Value::String(marker.clone());
                let request = self.client.put(&url).header(IF_MATCH, format!("\"{version}\"")).json(&object);
                let at = self.started.elapsed();
                let (answer, served_by) = self.send_traced(Kind::AdminPut, request).await;
                let status = answer.as_ref().map(|answer| answer.status);
                let version = answer.as_ref().filter(|answer| answer.status == 200).and_then(|answer| answer.etag);
                if version.is_some() {
                    last_acknowledged = version;
                }
                self.shared.writes.lock().unwrap().push(SentWrite { marker, status, version, served_by, at });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.stopped.changed() => {}
            }
        }
    }

    async fn send(&self, kind: Kind, request: reqwest::RequestBuilder) -> Option<Answer> {
        self.send_traced(kind, request).await.0
    }

    async fn send_traced(&self, kind: Kind, request: reqwest::RequestBuilder) -> (Option<Answer>, Option<String>) {
        let at = self.started.elapsed();
        let sent = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let served_by = response.headers().get("x-served-by").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok());
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>((Answer { status, etag, body }, served_by))
        }
        .await;
        let took = sent.elapsed();
        let (answer, outcome) = match result {
            Ok((answer, served_by)) => {
                let outcome =
                    Outcome { kind, at, took, status: Some(answer.status), error: None, served_by: served_by.clone() };
                (Some(answer), outcome)
            }
            Err(error) => {
                let outcome = Outcome { kind, at, took, status: None, error: Some(describe(&error)), served_by: None };
                (None, outcome)
            }
        };
        let served_by = outcome.served_by.clone();
        self.shared.outcomes.lock().unwrap().push(outcome);
        (answer, served_by)
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// What the load saw.
pub struct Report {
    pub duration: Duration,
    pub outcomes: Vec<Outcome>,
    pub writes: Vec<SentWrite>,
    pub stale_reads_after_write: Vec<String>,
    pub marks: Vec<(Duration, String)>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|outcome| outcome.failed()).collect()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.outcomes.iter().filter(|outcome| outcome.kind == kind).count()
    }

    pub fn puts_with(&self, status: u16) -> usize {
        self.writes.iter().filter(|write| write.status == Some(status)).count()
    }

    /// Requests answered by the replica listening on each port.
    pub fn by_port(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for port in self.outcomes.iter().filter_map(Outcome::port) {
            *counts.entry(port).or_insert(0) += 1;
        }
        counts
    }

    /// The phase (`Load::mark`) a moment falls in.
    fn phase_at(&self, at: Duration) -> &str {
        self.marks.iter().rev().find(|(start, _)| *start <= at).map_or("warm-up", |(_, phase)| phase.as_str())
    }

    /// A few lines for the test's output: totals, per phase, and the first failures.
    pub fn summary(&self) -> String {
        let failures = self.failures();
        let latencies = |kind: Kind| {
            let mut took: Vec<f64> = self
                .outcomes
                .iter()
                .filter(|o| o.kind == kind && !o.failed())
                .map(|o| o.took.as_secs_f64() * 1000.0)
                .collect();
            took.sort_by(f64::total_cmp);
            let quantile = |q: f64| took.get(((took.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
            format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", quantile(0.5), quantile(0.99), quantile(1.0))
        };
        let mut text = format!(
            "{} requests in {:.1} s ({:.0}/s): bot GET {}, admin GET {}, PUT {} (200: {}, 412: {}), history {}, list {}; \
             failed: {}; an admin reading an older version than it had just written: {}\n",
            self.outcomes.len(),
            self.duration.as_secs_f64(),
            self.outcomes.len() as f64 / self.duration.as_secs_f64(),
            self.count(Kind::BotGet),
            self.count(Kind::AdminGet),
            self.count(Kind::AdminPut),
            self.puts_with(200),
            self.puts_with(412),
            self.count(Kind::History),
            self.count(Kind::List),
            failures.len(),
            self.stale_reads_after_write.len(),
        );
        text.push_str(&format!("  bot GET {}; PUT {}\n", latencies(Kind::BotGet), latencies(Kind::AdminPut)));
        let mut phases: Vec<(String, usize, usize)> = Vec::new();
        for outcome in &self.outcomes {
            let phase = self.phase_at(outcome.at);
            match phases.last_mut() {
                Some((name, requests, failed)) if name == phase => {
                    *requests += 1;
                    *failed += usize::from(outcome.failed());
                }
                _ => phases.push((phase.to_owned(), 1, usize::from(outcome.failed()))),
            }
        }
        for (phase, requests, failed) in phases {
            text.push_str(&format!("  {phase}: {requests} requests, {failed} failed\n"));
        }
        for failure in failures.iter().take(20) {
            text.push_str(&format!("  FAILED {failure:?} during {:?}\n", self.phase_at(failure.at)));
        }
        for stale in self.stale_reads_after_write.iter().take(10) {
            text.push_str(&format!("  STALE {stale}\n"));
        }
        text
    }
}

/// What the history says of the load's writes.
#[derive(Debug)]
pub struct WriteCheck {
    /// 200 PUTs, each found in the history at its version with its marker.
    pub acknowledged: usize,
    /// PUTs the history holds although their client got a 412: their answer was lost with a
    /// replica, the load balancer replayed them, and the replay met the version they had made.
    pub applied_answered_412: usize,
    /// PUTs the history holds although their client got no answer at all.
    pub applied_unanswered: usize,
    /// The integration's version at the end.
    pub final_version: i64,
}

/// Reads the integration's row and history (directly, from PostgreSQL) and checks them against
/// what the load's PUTs were told. Fails on a lost acknowledged write, a write no client sent, a
/// save whose history does not name the admin token it carried, or a final row that is not the
/// last acknowledged write.
pub async fn check_writes(dsn: &str, integration: &str, report: &Report) -> Result<WriteCheck> {
    let client = test_support::postgres::connect(dsn).await?;
    let rows = client
        .query(
            "SELECT version, description, status, settings, authenticated, actor FROM integration_history \
             WHERE integration_id = $1 ORDER BY version",
            &[&integration],
        )
        .await
        .context("reading the history")?;
    let history: BTreeMap<i64, String> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    // The load's saves send back the status and settings they read and change only the
    // description: every version it made holds the first version's, or a replica (of either
    // release) read them wrong and wrote that back.
    let content = |row: &tokio_postgres::Row| -> Result<(bool, Value)> {
        let settings: String = row.get(3);
        Ok((row.get(2), serde_json::from_str(&settings).with_context(|| format!("settings {settings:?}"))?))
    };
    let first = content(rows.first().context("the integration has no history")?)?;
    for row in rows.iter().filter(|row| row.get::<_, String>(1).starts_with("fleet admin ")) {
        let version: i64 = row.get(0);
        let found = content(row)?;
        ensure!(found == first, "version {version} holds status and settings {found:?}, not the {first:?} read");
        // Every save carried the admin token: whichever release wrote it, before or after the
        // migration that added `actor`, the history names the token.
        let by: (bool, Option<String>) = (row.get(4), row.get(5));
        ensure!(
            by == (true, Some("admin_token".to_owned())),
            "version {version} was written with the admin token, but the history says {by:?}"
        );
    }
    let row = client
        .query_one("SELECT version, description FROM integrations WHERE id = $1", &[&integration])
        .await
        .context("reading the row")?;
    let (final_version, final_description): (i64, String) = (row.get(0), row.get(1));

    let sent: HashMap<&str, &SentWrite> = report.writes.iter().map(|write| (write.marker.as_str(), write)).collect();
    let mut acknowledged = 0;
    let mut lost = Vec::new();
    for write in report.writes.iter().filter(|write| write.status == Some(200)) {
        let version = write.version.with_context(|| format!("a 200 PUT without an ETag: {write:?}"))?;
        match history.get(&version) {
            Some(description) if *description == write.marker => acknowledged += 1,
            other => lost.push(format!("{write:?}: the history holds {other:?} at version {version}")),
        }
    }
    ensure!(lost.is_empty(), "{} acknowledged writes lost:\n{}", lost.len(), lost.join("\n"));

    let (mut applied_answered_412, mut applied_unanswered, mut unknown) = (0, 0, Vec::new());
    for (version, description) in &history {
        if !description.starts_with("fleet admin ") {
            continue; // the seed and whatever the test wrote itself
        }
        match sent.get(description.as_str()).map(|write| write.status) {
            Some(Some(200)) => {}
            Some(Some(412)) => applied_answered_412 += 1,
            Some(None) => applied_unanswered += 1,
            Some(Some(other)) => unknown.push(format!("version {version}: {description} was answered {other}")),
            None => unknown.push(format!("version {version}: {description} was never sent")),
        }
    }
    ensure!(unknown.is_empty(), "the history holds writes no client was told of:\n{}", unknown.join("\n"));

    if let Some(last) = report.writes.iter().filter(|write| write.status == Some(200)).max_by_key(|write| write.version)
    {
        let last_version = last.version.unwrap_or_default();
        // Only writes applied after it without a 200 (their answer lost, see above) may follow it.
        let later_unacknowledged = history.range(last_version + 1..).count();
        ensure!(
            (final_version == last_version && final_description == last.marker)
                || (final_version == last_version + later_unacknowledged as i64
                    && later_unacknowledged <= applied_answered_412 + applied_unanswered),
            "the final row (version {final_version}, {final_description:?}) is not the last acknowledged write {last:?}"
        );
    }
    Ok(WriteCheck { acknowledged, applied_answered_412, applied_unanswered, final_version })
}
