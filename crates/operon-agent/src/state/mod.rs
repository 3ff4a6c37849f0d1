//! The desired-state engine: applies (or checks) an `operon-state/1`
//! document carried by a [`StateStep`], resource by resource.
//!
//! **The run.** The document (JSON text, parameters already substituted by
//! the server) is parsed and validated again with [`operon_state::document`];
//! a document that does not parse fails the step with the parser's text.
//! Resources go in [`Graph::order`] order; [`plan::next`] decides each: a
//! resource whose requirement failed or was skipped is `Skipped` ("requires
//! X, which failed"), the others are checked and, in apply mode, applied.
//!
//! **Each resource** is first *checked*: what differs from the declaration,
//! as short phrases ("content", "mode 0644 -> 0600", "created") plus a unified
//! diff for file content. In check mode that is all: `WouldChange` when
//! something differs, `Unchanged` otherwise, and nothing on the node is
//! touched (the guards of a `command` do run: they must be side-effect
//! free). In apply mode what differs is made right: `Changed`, `Unchanged`, or
//! `Failed` with the reason.
//!
//! **Notify.** A service notified by a resource that changed is restarted
//! after its own state is ensured ("restarted (notified by X)"), unless it
//! is declared stopped or was just started by this run. A notified command
//! runs whatever its guards say. In check mode a notified service or command
//! reports `WouldChange` ("would restart", "would run").
//!
//! **Paths.** `file`, `directory` and `line` paths (and a command's
//! `creates`) are resolved below [`StateContext::host_root`] when set, as
//! file sync does; a path with `..` is refused. Packages, services, users,
//! groups and commands act on the real system.
//!
//! **Secrets.** The document and `sources` may hold secrets: they are never
//! logged. Resources listed in `sensitive` get no diff ("content (hidden:
//! holds secure parameters)").
//!
//! **Stopping.** A cancel or the invocation's timeout stops the run between
//! resources, and kills a running `command` (its whole process group).
//!
//! **Drift.** After an apply with an association, the files of compliant
//! `file` and `line` resources are recorded (digest and mode, never the
//! content) and watched; see [`drift`].

pub mod command;
pub mod directory;
pub mod drift;
pub mod exec;
pub mod file;
pub mod fsio;
pub mod group;
pub mod line;
pub mod package;
pub mod service;
pub mod user;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use operon_proto::{ResourceReport, ResourceStatus, StateMode, StateStep};
use operon_state::document::{self, Presence, Resource, ResourceSpec};
use operon_state::plan::{self, Graph, Outcome};
use tokio::time::Instant;

use crate::output::OutputSink;
use crate::procfs::ProcessRecord;
use crate::runner::{StopReason, StopSignal};

pub use drift::{StateWatch, StateWatchHandle};

/// What the engine needs from the agent.
#[derive(Debug, Clone, Default)]
pub struct StateContext {
    /// Where `/` of the document's file paths is (see
    /// [`AgentConfig::host_root`](crate::AgentConfig::host_root)).
    pub host_root: Option<PathBuf>,
    /// Where applied files are recorded for drift watching; `None`: not recorded.
    pub watch: Option<StateWatchHandle>,
}

/// How a run may be stopped from outside, and who is told of processes.
pub struct Limits<'a> {
    pub stop: StopSignal,
    /// The invocation's (or the step's) deadline.
    pub deadline: Option<Instant>,
    /// Told of every process group a `command` resource starts (the journal).
    pub on_spawn: &'a mut (dyn FnMut(ProcessRecord) + Send),
    /// Where each summary line goes as soon as its resource is done (live
    /// views); `None`: only the returned summary.
    pub progress: Option<&'a OutputSink>,
}

impl Limits<'_> {
    /// Why the run must stop now, if it must.
    pub fn interrupted(&self) -> Option<Interrupt> {
        if let Some(reason) = *self.stop.borrow() {
            return Some(Interrupt::Stopped(reason));
        }
        match self.deadline {
            Some(at) if Instant::now() >= at => Some(Interrupt::TimedOut),
            _ => None,
        }
    }
}

/// Why a run ended before its last resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    Stopped(StopReason),
    TimedOut,
}

/// The outcome of a state step.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRun {
    /// One report per resource, in document order (the summary has them
    /// in the order they went).
    pub reports: Vec<ResourceReport>,
    /// No resource failed and the document was valid.
    pub success: bool,
    /// One line per resource, the step's stdout.
    pub summary: String,
    /// Set when a cancel or the timeout stopped the run.
    pub interrupted: Option<Interrupt>,
}

/// What a check found: empty `changes` means compliant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub changes: Vec<String>,
    pub diff: Option<String>,
    /// A note for the report (a command's output tail, why it did not run).
    pub message: Option<String>,
}

impl Found {
    pub fn compliant() -> Found {
        Found::default()
    }

