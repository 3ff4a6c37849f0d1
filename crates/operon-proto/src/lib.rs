//! The agent <-> server wire protocol.
//!
//! Agents connect *outbound* to the server's WebSocket endpoint
//! ([`AGENT_CONNECT_PATH`]) with their node credential as a bearer token, and the
//! two sides exchange JSON text frames, one [`AgentMessage`] or [`ServerMessage`]
//! per frame. WebSocket alone guarantees no delivery, so the protocol carries its
//! own guarantees:
//!
//! - **Commands are idempotent by invocation id.** The server (re)sends
//!   [`ServerMessage::Run`] for every invocation it believes is in progress on a
//!   node each time that node connects. The agent keeps a journal on disk and
//!   never runs the same invocation id twice: a repeat of a finished invocation
//!   makes it resend the result; a repeat of one interrupted by an agent restart
//!   is answered with a failure, never a second run.
//! - **Results are kept until acknowledged.** The agent writes a
//!   [`CommandResult`] to disk before sending it and deletes it only on
//!   [`ServerMessage::ResultAck`], which the server sends after the result is
//!   persisted. On reconnect the agent resends every unacknowledged result.
//! - **Output chunks are best effort.** [`AgentMessage::Output`] feeds live views;
//!   the authoritative (size-capped) output is in the final result.
//!
//! The first frame from the agent is [`AgentMessage::Hello`] carrying
//! [`PROTOCOL_VERSION`]; the server answers [`ServerMessage::Welcome`] or closes
//! the connection with a reason.
//!
//! # Additions within version 1
//!
//! Newer frames are announced rather than assumed, so old and new agents and
//! servers keep talking: the `Hello` lists the agent's [`capabilities`](AgentMessage::Hello)
//! (a missing list means none), and the server sends a frame an agent did
//! not announce never.
//!
//! - [`CAPABILITY_CREDENTIAL_ROTATION`]: the server may send
//!   [`ServerMessage::RotateCredential`] with a new node credential; the agent
//!   stores it durably and answers [`AgentMessage::CredentialStored`] (or
//!   [`AgentMessage::CredentialNotStored`] with a reason). The server keeps the
//!   old credential valid until that answer, or until the agent connects with
//!   the new one, so the node is never locked out.
//! - [`CAPABILITY_FILE_SYNC`]: the server may send [`ServerMessage::SyncFile`]
//!   (keep this file with this content) and [`ServerMessage::SyncForget`]
//!   (stop keeping it); the agent answers every `SyncFile` with
//!   [`AgentMessage::SyncApplied`] and reports a kept file changed behind its
//!   back with [`AgentMessage::SyncDrifted`]. Parameter Store's
//!   `params sync` uses it for files that follow parameters.
//! - [`CAPABILITY_DESIRED_STATE`]: a [`Step`] may carry a [`StateStep`] (a
//!   desired-state document the agent applies or checks natively, resource by
//!   resource); the [`CommandResult`] then lists a [`ResourceReport`] per
//!   resource. The agent watches the files an association manages and reports
//!   a change made behind its back with [`AgentMessage::StateDrifted`] (again
//!   on every connection while it lasts); [`ServerMessage::StateForget`] stops
//!   the watching. A state step also carries a `script` that fails, so an agent
//!   that somehow received one without the capability fails it rather than
//!   doing something else; the server never sends it to such an agent.
//! - [`CAPABILITY_INVENTORY`]: the agent reports what is installed and
//!   running, one kind at a time ([`INVENTORY_KINDS`], plus `custom:<name>`),
//!   as [`AgentMessage::InventoryReport`] deltas against the set the server
//!   last acknowledged (`base`, the [`inventory_digest`] of that set; `None`
//!   for a whole set). The server answers [`ServerMessage::InventoryAck`]
//!   once stored, or [`ServerMessage::InventoryResync`] when it holds another
//!   base, after which the agent sends the whole set.
//! - [`CAPABILITY_METRICS`]: the agent samples its node (and the health checks
//!   and log watchers it is told about) every few seconds and sends the
//!   datapoints in batches ([`AgentMessage::Metrics`]); the server answers
//!   [`ServerMessage::MetricsAck`] once they are stored. Unacknowledged
//!   batches are kept (a bounded amount, oldest dropped first) and sent again
//!   after a reconnect; a repeated batch is stored once.
//! - [`CAPABILITY_LOGS`]: the agent ships the logs named in
//!   [`MonitorSet::shipped`] line by line in [`AgentMessage::Logs`] batches,
//!   delivered like metric batches (kept until [`ServerMessage::LogsAck`],
//!   resent after a reconnect, stored once). Announced with
//!   [`CAPABILITY_MONITORS`], which brings the set.
//! - [`CAPABILITY_SESSIONS`]: the server may open session channels (a
//!   terminal, a forwarded TCP connection) with [`ServerMessage::ChannelOpen`];
//!   their bytes travel as *binary* frames with a window per channel
//!   ([`session`] has the framing and the flow-control rules).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod deny;
pub mod session;

