//! `operon checks put|list|describe|delete` and `operon log-watchers
//! put|list|describe|delete`: health checks and log watchers the agents of
//! the targeted nodes run, reported as the metrics `check.healthy`,
//! `check.latency_ms` and `log.matches`. Both are monitors of one API
//! (`/v1/monitors`), told apart by their kind.

use std::process::ExitCode;

use anyhow::{Result, bail};
use operon_api::monitors::{
    DEFAULT_INTERVAL_SECS, DEFAULT_TIMEOUT_SECS, LogSourceSpec, Monitor, MonitorDetail,
    MonitorSpec, ProbeSpec, PutMonitor,
};

use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, print_json, table};

/// What a health check probes: exactly one.
#[derive(clap::Args, Debug, Default)]
#[group(required = true, multiple = false)]
pub struct ProbeArgs {
    /// GET this http(s) URL: healthy on a 2xx/3xx answer (or --expect-status).
    #[arg(long, value_name = "URL")]
    http: Option<String>,
    /// Open a TCP connection to HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// `systemctl is-active UNIT` says active.
    #[arg(long, value_name = "UNIT")]
    systemd: Option<String>,
    /// A process of this name runs (its comm or argv[0]'s file name).
    #[arg(long, value_name = "NAME")]
    process: Option<String>,
    /// `/bin/sh -c CMD` exits 0 (as --run-as).
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Nodes: tag:KEY=VALUE, all, inventory:KIND:FILTER, or node names.
    #[arg(long = "targets", required = true, num_args = 1.., value_delimiter = ',')]
    targets: Vec<String>,
    #[command(flatten)]
    probe: ProbeArgs,
    /// With --http: the status that counts as healthy.
    #[arg(long, requires = "http")]
    expect_status: Option<u16>,
    /// With --http: a regular expression the body must match.
    #[arg(long, requires = "http")]
    body_regex: Option<String>,
    /// With --command: the account it runs as.
    #[arg(long, requires = "command", default_value = "root")]
    run_as: String,
    /// Seconds between runs (5 to 3600).
    #[arg(long, default_value_t = DEFAULT_INTERVAL_SECS)]
    interval: u32,
    /// Seconds a run may take (less than --interval).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout: u32,
    /// The role it is pushed as (roles:Pass); yourself when absent.
    #[arg(long)]
    role: Option<String>,
}

// Parsed once from the command line: boxing `Put` would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum ChecksCmd {
    /// Create or replace a health check.
    Put {
        name: String,
        #[command(flatten)]
        args: CheckArgs,
    },
    /// List health checks.
    List,
    /// A health check and the nodes it reaches.
    Describe { name: String },
    /// Delete a health check; its nodes stop running it.
    Delete { name: String },
}

/// Where a log watcher reads: exactly one.
#[derive(clap::Args, Debug, Default)]
#[group(required = true, multiple = false)]
pub struct SourceArgs {
    /// Follow this file (across rotation and truncation), from its end.
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<String>,
    /// Read the systemd journal (of --unit).
    #[arg(long)]
    pub(crate) journal: bool,
}

#[derive(clap::Args, Debug)]
pub struct WatcherArgs {
    /// Nodes: tag:KEY=VALUE, all, inventory:KIND:FILTER, or node names.
    #[arg(long = "targets", required = true, num_args = 1.., value_delimiter = ',')]
    targets: Vec<String>,
    #[command(flatten)]
    source: SourceArgs,
    /// With --journal: only this unit's messages.
    #[arg(long, requires = "journal")]
    unit: Option<String>,
    /// A regular expression; matching lines are counted (log.matches).
    #[arg(long)]
    pattern: String,
    /// The role it is pushed as (roles:Pass); yourself when absent.
    #[arg(long)]
    role: Option<String>,
}

#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum LogWatchersCmd {
    /// Create or replace a log watcher.
    Put {
        name: String,
        #[command(flatten)]
        args: WatcherArgs,
    },
    /// List log watchers.
    List,
    /// A log watcher and the nodes it reaches.
    Describe { name: String },
    /// Delete a log watcher; its nodes stop running it.
    Delete { name: String },
}

/// The probe the flags name.
pub fn probe_of(args: &CheckArgs) -> Result<ProbeSpec> {
    let p = &args.probe;
    Ok(if let Some(url) = &p.http {
        ProbeSpec::Http {
            url: url.clone(),
            expect_status: args.expect_status,
            body_regex: args.body_regex.clone(),
        }
    } else if let Some(address) = &p.tcp {
        let (host, port) = split_host_port(address)?;
        ProbeSpec::Tcp { host, port }
    } else if let Some(unit) = &p.systemd {
        ProbeSpec::Systemd { unit: unit.clone() }
    } else if let Some(name) = &p.process {
        ProbeSpec::Process { name: name.clone() }
    } else if let Some(command) = &p.command {
        ProbeSpec::Command {
            command: command.clone(),
            run_as: args.run_as.clone(),
        }
    } else {
        bail!("give one of --http, --tcp, --systemd, --process or --command")
    })
}

