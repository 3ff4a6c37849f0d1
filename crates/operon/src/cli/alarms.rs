//! `operon alarms put|list|describe|history|delete|set-state`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_api::alarms::{Alarm, AlarmHistoryItem, AlarmSpec, SetAlarmState};

use super::client::{Answer, Client, ClientArgs, key_value, runtime, to_json};
use super::client_params::encode;
use super::output::{esc, millis, print_json, table};

/// What an alarm watches (`put` replaces the whole alarm).
#[derive(clap::Args, Default)]
pub struct SpecArgs {
    /// threshold (the default), anomaly, forecast or composite.
    #[arg(long, value_parser = ["threshold", "anomaly", "forecast", "composite"])]
    kind: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// The metric: cpu.used, mem.used_percent, disk.used_percent, log.matches, ...
    #[arg(long)]
    metric: Option<String>,
    /// A dimension the series must have (repeatable): mount=/, watcher=app-errors.
    #[arg(long = "dim", value_name = "KEY=VALUE")]
    dimensions: Vec<String>,
    /// Average (the default), Sum, Minimum, Maximum, SampleCount or pNN.
    #[arg(long)]
    statistic: Option<String>,
    /// Seconds per period (default 60).
    #[arg(long)]
    period: Option<u64>,
    /// N: periods evaluated (default 1).
    #[arg(long)]
    evaluation_periods: Option<u32>,
    /// M: how many of the N must breach (default N).
    #[arg(long)]
    datapoints_to_alarm: Option<u32>,
    #[arg(long, allow_hyphen_values = true)]
    threshold: Option<f64>,
    /// GreaterThanThreshold (default), GreaterThanOrEqualToThreshold, LessThanThreshold,
    /// LessThanOrEqualToThreshold; anomaly: LessThanLowerOrGreaterThanUpperThreshold (default),
    /// GreaterThanUpperThreshold, LessThanLowerThreshold.
    #[arg(long)]
    comparison: Option<String>,
    /// missing (the default), ignore, breaching or notBreaching.
    #[arg(long, value_parser = ["missing", "ignore", "breaching", "notBreaching"])]
    treat_missing_data: Option<String>,
    /// One node (name or id).
    #[arg(long, conflicts_with = "targets")]
    node: Option<String>,
    /// One alarm per node these select: tag:KEY=VALUE, all, node names.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Anomaly: the band's half width in standard deviations (default 2).
    #[arg(long)]
    band_width: Option<f64>,
    /// Anomaly: days of history the band is learned from (default 14).
    #[arg(long)]
    history_days: Option<u32>,
    /// Forecast: how far ahead (24h, 3d; default 24h).
    #[arg(long)]
    forecast_horizon: Option<String>,
    /// Forecast: the history the trend is fitted on (6h by default).
    #[arg(long)]
    forecast_lookback: Option<String>,
    /// Composite: ALARM("a") AND (OK("b") OR NOT ALARM("c/web-1")).
    #[arg(long)]
    rule: Option<String>,
    /// The role evaluation acts as (roles:Pass); yourself when absent.
    #[arg(long)]
    role: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum AlarmsCmd {
    /// Create or replace an alarm.
    Put {
        name: String,
        #[command(flatten)]
        spec: Box<SpecArgs>,
    },
    /// Alarms with their state.
    List {
        /// OK, ALARM or INSUFFICIENT_DATA.
        #[arg(long, value_parser = ["OK", "ALARM", "INSUFFICIENT_DATA"])]
        state: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
    },
    /// An alarm: its settings and the state of each node.
    Describe { name: String },
    /// State changes, newest first.
    History {
        name: String,
        #[arg(long)]
        node: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Delete an alarm (its history stays).
    Delete { name: String },
    /// Set the state by hand until the next evaluation (to test what reacts).
    SetState {
        name: String,
        #[arg(long, value_parser = ["OK", "ALARM", "INSUFFICIENT_DATA"])]
        state: String,
        #[arg(long)]
        reason: String,
        /// The node of an alarm templated over nodes.
        #[arg(long)]
        node: Option<String>,
    },
}

impl Client {
    pub async fn put_alarm(&self, name: &str, spec: &AlarmSpec) -> Result<Answer<Alarm>> {
        let path = format!("/v1/alarms/{}", encode(name));
        Answer::read(self.put(&path, &to_json(spec)?).await?)
    }

    pub async fn alarms(&self, query: &[(&str, &str)]) -> Result<Answer<Vec<Alarm>>> {
        Answer::read(self.get(&with_query("/v1/alarms", query)).await?)
    }

    pub async fn alarm(&self, name: &str) -> Result<Answer<Alarm>> {
        Answer::read(self.get(&format!("/v1/alarms/{}", encode(name))).await?)
    }

    pub async fn alarm_history(
        &self,
        name: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer<Vec<AlarmHistoryItem>>> {
        let path = with_query(&format!("/v1/alarms/{}/history", encode(name)), query);
        Answer::read(self.get(&path).await?)
    }

    pub async fn delete_alarm(&self, name: &str) -> Result<Answer<Alarm>> {
        Answer::read(self.delete(&format!("/v1/alarms/{}", encode(name))).await?)
    }

    pub async fn set_alarm_state(&self, name: &str, body: &SetAlarmState) -> Result<Answer<Alarm>> {
        let path = format!("/v1/alarms/{}/state", encode(name));
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }
}

fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    let parts: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

fn seconds(flag: &str, text: Option<String>) -> Result<Option<u64>> {
    text.map(|t| {
        humantime::parse_duration(&t)
            .map(|d| d.as_secs())
            .with_context(|| format!("--{flag} {t:?}: a duration such as 6h or 3d"))
    })
    .transpose()
}

fn spec(args: SpecArgs) -> Result<AlarmSpec> {
    let mut dimensions = BTreeMap::new();
    for dim in &args.dimensions {
        let (key, value) = key_value(dim)?;
        dimensions.insert(key, value);
    }
    Ok(AlarmSpec {
        kind: args.kind,
        description: args.description,
        metric: args.metric,
        dimensions,
        statistic: args.statistic,
        period: args.period,
        evaluation_periods: args.evaluation_periods,
        datapoints_to_alarm: args.datapoints_to_alarm,
        threshold: args.threshold,
        comparison: args.comparison,
        treat_missing_data: args.treat_missing_data,
        node: args.node,
        targets: args.targets,
        band_width: args.band_width,
        history_days: args.history_days,
        forecast_horizon: seconds("forecast-horizon", args.forecast_horizon)?,
        forecast_lookback: seconds("forecast-lookback", args.forecast_lookback)?,
        rule: args.rule,
        role: args.role,
    })
}

/// What the alarm watches, in one line.
fn watches(alarm: &Alarm) -> String {
    let s = &alarm.spec;
    if let Some(rule) = &s.rule {
        return esc(rule);
    }
    let dims: Vec<String> = s
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let dims = if dims.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", dims.join(","))
    };
    let scope = s.node.clone().unwrap_or_else(|| s.targets.join(","));
    let kind = s.kind.as_deref().unwrap_or("threshold");
    let test = match kind {
        "anomaly" => format!("outside {}σ band", s.band_width.unwrap_or(2.0)),
        "forecast" => format!("forecast reaches {}", s.threshold.unwrap_or_default()),
        _ => format!(
            "{} {}",
            s.comparison.as_deref().unwrap_or("GreaterThanThreshold"),
            s.threshold.unwrap_or_default()
        ),
    };
    format!(
        "{} {}{dims} per {}s on {}: {test}, {} of {}",
        s.statistic.as_deref().unwrap_or("Average"),
        s.metric.as_deref().unwrap_or("-"),
        s.period.unwrap_or(60),
        esc(&scope),
        s.datapoints_to_alarm.or(s.evaluation_periods).unwrap_or(1),
        s.evaluation_periods.unwrap_or(1),
    )
}

fn print_alarm(alarm: &Alarm) {
    println!("{} v{}: {}", esc(&alarm.name), alarm.version, alarm.state);
    println!("  {}", watches(alarm));
    if let Some(d) = &alarm.spec.description {
        println!("  {}", esc(d));
    }
    let rows = alarm
        .instances
        .iter()
        .map(|i| {
            vec![
                esc(i.node_name.as_deref().unwrap_or(if i.node_id.is_empty() {
                    "-"
                } else {
                    &i.node_id
                })),
                i.state.clone(),
                millis(Some(i.updated_at)),
                esc(&i.reason),
            ]
        })
        .collect();
    println!("{}", table(&["NODE", "STATE", "SINCE", "REASON"], rows));
}

pub fn alarms(args: &ClientArgs, cmd: AlarmsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AlarmsCmd::Put { name, spec: s } => {
                let answer = client.put_alarm(&name, &spec(*s)?).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    print_alarm(&answer.value);
                }
            }
            AlarmsCmd::List { state, prefix } => {
                let mut query = Vec::new();
                if let Some(s) = &state {
                    query.push(("state", s.as_str()));
                }
                if let Some(p) = &prefix {
                    query.push(("prefix", p.as_str()));
                }
                let list = client.alarms(&query).await?;
                if args.json {
                    print_json(&list.json);
                } else {
                    let rows = list
                        .value
                        .iter()
                        .map(|a| {
                            let alarming =
                                a.instances.iter().filter(|i| i.state == "ALARM").count();
                            vec![
                                esc(&a.name),
                                a.state.clone(),
                                format!("{alarming}/{}", a.instances.len()),
                                watches(a),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["NAME", "STATE", "IN ALARM", "WATCHES"], rows));
                }
            }
            AlarmsCmd::Describe { name } => {
                let answer = client.alarm(&name).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    print_alarm(&answer.value);
                }
            }
            AlarmsCmd::History { name, node, limit } => {
                let limit = limit.to_string();
                let mut query = vec![("limit", limit.as_str())];
                if let Some(n) = &node {
                    query.push(("node", n.as_str()));
                }
                let history = client.alarm_history(&name, &query).await?;
                if args.json {
                    print_json(&history.json);
                } else {
                    let rows = history
                        .value
                        .iter()
                        .map(|h| {
                            vec![
                                millis(Some(h.at)),
                                esc(h.node_name.as_deref().unwrap_or("-")),
                                format!(
                                    "{} -> {}",
                                    h.previous_state.as_deref().unwrap_or("-"),
                                    h.state
                                ),
                                esc(&h.reason),
                            ]
                        })
                        .collect();
                    println!("{}", table(&["AT", "NODE", "CHANGE", "REASON"], rows));
                }
            }
            AlarmsCmd::Delete { name } => {
                let answer = client.delete_alarm(&name).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    println!("deleted alarm {}", esc(&answer.value.name));
                }
            }
            AlarmsCmd::SetState {
                name,
                state,
                reason,
                node,
            } => {
                let body = SetAlarmState {
                    state,
                    reason,
                    node,
                };
                let answer = client.set_alarm_state(&name, &body).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    print_alarm(&answer.value);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