pub use session::{CAPABILITY_SESSIONS, ChannelFrame, ChannelOpen, ChannelTarget};

/// Version of this protocol. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket endpoint agents connect to.
pub const AGENT_CONNECT_PATH: &str = "/v1/agent/connect";

/// The HTTP endpoint where an enrollment token is exchanged for a node credential.
pub const AGENT_ENROLL_PATH: &str = "/v1/agent/enroll";

/// Default seconds between agent heartbeats.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 5;

/// A side considers the link dead after this many heartbeat intervals of silence.
pub const MISSED_HEARTBEATS_BEFORE_DEAD: u64 = 3;

/// Capability: the agent understands [`ServerMessage::RotateCredential`].
pub const CAPABILITY_CREDENTIAL_ROTATION: &str = "credential_rotation";

/// Capability: the agent keeps files in sync ([`ServerMessage::SyncFile`]).
pub const CAPABILITY_FILE_SYNC: &str = "file_sync";

/// Capability: the agent applies desired-state steps ([`StateStep`]).
pub const CAPABILITY_DESIRED_STATE: &str = "desired_state";

/// Every capability this build of the agent announces in its `Hello`.
pub const AGENT_CAPABILITIES: &[&str] = &[
    CAPABILITY_CREDENTIAL_ROTATION,
    CAPABILITY_FILE_SYNC,
    CAPABILITY_DESIRED_STATE,
    CAPABILITY_INVENTORY,
    CAPABILITY_METRICS,
    CAPABILITY_MONITORS,
    CAPABILITY_LOGS,
    CAPABILITY_SESSIONS,
];

/// Capability: the agent sends [`AgentMessage::Metrics`] and understands
/// [`ServerMessage::MetricsAck`].
pub const CAPABILITY_METRICS: &str = "metrics";

/// Capability: the agent runs the health checks and log watchers of
/// [`ServerMessage::Monitors`] and reports them as metrics (so it also
/// announces [`CAPABILITY_METRICS`]).
pub const CAPABILITY_MONITORS: &str = "monitors";

/// Capability: the agent ships the logs named in [`MonitorSet::shipped`]
/// as [`AgentMessage::Logs`] and understands [`ServerMessage::LogsAck`]
/// (so it also announces [`CAPABILITY_MONITORS`]).
pub const CAPABILITY_LOGS: &str = "logs";

/// Capability: the agent sends [`AgentMessage::InventoryReport`] and
/// understands [`ServerMessage::InventoryAck`] and [`ServerMessage::InventoryResync`].
pub const CAPABILITY_INVENTORY: &str = "inventory";

/// The built-in inventory kinds; custom ones are `custom:<file stem>`.
pub const INVENTORY_KINDS: &[&str] = &[
    "os",
    "packages",
    "services",
    "users",
    "groups",
    "interfaces",
    "ports",
];