/// `HOST:PORT`, `[V6]:PORT`.
pub fn split_host_port(address: &str) -> Result<(String, u16)> {
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("--tcp {address:?}: give HOST:PORT");
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--tcp {address:?}: the port must be 1 to 65535"))?;
    if host.is_empty() || port == 0 {
        bail!("--tcp {address:?}: give HOST:PORT with a port of 1 to 65535");
    }
    Ok((host.to_string(), port))
}

fn check_body(args: CheckArgs) -> Result<PutMonitor> {
    Ok(PutMonitor {
        spec: MonitorSpec::Check {
            interval_secs: args.interval,
            timeout_secs: args.timeout,
            probe: probe_of(&args)?,
        },
        targets: args.targets,
        role: args.role,
        expected_version: None,
    })
}

fn watcher_body(args: WatcherArgs) -> PutMonitor {
    let source = match args.source.file {
        Some(path) => LogSourceSpec::File { path },
        None => LogSourceSpec::Journal { unit: args.unit },
    };
    PutMonitor {
        spec: MonitorSpec::Watcher {
            source,
            pattern: args.pattern,
        },
        targets: args.targets,
        role: args.role,
        expected_version: None,
    }
}

/// What a monitor looks at, in a few words.
pub fn what(spec: &MonitorSpec) -> String {
    match spec {
        MonitorSpec::Check {
            interval_secs,
            timeout_secs,
            probe,
        } => {
            let probe = match probe {
                ProbeSpec::Http {
                    url,
                    expect_status,
                    body_regex,
                } => {
                    let status = expect_status.map_or("2xx/3xx".into(), |s| s.to_string());
                    let body = body_regex
                        .as_ref()
                        .map(|r| format!(", body ~ /{r}/"))
                        .unwrap_or_default();
                    format!("GET {url} answers {status}{body}")
                }
                ProbeSpec::Tcp { host, port } => format!("tcp {host}:{port} opens"),
                ProbeSpec::Systemd { unit } => format!("unit {unit} is active"),
                ProbeSpec::Process { name } => format!("process {name} runs"),
                ProbeSpec::Command { command, run_as } => {
                    format!("`{command}` as {run_as} exits 0")
                }
            };
            format!("{probe}, every {interval_secs} s (timeout {timeout_secs} s)")
        }
        MonitorSpec::Watcher { source, pattern } => {
            format!("lines of {} matching /{pattern}/", source_words(source))
        }
        MonitorSpec::Shipping { source } => format!("ships {}", source_words(source)),
    }
}

fn source_words(source: &LogSourceSpec) -> String {
    match source {
        LogSourceSpec::File { path } => path.clone(),
        LogSourceSpec::Journal { unit: Some(unit) } => format!("journal of {unit}"),
        LogSourceSpec::Journal { unit: None } => "the journal".into(),
    }
}

fn line(monitor: &Monitor) -> String {
    format!(
        "{} v{}: {} on {}",
        esc(&monitor.name),
        monitor.version,
        esc(&what(&monitor.spec)),
        esc(&monitor.targets.join(", "))
    )
}

