//! One health check's task: run the probe every `interval_secs`, bounded by
//! `timeout_secs`, and emit `check.healthy` and `check.latency_ms`. A
//! process check also reports what the processes it names use:
//! `process.count`, `process.rss_bytes` and `process.cpu_percent` (of one
//! core, summed over them; from the second run on). A command check whose
//! output starts with a number reports it as `check.value`: a custom
//! metric the agent measures itself.

use std::time::Duration;

use operon_proto::{HealthCheck, MetricPoint, Probe};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::probes::{self, HttpProbe, ProbeResult};
use super::{METRIC_CHECK_HEALTHY, METRIC_CHECK_LATENCY, point};

/// A probe ready to run: the HTTP client built and its pattern compiled.
#[derive(Debug, Clone)]
pub enum ReadyProbe {
    Systemd(String),
    Process(String),
    Tcp(String, u16),
    Http(Box<HttpProbe>),
    Command { script: String, run_as: String },
}

impl ReadyProbe {
    /// Prepare `probe`; an error (a bad regular expression) names what is wrong.
    pub fn prepare(probe: &Probe, timeout: Duration) -> Result<ReadyProbe, String> {
        Ok(match probe {
            Probe::Systemd { unit } => ReadyProbe::Systemd(unit.clone()),
            Probe::Process { name } => ReadyProbe::Process(name.clone()),
            Probe::Tcp { host, port } => ReadyProbe::Tcp(host.clone(), *port),
            Probe::Http {
                url,
                expect_status,
                body_regex,
            } => ReadyProbe::Http(Box::new(HttpProbe::new(
                url,
                *expect_status,
                body_regex.as_deref(),
                timeout,
            )?)),
            Probe::Command { command, run_as } => ReadyProbe::Command {
                script: command.clone(),
                run_as: run_as.clone(),
            },
        })
    }

    /// Run the probe; a command probe also answers the value it printed.
    pub async fn run_measured(&self) -> (ProbeResult, Option<f64>) {
        match self {
            ReadyProbe::Command { script, run_as } => {
                probes::command_measured(script, run_as).await
            }
            other => (other.run().await, None),
        }
    }

    pub async fn run(&self) -> ProbeResult {
        match self {
            ReadyProbe::Systemd(unit) => probes::systemd(unit).await,
            ReadyProbe::Process(name) => probes::process(name).await,
            ReadyProbe::Tcp(host, port) => probes::tcp(host, *port).await,
            ReadyProbe::Http(http) => http.run().await,
            ReadyProbe::Command { script, run_as } => probes::command(script, run_as).await,
        }
    }
}

/// Seconds as a duration, at least one (a zero interval would spin).
pub fn secs_at_least_one(secs: u32) -> Duration {
    Duration::from_secs(u64::from(secs.max(1)))
}

/// Run `check` until the task is aborted.
pub async fn run_check(check: HealthCheck, probe: ReadyProbe, points: mpsc::Sender<MetricPoint>) {
    let timeout = secs_at_least_one(check.timeout_secs);
    let mut ticker = tokio::time::interval(secs_at_least_one(check.interval_secs));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_failure: Option<String> = None;
    let mut last_usage: Option<(probes::ProcessUsage, Instant)> = None;
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let (result, value) = match tokio::time::timeout(timeout, probe.run_measured()).await {
            Ok(answer) => answer,
            Err(_) => (
                Err(format!("no answer within {} s", timeout.as_secs())),
                None,
            ),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        log_transition(&check.name, &result, &mut last_failure);
        let healthy = if result.is_ok() { 1.0 } else { 0.0 };
        let sent = async {
            points
                .send(point(
                    METRIC_CHECK_HEALTHY,
                    "check",
                    &check.name,
                    healthy,
                    "Count",
                ))
                .await?;
            points
                .send(point(
                    METRIC_CHECK_LATENCY,
                    "check",
                    &check.name,
                    latency_ms,
                    "Milliseconds",
                ))
                .await
        };
        if sent.await.is_err() {
            return; // nobody takes points any more: the agent is stopping
        }
        if let Some(value) = value
            && points
                .send(point("check.value", "check", &check.name, value, "None"))
                .await
                .is_err()
        {
            return;
        }
        if let ReadyProbe::Process(name) = &probe
            && send_usage(&check.name, name, &mut last_usage, &points)
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Log when a check starts or stops failing (or fails otherwise), not on
/// every run.
fn log_transition(name: &str, result: &ProbeResult, last_failure: &mut Option<String>) {
    match result {
        Ok(()) if last_failure.is_some() => {
            tracing::info!(check = name, "health check is healthy again");
            *last_failure = None;
        }
        Ok(()) => {}
        Err(reason) if last_failure.as_deref() != Some(reason.as_str()) => {
            tracing::warn!(check = name, %reason, "health check is unhealthy");
            *last_failure = Some(reason.clone());
        }
        Err(_) => {}
    }
}

/// Report what the processes called `name` use.
async fn send_usage(
    check: &str,
    name: &str,
    last: &mut Option<(probes::ProcessUsage, Instant)>,
    points: &mpsc::Sender<MetricPoint>,
) -> Result<(), mpsc::error::SendError<MetricPoint>> {
    let wanted = name.to_owned();
    let Ok(usage) = tokio::task::spawn_blocking(move || probes::process_usage(&wanted)).await
    else {
        return Ok(());
    };
    let now = Instant::now();
    let page = crate::sys::page_size();
    points
        .send(point(
            "process.count",
            "check",
            check,
            usage.count as f64,
            "Count",
        ))
        .await?;
    points
        .send(point(
            "process.rss_bytes",
            "check",
            check,
            (usage.rss_pages * page) as f64,
            "Bytes",
        ))
        .await?;
    let cpu = last.and_then(|(before, at)| {
        probes::cpu_percent(
            before.cpu_ticks,
            usage.cpu_ticks,
            now.duration_since(at).as_secs_f64(),
            crate::sys::clock_ticks_per_second(),
        )
    });
    if let Some(cpu) = cpu {
        points
            .send(point("process.cpu_percent", "check", check, cpu, "Percent"))
            .await?;
    }
    *last = Some((usage, now));
    Ok(())
}