/// Whether `kind` names an inventory kind: a built-in one or
/// `custom:<name>` (letters, digits, `-`, `_`, `.`; 1 to 64 characters).
pub fn valid_inventory_kind(kind: &str) -> bool {
    if INVENTORY_KINDS.contains(&kind) {
        return true;
    }
    match kind.strip_prefix("custom:") {
        Some(name) => {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        }
        None => false,
    }
}

/// One inventory entry: a package, a service, a user, a listening port...
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct InventoryItem {
    /// Unique within its kind (packages: the name; ports: `tcp/0.0.0.0:22`).
    pub key: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A change of one kind of inventory (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InventoryDelta {
    pub kind: String,
    /// Digest of the set this delta applies to; `None`: `upserts` is the whole set.
    pub base: Option<String>,
    /// [`inventory_digest`] of the set once the delta is applied.
    pub digest: String,
    /// Items added or changed (the whole item).
    #[serde(default)]
    pub upserts: Vec<InventoryItem>,
    /// Keys of items gone.
    #[serde(default)]
    pub removals: Vec<String>,
    pub at: UnixMillis,
}

/// Hex SHA-256 over the canonical form of a set: items sorted by key, each
/// `key`, then `attr=value` pairs in order, fields separated by `\0`, items by `\n`,
/// every string length-prefixed so no two sets share a form.
pub fn inventory_digest<'a>(items: impl IntoIterator<Item = &'a InventoryItem>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&InventoryItem> = items.into_iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut hasher = Sha256::new();
    let mut put = |text: &str| {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    };
    for item in sorted {
        put(&item.key);
        put(&item.attributes.len().to_string());
        for (name, value) in &item.attributes {
            put(name);
            put(value);
        }
    }
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch, UTC.
pub type UnixMillis = i64;

/// Request body of `POST /v1/agent/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollRequest {
    /// The one-time enrollment token printed by `operon enroll-tokens create`.
    pub enroll_token: String,
    /// Desired node name; the server falls back to the hostname.
    pub name: Option<String>,
    /// Tags the node asks for, merged with (and overridden by) the token's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub inventory: Inventory,
}

/// Response body of a successful enrollment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollResponse {
    pub node_id: String,
    pub name: String,
    /// The node's own secret credential. The server keeps only its hash.
    pub credential: String,
}

/// What a node is: reported at enrollment and on every connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Inventory {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub agent_version: String,
}

/// Frames sent by the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First frame on every connection.
    Hello {
        protocol_version: u32,
        inventory: Inventory,
        /// Optional frames this agent understands (see the module docs);
        /// absent from older agents, which means none.
        #[serde(default)]
        capabilities: Vec<String>,
    },
    /// Sent every heartbeat interval; the server answers [`ServerMessage::HeartbeatAck`].
    Heartbeat { seq: u64 },
    /// The agent accepted a [`RunCommand`] and started its first step.
    Started {
        invocation_id: String,
        started_at: UnixMillis,
    },
    /// Live output. Best effort: the final result carries the stored output.
    Output {
        invocation_id: String,
        stream: OutputStream,
        data: String,
    },
    /// The final result of an invocation. Resent until acknowledged.
    Finished(CommandResult),
    /// The credential of [`ServerMessage::RotateCredential`] is on disk
    /// (written atomically, fsynced) and used from now on.
    CredentialStored { rotation_id: String },
    /// The agent could not store the new credential and keeps the old one.
    CredentialNotStored { rotation_id: String, reason: String },
    /// The outcome of a [`ServerMessage::SyncFile`] (sent for every one).
    SyncApplied(SyncReport),
    /// A kept file no longer has the content last applied (edited by hand,
    /// replaced or removed). Sent once per drift; the server answers with
    /// the content again ([`ServerMessage::SyncFile`]).
    SyncDrifted {
        sync_id: String,
        path: String,
        /// The digest last applied.
        expected_digest: String,
        /// The digest found; `None` when the file is gone.
        found_digest: Option<String>,
        at: UnixMillis,
    },
    /// A file managed by an association's last apply no longer is as that
    /// run left it (sent when seen, and on every connection while it lasts).
    StateDrifted(StateDrift),
    /// A change of one kind of inventory (agents announcing
    /// [`CAPABILITY_INVENTORY`]); answered by [`ServerMessage::InventoryAck`]
    /// or [`ServerMessage::InventoryResync`].
    InventoryReport(InventoryDelta),
    /// Datapoints sampled on the node (agents announcing
    /// [`CAPABILITY_METRICS`]); answered by [`ServerMessage::MetricsAck`].
    Metrics(MetricBatch),
    /// Log lines the node ships (agents announcing [`CAPABILITY_LOGS`]);
    /// answered by [`ServerMessage::LogsAck`].
    Logs(LogBatch),
    /// A [`ServerMessage::ChannelOpen`] succeeded: data may flow.
    ChannelOpened { channel: u32 },
    /// A channel ended (sent after its last data and end-of-stream, on the
    /// same ordered queue), or could not be opened (`error` says why):
    /// the program's exit status (128 + signal when a signal ended it), or
    /// none for a TCP connection.
    ChannelClosed {
        channel: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Log lines from one node, in one frame. Like metric batches: kept until
/// acknowledged (bounded), sent again after a reconnect, stored once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogBatch {
    pub seq: u64,
    pub entries: Vec<LogEntry>,
}