    pub fn change(phrase: impl Into<String>) -> Found {
        Found {
            changes: vec![phrase.into()],
            ..Found::default()
        }
    }

    pub fn is_compliant(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Whether a resource function only looks or also makes things right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Apply,
}

/// Per-run facts shared by the resource functions.
pub struct Env<'a> {
    pub host_root: Option<&'a Path>,
    pub sources: &'a BTreeMap<String, operon_proto::Secret>,
    pub sensitive: BTreeSet<&'a str>,
}

impl Env<'_> {
    /// The document's path as this agent reaches it: absolute, no `..`, below
    /// the host root when there is one.
    pub fn node_path(&self, path: &str) -> Result<PathBuf, String> {
        node_path(self.host_root, path)
    }
}

/// `path` below `root` (when set); refuses relative paths and `..`.
pub fn node_path(root: Option<&Path>, path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') {
        return Err(format!("path {path:?} is not absolute"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("path {path:?} climbs with '..'"));
    }
    Ok(match root {
        Some(root) => root.join(path.trim_start_matches('/')),
        None => p.to_path_buf(),
    })
}

/// Run (apply or check) a state step to its end.
pub async fn run_state_step(step: &StateStep, ctx: &StateContext, limits: Limits<'_>) -> StateRun {
    let progress = limits.progress;
    let planned = document::parse(step.document.expose())
        .map_err(|err| format!("the desired-state document is refused: {err}"))
        .and_then(|document| {
            let graph = Graph::from_document(&document).map_err(|err| err.to_string())?;
            let order = graph.order().map_err(|err| err.to_string())?;
            Ok((document, graph, order))
        });
    let (document, graph, order) = match planned {
        Ok(planned) => planned,
        Err(message) => {
            let run = failed_run(message);
            send_line(progress, &run.summary).await;
            return run;
        }
    };
    let recording = match (step.mode, &step.association, &ctx.watch) {
        (StateMode::Apply, Some(association), Some(watch)) => {
            watch.begin(association);
            Some((association.as_str(), watch))
        }
        _ => None,
    };
    let env = Env {
        host_root: ctx.host_root.as_deref(),
        sources: &step.sources,
        sensitive: step.sensitive.iter().map(String::as_str).collect(),
    };
    let mode = match step.mode {
        StateMode::Apply => Mode::Apply,
        StateMode::Check => Mode::Check,
    };
    let mut limits = limits;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; document.resources.len()];
    let mut reports = Vec::new();
    let mut interrupted = None;
    for &i in &order {
        if let Some(why) = limits.interrupted() {
            interrupted = Some(why);
            break;
        }
        let resource = &document.resources[i];
        let started = std::time::Instant::now();
        let (status, found, message) = match plan::next(&graph, i, &outcomes) {
            plan::Step::Skip { because } => {
                let what = match outcomes[because] {
                    Some(Outcome::Skipped) => "was skipped",
                    _ => "failed",
                };
                (
                    ResourceStatus::Skipped,
                    Found::default(),
                    Some(format!(
                        "requires {}, which {what}",
                        document.resources[because].name
                    )),
                )
            }
            plan::Step::Apply { triggered_by } => {
                let notifiers: Vec<&str> = triggered_by
                    .iter()
                    .map(|&n| document.resources[n].name.as_str())
                    .collect();
                let result = ensure(resource, &env, mode, &notifiers, &mut limits).await;
                match result {
                    Ok(mut found) if found.is_compliant() => {
                        let message = found.message.take();
                        (ResourceStatus::Unchanged, found, message)
                    }
                    Ok(mut found) => {
                        let status = match mode {
                            Mode::Apply => ResourceStatus::Changed,
                            Mode::Check => ResourceStatus::WouldChange,
                        };
                        let message = found.message.take();
                        (status, found, message)
                    }
                    Err(Failure::Interrupted(why)) => {
                        interrupted = Some(why);
                        let message = interrupt_line(why).trim_end().to_string();
                        (ResourceStatus::Failed, Found::default(), Some(message))
                    }
                    Err(Failure::Error(message)) => {
                        (ResourceStatus::Failed, Found::default(), Some(message))
                    }
                }
            }
        };
        outcomes[i] = Some(match status {
            ResourceStatus::Unchanged => Outcome::Unchanged,
            ResourceStatus::Changed | ResourceStatus::WouldChange => Outcome::Changed,
            ResourceStatus::Failed => Outcome::Failed,
            ResourceStatus::Skipped => Outcome::Skipped,
        });
        let report = ResourceReport {
            name: resource.name.clone(),
            kind: resource.spec.type_name().to_string(),
            status,
            changes: found.changes,
            diff: found.diff,
            message,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        send_line(progress, &summary_line(&report)).await;
        reports.push((i, report));
        if interrupted.is_some() {
            break;
        }
    }
    let summary = summary(reports.iter().map(|(_, r)| r), interrupted);
    if let Some(why) = interrupted {
        send_line(progress, interrupt_line(why)).await;
    }
    // The result lists every resource in document order, those a stop
    // left unreached included.
    for (i, resource) in document.resources.iter().enumerate() {
        if outcomes[i].is_none() {
            reports.push((
                i,
                ResourceReport {
                    name: resource.name.clone(),
                    kind: resource.spec.type_name().to_string(),
                    status: ResourceStatus::Skipped,
                    changes: Vec::new(),
                    diff: None,
                    message: Some("not reached: the run was stopped".into()),
                    duration_ms: 0,
                },
            ));
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    let reports: Vec<ResourceReport> = reports.into_iter().map(|(_, r)| r).collect();
    if let Some((association, watch)) = recording {
        let files = drift::files_to_watch(&document.resources, &reports, ctx.host_root.as_deref());
        watch.record(association, files);
    }
    let failed = reports.iter().any(|r| r.status == ResourceStatus::Failed);
    StateRun {
        summary,
        success: !failed && interrupted.is_none(),
        reports,
        interrupted,
    }
}

fn failed_run(message: String) -> StateRun {
    StateRun {
        reports: Vec::new(),
        success: false,
        summary: format!("{message}\n"),
        interrupted: None,
    }
}

/// Why a resource could not be made (or checked) as declared.
#[derive(Debug)]
pub enum Failure {
    Error(String),
    Interrupted(Interrupt),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Error(message)
    }
}

/// Check, and in apply mode make right, one resource; `notifiers` are the
/// resources that changed and notify it.
async fn ensure(
    resource: &Resource,
    env: &Env<'_>,
    mode: Mode,
    notifiers: &[&str],
    limits: &mut Limits<'_>,
) -> Result<Found, Failure> {
    let name = resource.name.as_str();
    match &resource.spec {
        ResourceSpec::File(spec) => Ok(file::ensure(name, spec, env, mode)?),
        ResourceSpec::Directory(spec) => Ok(directory::ensure(spec, env, mode)?),
        ResourceSpec::Line(spec) => Ok(line::ensure(name, spec, env, mode)?),
        ResourceSpec::Package(spec) => Ok(package::ensure(spec, mode).await?),
        ResourceSpec::Service(spec) => Ok(service::ensure(spec, mode, notifiers).await?),
        ResourceSpec::User(spec) => Ok(user::ensure(spec, mode).await?),
        ResourceSpec::Group(spec) => Ok(group::ensure(spec, mode).await?),
        ResourceSpec::Command(spec) => command::ensure(spec, env, mode, notifiers, limits).await,
    }
}

/// `present`/`absent` for messages.
pub fn presence_word(presence: Presence) -> &'static str {
    match presence {
        Presence::Present => "present",
        Presence::Absent => "absent",
    }
}