fn nodes_table(detail: &MonitorDetail) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let rows = detail
        .nodes
        .iter()
        .map(|n| {
            vec![
                esc(&n.node_name),
                yes(n.online),
                yes(n.capable),
                yes(n.authorized),
                esc(n.reason.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        &["NODE", "ONLINE", "RUNS MONITORS", "AUTHORIZED", "REASON"],
        rows,
    )
}

/// The kind a command manages, for its messages.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    kind: &'static str,
    noun: &'static str,
    command: &'static str,
}

const CHECKS: Kind = Kind {
    kind: "check",
    noun: "health check",
    command: "checks",
};
const WATCHERS: Kind = Kind {
    kind: "watcher",
    noun: "log watcher",
    command: "log-watchers",
};
pub(crate) const SHIPPING: Kind = Kind {
    kind: "shipping",
    noun: "shipped log",
    command: "logs shipping",
};

/// Refuse to show or delete a monitor of the other kind under this command.
fn same_kind(monitor: &Monitor, kind: Kind) -> Result<()> {
    if monitor.spec.kind() == kind.kind {
        return Ok(());
    }
    let other = [CHECKS, WATCHERS, SHIPPING]
        .into_iter()
        .find(|k| k.kind == monitor.spec.kind())
        .unwrap_or(kind);
    bail!(
        "{} is a {}, not a {}: use operon {}",
        monitor.name,
        other.noun,
        kind.noun,
        other.command
    )
}

pub(crate) async fn put(
    client: &Client,
    args: &ClientArgs,
    name: &str,
    body: PutMonitor,
) -> Result<()> {
    let put = client.put_monitor(name, &body).await?;
    if args.json {
        print_json(&put.json);
    } else {
        println!("{}", line(&put.value));
    }
    Ok(())
}

pub(crate) async fn list(client: &Client, args: &ClientArgs, kind: Kind) -> Result<()> {
    let all = client.monitors().await?;
    let mine: Vec<&Monitor> = all
        .value
        .iter()
        .filter(|m| m.spec.kind() == kind.kind)
        .collect();
    if args.json {
        let json: Vec<&serde_json::Value> = all
            .json
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["kind"] == kind.kind)
            .collect();
        print_json(&serde_json::json!(json));
        return Ok(());
    }
    let rows = mine
        .iter()
        .map(|m| {
            vec![
                esc(&m.name),
                m.version.to_string(),
                esc(&what(&m.spec)),
                esc(&m.targets.join(",")),
                esc(m.role.as_deref().unwrap_or(&m.author)),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["NAME", "VERSION", "WHAT", "TARGETS", "AS"], rows)
    );
    Ok(())
}

pub(crate) async fn describe(
    client: &Client,
    args: &ClientArgs,
    kind: Kind,
    name: &str,
) -> Result<()> {
    let detail = client.monitor(name).await?;
    same_kind(&detail.value.monitor, kind)?;
    if args.json {
        print_json(&detail.json);
    } else {
        println!("{}", line(&detail.value.monitor));
        println!("{}", nodes_table(&detail.value));
    }
    Ok(())
}

pub(crate) async fn delete(
    client: &Client,
    args: &ClientArgs,
    kind: Kind,
    name: &str,
) -> Result<()> {
    let current = client.monitor(name).await?;
    same_kind(&current.value.monitor, kind)?;
    let deleted = client.delete_monitor(name).await?;
    if args.json {
        print_json(&deleted.json);
    } else {
        println!("deleted {} {}", kind.noun, esc(&deleted.value.name));
    }
    Ok(())
}

pub fn checks(args: &ClientArgs, cmd: ChecksCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            ChecksCmd::Put { name, args: check } => {
                put(&client, args, &name, check_body(check)?).await
            }
            ChecksCmd::List => list(&client, args, CHECKS).await,
            ChecksCmd::Describe { name } => describe(&client, args, CHECKS, &name).await,
            ChecksCmd::Delete { name } => delete(&client, args, CHECKS, &name).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn log_watchers(args: &ClientArgs, cmd: LogWatchersCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            LogWatchersCmd::Put {
                name,
                args: watcher,
            } => put(&client, args, &name, watcher_body(watcher)).await,
            LogWatchersCmd::List => list(&client, args, WATCHERS).await,
            LogWatchersCmd::Describe { name } => describe(&client, args, WATCHERS, &name).await,
            LogWatchersCmd::Delete { name } => delete(&client, args, WATCHERS, &name).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        let table: &[(&str, Option<(&str, u16)>)] = &[
            ("db:5432", Some(("db", 5432))),
            ("10.0.0.1:80", Some(("10.0.0.1", 80))),
            ("[::1]:22", Some(("::1", 22))),
            ("db", None),
            ("db:0", None),
            ("db:99999", None),
            (":80", None),
            ("db:http", None),
        ];
        for (address, expected) in table {
            let got = split_host_port(address).ok();
            let expected = expected.map(|(h, p)| (h.to_string(), p));
            assert_eq!(got, expected, "{address}");
        }
    }

    #[test]
    fn descriptions_say_what_is_looked_at() {
        let spec = MonitorSpec::Check {
            interval_secs: 30,
            timeout_secs: 5,
            probe: ProbeSpec::Http {
                url: "http://h/health".into(),
                expect_status: Some(200),
                body_regex: Some("ok".into()),
            },
        };
        assert_eq!(
            what(&spec),
            "GET http://h/health answers 200, body ~ /ok/, every 30 s (timeout 5 s)"
        );
        let spec = MonitorSpec::Watcher {
            source: LogSourceSpec::Journal {
                unit: Some("app.service".into()),
            },
            pattern: "CRITICAL".into(),
        };
        assert_eq!(
            what(&spec),
            "lines of journal of app.service matching /CRITICAL/"
        );
    }
}