/// One log line, structured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub at: UnixMillis,
    /// `file:/var/log/app.log` or `journal:nginx.service` (`journal:` for
    /// the whole journal).
    pub source: String,
    /// `critical`, `error`, `warning`, `info` or `debug` when the line says
    /// (see [`log_level`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Log levels from most to least severe; a query for a level includes
/// the more severe ones.
pub const LOG_LEVELS: &[&str] = &["critical", "error", "warning", "info", "debug"];

/// The level a log line states, read from the words servers commonly
/// write (`ERROR`, `[warn]`, `level=info`, `CRITICAL`, `FATAL`, `panic`):
/// the first such word decides. `None` when it states none.
pub fn log_level(line: &str) -> Option<&'static str> {
    for word in line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(12)
    {
        let level = match word.to_ascii_lowercase().as_str() {
            "critical" | "crit" | "fatal" | "emerg" | "emergency" | "alert" | "panic" => "critical",
            "error" | "err" | "severe" => "error",
            "warning" | "warn" => "warning",
            "info" | "notice" => "info",
            "debug" | "trace" => "debug",
            _ => continue,
        };
        return Some(level);
    }
    None
}

/// The level of a syslog/journal priority (0 emerg .. 7 debug).
pub fn priority_level(priority: u8) -> &'static str {
    match priority {
        0..=2 => "critical",
        3 => "error",
        4 => "warning",
        5 | 6 => "info",
        _ => "debug",
    }
}

/// Datapoints from one node, in one frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricBatch {
    /// Increases by one per batch of this agent process (starting at a
    /// random value each start), so the server can tell a resent batch.
    pub seq: u64,
    pub points: Vec<MetricPoint>,
}

/// One datapoint: a metric (with its dimensions) at an instant.
///
/// Names are dotted (`cpu.used`, `mem.used_percent`, `disk.used_percent`,
/// `net.rx_bytes_per_sec`, `log.matches`); dimensions say which instance
/// (`{"mount": "/"}`, `{"interface": "eth0"}`, `{"check": "app-http"}`).
/// The node itself is not a dimension: the link says which node sent it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    pub at: UnixMillis,
    pub value: f64,
    /// `Percent`, `Bytes`, `Bytes/Second`, `Count`, `Seconds`, ... (CloudWatch's unit names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A managed file changed since the association's last apply on this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateDrift {
    pub association: String,
    /// The resource that manages the file.
    pub resource: String,
    pub path: String,
    /// What changed, for people ("content changed", "removed", "mode 0644, expected 0600").
    pub detail: String,
    pub at: UnixMillis,
}