/// Octal mode as people write it: `0644`.
pub fn mode_text(mode: u32) -> String {
    format!("{mode:04o}")
}

async fn send_line(progress: Option<&OutputSink>, line: &str) {
    if let Some(sink) = progress {
        sink.send(operon_proto::OutputStream::Stdout, line.as_bytes())
            .await;
    }
}

/// The summary's last line when the run was stopped.
fn interrupt_line(why: Interrupt) -> &'static str {
    match why {
        Interrupt::TimedOut => "stopped: the timeout was reached\n",
        Interrupt::Stopped(StopReason::Cancelled) => "stopped: cancelled\n",
        Interrupt::Stopped(StopReason::AgentStopping) => "stopped: the agent is stopping\n",
    }
}

/// One line per resource: `file app-conf: changed (content, mode 0644 -> 0600)`.
pub fn summary<'a>(
    reports: impl IntoIterator<Item = &'a ResourceReport>,
    interrupted: Option<Interrupt>,
) -> String {
    let mut out: String = reports.into_iter().map(summary_line).collect();
    if let Some(why) = interrupted {
        out.push_str(interrupt_line(why));
    }
    out
}

/// The summary line of one resource, newline included.
pub fn summary_line(report: &ResourceReport) -> String {
    let status = match report.status {
        ResourceStatus::Unchanged => "unchanged",
        ResourceStatus::Changed => "changed",
        ResourceStatus::WouldChange => "would change",
        ResourceStatus::Failed => "failed",
        ResourceStatus::Skipped => "skipped",
    };
    let mut out = format!("{} {}: {status}", report.kind, report.name);
    if !report.changes.is_empty() {
        out.push_str(&format!(" ({})", report.changes.join(", ")));
    }
    // Why it failed or was skipped; one line per resource.
    if matches!(
        report.status,
        ResourceStatus::Failed | ResourceStatus::Skipped
    ) && let Some(first) = report.message.as_deref().and_then(|m| m.lines().next())
    {
        out.push_str(&format!(": {first}"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod system_tests;
#[cfg(test)]
mod tests;