/// Frames sent by the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to [`AgentMessage::Hello`].
    Welcome {
        node_id: String,
        name: String,
        protocol_version: u32,
        heartbeat_secs: u64,
    },
    HeartbeatAck {
        seq: u64,
    },
    /// Run (or, if already known to the agent, report on) an invocation.
    Run(RunCommand),
    /// Stop a running invocation; the agent reports it as `Cancelled`.
    Cancel {
        invocation_id: String,
    },
    /// The server has persisted this result; the agent may forget it.
    ResultAck {
        invocation_id: String,
    },
    /// Replace the node credential with `credential` (sent only to agents
    /// announcing [`CAPABILITY_CREDENTIAL_ROTATION`]). The old one stays valid
    /// until the agent answers [`AgentMessage::CredentialStored`].
    RotateCredential {
        rotation_id: String,
        credential: Secret,
    },
    /// Keep `path` with exactly this content (sent only to agents announcing
    /// [`CAPABILITY_FILE_SYNC`]); answered by [`AgentMessage::SyncApplied`].
    SyncFile(SyncFile),
    /// Stop keeping the file of `sync_id` (the file itself is left as it is).
    SyncForget {
        sync_id: String,
    },
    /// Stop watching the files of `association` on this node (deleted, or the
    /// node is no longer a target); the files themselves are left as they are.
    StateForget {
        association: String,
    },
    /// The server stored the inventory of `kind` as of `digest`.
    InventoryAck {
        kind: String,
        digest: String,
    },
    /// The server holds another base for `kind`: send the whole set.
    InventoryResync {
        kind: String,
    },
    /// The server stored metric batch `seq`; the agent may forget it.
    MetricsAck {
        seq: u64,
    },
    /// The server stored log batch `seq`; the agent may forget it.
    LogsAck {
        seq: u64,
    },
    /// The whole set of health checks and log watchers this node runs
    /// (sent only to agents announcing [`CAPABILITY_MONITORS`], after every
    /// `Welcome` and whenever the set changes). It replaces the previous
    /// set: what is not in it stops.
    Monitors(MonitorSet),
    /// Open a session channel (sent only to agents announcing
    /// [`CAPABILITY_SESSIONS`]); answered by [`AgentMessage::ChannelOpened`]
    /// or [`AgentMessage::ChannelClosed`].
    ChannelOpen(ChannelOpen),
    /// The client's terminal changed size (terminal channels).
    ChannelResize {
        channel: u32,
        cols: u16,
        rows: u16,
    },
    /// End a channel now: hang up the terminal (SIGHUP to its process
    /// group, SIGKILL after a grace period) or reset the connection. The
    /// agent still answers [`AgentMessage::ChannelClosed`].
    ChannelClose {
        channel: u32,
        reason: String,
    },
}

/// What a node watches besides its own resources ([`CAPABILITY_MONITORS`]).
///
/// Results come back as metrics in [`AgentMessage::Metrics`]:
/// `check.healthy` (1 healthy, 0 not; unit `Count`) and `check.latency_ms`
/// (the probe's time whatever its outcome; unit `Milliseconds`) after every
/// run, with dimension `check`, and `log.matches` (lines matching in the
/// sampling interval, 0 included; unit `Count`) with dimension `watcher`. A
/// watcher that cannot read its source sends no datapoint rather than 0.
/// Names are unique per kind within a set; the agent keeps the first of a
/// repeated name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorSet {
    #[serde(default)]
    pub checks: Vec<HealthCheck>,
    #[serde(default)]
    pub watchers: Vec<LogWatcher>,
    /// Logs shipped to the server ([`CAPABILITY_LOGS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipped: Vec<LogShipping>,
}

/// A log the agent ships line by line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogShipping {
    pub name: String,
    pub source: LogSource,
}

/// A probe run every `interval_secs`, failing when it takes longer than
/// `timeout_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthCheck {
    pub name: String,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub probe: Probe,
}

/// What a health check looks at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Probe {
    /// Healthy when `systemctl is-active UNIT` says `active`.
    Systemd { unit: String },
    /// Healthy when a process whose name (`/proc/PID/comm`) or first
    /// argument's file name equals `name` runs.
    Process { name: String },
    /// Healthy when a TCP connection to `host:port` opens.
    Tcp { host: String, port: u16 },
    /// Healthy when `GET url` answers `expect_status` (any 2xx or 3xx when
    /// absent) and, if given, the body matches `body_regex`.
    Http {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_regex: Option<String>,
    },
    /// Healthy when `/bin/sh -c COMMAND`, run as `run_as`, exits 0.
    Command { command: String, run_as: String },
}

/// Count the lines of a log that match `pattern` (a regular expression).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogWatcher {
    pub name: String,
    pub source: LogSource,
    pub pattern: String,
}

/// Where a log watcher reads: a file it follows (across rotation and
/// truncation, from its end when first seen) or the systemd journal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogSource {
    File {
        path: String,
    },
    Journal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
}

/// A file the agent keeps equal to what the server says.
///
/// The agent writes it only when its bytes, mode or owner differ: to a
/// temporary file in the same directory (created with `mode`, owned as
/// asked, fsynced), renamed over `path`, the directory fsynced, so readers
/// see the old file or the new one, never half. When it wrote, it then
/// runs `on_change` once (with `/bin/sh -c`, its own process group,
/// `on_change_timeout_secs`), journaling that it is owed before the rename
/// so a crash in between still runs it once at the next start. It remembers
/// (in its state directory, digests only, never the content) what it
/// applied, and watches the file: a change is reported with
/// [`AgentMessage::SyncDrifted`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyncFile {
    /// Names the sync on this node (the server's sync name).
    pub sync_id: String,
    /// Absolute path of the file.
    pub path: String,
    /// The whole content; may hold decrypted secrets (never logged).
    pub content: Secret,
    /// Hex SHA-256 of `content`.
    pub digest: String,
    /// Permission bits (`0o600`).
    pub mode: u32,
    /// User and group names to own the file; unchanged when absent.
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Run once after the file was (re)written.
    pub on_change: Option<String>,
    pub on_change_timeout_secs: u64,
}

/// What the agent did with a [`SyncFile`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyncReport {
    pub sync_id: String,
    /// The digest in place now (the one sent, unless `error`).
    pub digest: String,
    /// The file was written (it differed or did not exist).
    pub changed: bool,
    /// The file had been changed since the agent last applied it (by hand,
    /// or by another program), and was put back.
    pub drift: bool,
    /// The exit code of `on_change` when it ran (`None`: not run, or killed
    /// at its timeout, see `on_change_output`).
    pub on_change_exit: Option<i32>,
    /// The last 4 KiB of `on_change`'s output (stdout then stderr).
    pub on_change_output: Option<String>,
    /// Why the file could not be written (it is as it was).
    pub error: Option<String>,
    pub at: UnixMillis,
}

/// A secret on the wire: serialised as the plain string, but `Debug` never
/// shows it, so logging a frame cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One command to run on one node: the document's steps, already resolved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunCommand {
    /// Unique per (command, node). The agent's idempotency key.
    pub invocation_id: String,
    pub command_id: String,
    /// Steps run in order; the first failing step stops the run.
    pub steps: Vec<Step>,
    /// Execution timeout for the whole invocation, in seconds.
    pub timeout_secs: u64,
    /// Default working directory for steps that name none.
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run as this local user (the agent must be root to switch).
    pub user: Option<String>,
    /// Maximum bytes of stdout and of stderr kept in the result.
    pub output_cap_bytes: usize,
}

/// One `aws:runShellScript`-style step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub name: String,
    /// Shell script run with `/bin/sh`.
    pub script: String,
    pub working_directory: Option<String>,
    /// Per-step timeout in seconds (bounded by the invocation's timeout).
    pub timeout_secs: Option<u64>,
    /// A desired-state step: applied natively by agents announcing
    /// [`CAPABILITY_DESIRED_STATE`] instead of running `script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateStep>,
}

/// The script a state step carries for agents that do not understand it.
pub const STATE_STEP_FALLBACK_SCRIPT: &str =
    "echo 'this agent cannot apply desired-state documents; upgrade it' >&2; exit 2";

/// Apply (or check) a desired-state document on the node.
///
/// The document is `operon-state/1` JSON with every `{{ parameter }}`
/// substituted and every Parameter Store reference resolved by the server;
/// `sources` holds the content of `file` resources that name a `source`.
/// The agent parses and validates it again (with `operon-state`), applies the
/// resources in dependency order, and reports each in the result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateStep {
    /// The association this run belongs to (`None` for a one-off run); the
    /// agent watches the files it manages under this name.
    pub association: Option<String>,
    pub mode: StateMode,
    /// The document as JSON text; may hold secrets (never logged).
    pub document: Secret,
    /// Content of `file` resources with a `source`, by resource name.
    #[serde(default)]
    pub sources: BTreeMap<String, Secret>,
    /// Resources whose content holds secrets: no diff is reported for them.
    #[serde(default)]
    pub sensitive: Vec<String>,
}

/// Whether a state step changes the node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StateMode {
    /// Make every resource as declared.
    Apply,
    /// Only report what would change (Salt's `test=True`).
    Check,
}

/// What happened to one resource of a state step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceReport {
    /// The resource's name in the document.
    pub name: String,
    /// Its type (`file`, `package`, ...).
    pub kind: String,
    pub status: ResourceStatus,
    /// What differed, one short phrase each ("content", "mode 0644 -> 0600",
    /// "created", "restarted (notified by app-conf)").
    #[serde(default)]
    pub changes: Vec<String>,
    /// A unified diff of a file's content (not for sensitive resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u64,
}

/// The outcome of one resource.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Already as declared.
    Unchanged,
    /// Was not as declared and was made so (apply mode).
    Changed,
    /// Is not as declared; check mode left it (check mode).
    WouldChange,
    Failed,
    /// Not applied: a resource it requires failed or was skipped.
    Skipped,
}

impl ResourceStatus {
    /// Whether the resource is as declared now.
    pub fn is_compliant(self) -> bool {
        matches!(self, Self::Unchanged | Self::Changed)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Status of a command on one node, named as SSM names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum InvocationStatus {
    Pending,
    InProgress,
    Success,
    Failed,
    TimedOut,
    Cancelled,
    Undeliverable,
}

impl InvocationStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [InvocationStatus; 7] = [
        Self::Pending,
        Self::InProgress,
        Self::Success,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Undeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Success => "Success",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
            Self::Undeliverable => "Undeliverable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether no further change can happen.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::InProgress)
    }

    /// Whether this final status counts against `max-errors`.
    pub fn is_error(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut | Self::Undeliverable)
    }
}

impl std::fmt::Display for InvocationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one invocation on one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandResult {
    pub invocation_id: String,
    /// One of `Success`, `Failed`, `TimedOut`, `Cancelled`.
    pub status: InvocationStatus,
    /// Exit code of the last step run; `None` if it was killed or never started.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub started_at: Option<UnixMillis>,
    pub finished_at: UnixMillis,
    /// Human-readable reason for a non-success status.
    pub detail: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepResult>,
    /// For a desired-state step: every resource, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub name: String,
    pub status: InvocationStatus,
    pub exit_code: Option<i32>,
}

/// Encode a frame as JSON text.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serialising these plain data types cannot fail: no maps with non-string
    // keys, no custom serialisers.
    serde_json::to_string(message).expect("protocol messages always serialise")
}

/// Decode a frame, with the serde error (what and where) on bad input.
pub fn decode<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod log_level_tests {
    use super::*;

    #[test]
    fn the_first_level_word_decides() {
        let cases = [
            ("2026-12-03 ERROR payment failed", Some("error")),
            ("[warn] disk almost full", Some("warning")),
            ("level=info msg=started", Some("info")),
            ("CRITICAL OutOfMemory", Some("critical")),
            ("thread 'main' panicked at src/main.rs", None),
            ("panic: runtime error", Some("critical")),
            ("INFO retry after error", Some("info")),
            ("no level here", None),
            ("", None),
        ];
        for (line, expected) in cases {
            assert_eq!(log_level(line), expected, "{line}");
        }
        assert_eq!(priority_level(3), "error");
        assert_eq!(priority_level(6), "info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_a_type_tag() {
        let msg = ServerMessage::Cancel {
            invocation_id: "inv-1".into(),
        };
        let text = encode(&msg);
        assert_eq!(text, r#"{"type":"cancel","invocation_id":"inv-1"}"#);
        assert_eq!(decode::<ServerMessage>(&text).unwrap(), msg);
    }

    #[test]
    fn hello_without_capabilities_from_an_older_agent_still_decodes() {
        let old = r#"{"type":"hello","protocol_version":1,"inventory":{"hostname":"h","os_name":"","os_version":"","kernel":"","arch":"","cpus":1,"memory_bytes":0,"agent_version":"0"}}"#;
        match decode::<AgentMessage>(old).unwrap() {
            AgentMessage::Hello { capabilities, .. } => assert!(capabilities.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rotation_frames_round_trip() {
        let msg = ServerMessage::RotateCredential {
            rotation_id: "rot-1".into(),
            credential: Secret("onc_x".into()),
        };
        let text = encode(&msg);
        assert!(text.contains(r#""credential":"onc_x""#), "{text}");
        assert_eq!(decode::<ServerMessage>(&text).unwrap(), msg);
        assert!(!format!("{msg:?}").contains("onc_x"));
        let answer = AgentMessage::CredentialNotStored {
            rotation_id: "rot-1".into(),
            reason: "disk full".into(),
        };
        let text = encode(&answer);
        assert!(text.contains(r#""type":"credential_not_stored""#), "{text}");
        assert_eq!(decode::<AgentMessage>(&text).unwrap(), answer);
    }

    #[test]
    fn inventory_frames_round_trip_and_digests_ignore_order() {
        let item = |key: &str, version: &str| InventoryItem {
            key: key.into(),
            attributes: BTreeMap::from([("version".to_owned(), version.to_owned())]),
        };
        let a = [item("openssl", "3.0.2"), item("bash", "5.2")];
        let b = [item("bash", "5.2"), item("openssl", "3.0.2")];
        assert_eq!(inventory_digest(&a), inventory_digest(&b));
        assert_ne!(inventory_digest(&a), inventory_digest(&a[..1]));
        assert_ne!(
            inventory_digest(&[item("a", "bc")]),
            inventory_digest(&[item("ab", "c")])
        );
        assert_eq!(inventory_digest(&[]).len(), 64);
        let msg = AgentMessage::InventoryReport(InventoryDelta {
            kind: "packages".into(),
            base: None,
            digest: inventory_digest(&a),
            upserts: a.to_vec(),
            removals: vec![],
            at: 1,
        });
        let text = encode(&msg);
        assert!(text.contains(r#""type":"inventory_report""#), "{text}");
        assert_eq!(decode::<AgentMessage>(&text).unwrap(), msg);
        let ack = ServerMessage::InventoryResync {
            kind: "custom:apps".into(),
        };
        assert_eq!(decode::<ServerMessage>(&encode(&ack)).unwrap(), ack);
        assert!(valid_inventory_kind("packages"));
        assert!(valid_inventory_kind("custom:my-apps_1.x"));
        assert!(!valid_inventory_kind("custom:"));
        assert!(!valid_inventory_kind("custom:a/b"));
        assert!(!valid_inventory_kind("kernel"));
    }

    #[test]
    fn unknown_frame_type_is_an_error_not_a_panic() {
        let err = decode::<AgentMessage>(r#"{"type":"launch_missiles"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn statuses_use_ssm_names_and_classify() {
        for status in InvocationStatus::ALL {
            assert_eq!(InvocationStatus::parse(status.as_str()), Some(status));
            assert_eq!(encode(&status), format!("\"{status}\""));
        }
        assert!(!InvocationStatus::InProgress.is_final());
        assert!(InvocationStatus::Undeliverable.is_error());
        assert!(!InvocationStatus::Cancelled.is_error());
    }
}
