//! `operon logs ship|shipping|query|tail`: logs the agents ship to the
//! server (a file they follow, the systemd journal) and reading them.
//!
//! A shipped log is a monitor of kind `shipping` (`/v1/monitors`); lines are
//! read with `GET /v1/logs`. `tail` polls every second with the cursor of
//! the previous answer, so each line is printed once, until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use operon_api::logs::{LogLine, LogQueryAnswer};
use operon_api::monitors::{LogSourceSpec, MonitorSpec, PutMonitor};

use super::checks::{self, SHIPPING, SourceArgs};
use super::client::{Answer, Client, ClientArgs, runtime};
use super::client_params::query;
use super::output::{esc, millis};

/// How often `tail` asks for new lines.
const TAIL_EVERY: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct ShipArgs {
    /// Nodes: tag:KEY=VALUE, all, inventory:KIND:FILTER, or node names.
    #[arg(long = "targets", required = true, num_args = 1.., value_delimiter = ',')]
    targets: Vec<String>,
    #[command(flatten)]
    source: SourceArgs,
    /// With --journal: only this unit's messages.
    #[arg(long, requires = "journal")]
    unit: Option<String>,
    /// The role it is pushed as (roles:Pass); yourself when absent.
    #[arg(long)]
    role: Option<String>,
}

/// Which lines to read.
#[derive(clap::Args, Debug, Default, Clone, PartialEq)]
pub struct FilterArgs {
    /// Only this node (name or id).
    #[arg(long)]
    node: Option<String>,
    /// Only this source (file:/var/log/app.log, journal:nginx.service); a
    /// trailing * matches a prefix.
    #[arg(long)]
    source: Option<String>,
    /// Only the journal of this unit (journal:UNIT).
    #[arg(long, conflicts_with = "source")]
    unit: Option<String>,
    /// This level or more severe: critical, error, warning, info, debug.
    #[arg(long)]
    level: Option<String>,
    /// Lines matching this regular expression.
    #[arg(long)]
    grep: Option<String>,
    /// Lines containing this text.
    #[arg(long)]
    text: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum ShippingCmd {
    /// List shipped logs.
    List,
    /// A shipped log and the nodes it reaches.
    Describe { name: String },
    /// Stop shipping a log.
    Delete { name: String },
}

#[derive(clap::Subcommand)]
pub enum LogsCmd {
    /// Ship a log of the targeted nodes to the server (create or replace).
    Ship {
        name: String,
        #[command(flatten)]
        args: ShipArgs,
    },
    /// The logs shipped.
    Shipping {
        #[command(subcommand)]
        cmd: ShippingCmd,
    },
    /// Lines shipped: the latest --limit, oldest first.
    Query {
        #[command(flatten)]
        filter: FilterArgs,
        /// From this long ago (90s, 30m, 6h, 7d) or this Unix ms.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Before this Unix ms.
        #[arg(long)]
        until: Option<i64>,
        /// At most this many lines (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Print lines as they arrive (Ctrl-C to stop); --json: one JSON object
    /// a line.
    Tail {
        #[command(flatten)]
        filter: FilterArgs,
        /// First print the lines stored from this long ago (90s, 30m, 6h);
        /// without it only lines arriving from now on.
        #[arg(long)]
        since: Option<String>,
    },
}

/// What `GET /v1/logs` is asked (absent fields are left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQueryParams {
    pub filter: FilterArgs,
    pub since: Option<String>,
    pub until: Option<i64>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

impl LogQueryParams {
    pub fn path(&self) -> String {
        let f = &self.filter;
        let source = f
            .source
            .clone()
            .or_else(|| f.unit.as_ref().map(|u| format!("journal:{u}")));
        format!(
            "/v1/logs{}",
            query(&[
                ("node", f.node.clone()),
                ("source", source),
                ("level", f.level.clone()),
                ("grep", f.grep.clone()),
                ("text", f.text.clone()),
                ("since", self.since.clone()),
                ("until", self.until.map(|u| u.to_string())),
                ("after", self.after.map(|a| a.to_string())),
                ("limit", self.limit.map(|l| l.to_string())),
            ])
        )
    }
}

impl Client {
    /// Shipped log lines.
    pub async fn query_logs(&self, params: &LogQueryParams) -> Result<Answer<LogQueryAnswer>> {
        Answer::read(self.get(&params.path()).await?)
    }
}

fn ship_body(args: ShipArgs) -> PutMonitor {
    let source = match args.source.file {
        Some(path) => LogSourceSpec::File { path },
        None => LogSourceSpec::Journal { unit: args.unit },
    };
    PutMonitor {
        spec: MonitorSpec::Shipping { source },
        targets: args.targets,
        role: args.role,
        expected_version: None,
    }
}

/// `TIME NODE SOURCE LEVEL message`, the message escaped (no terminal
/// control characters from a log reach the screen).
pub fn line_text(line: &LogLine) -> String {
    format!(
        "{} {} {} {} {}",
        millis(Some(line.at)),
        esc(line.node_name.as_deref().unwrap_or(&line.node_id)),
        esc(&line.source),
        line.level.as_deref().unwrap_or("-"),
        esc(&line.message)
    )
}

async fn run_query(client: &Client, args: &ClientArgs, params: LogQueryParams) -> Result<()> {
    let answer = client.query_logs(&params).await?;
    if args.json {
        super::output::print_json(&answer.json);
    } else {
        for line in &answer.value.entries {
            println!("{}", line_text(line));
        }
    }
    Ok(())
}

async fn tail(
    client: &Client,
    args: &ClientArgs,
    filter: FilterArgs,
    since: Option<String>,
) -> Result<()> {
    let mut cursor = newest_id(client, &filter).await?;
    if let Some(since) = since {
        let earlier = client
            .query_logs(&LogQueryParams {
                filter: filter.clone(),
                since: Some(since),
                until: None,
                after: None,
                limit: Some(1000),
            })
            .await?;
        print_tail(args, &earlier.value.entries);
        cursor = cursor.max(earlier.value.cursor.unwrap_or(0));
    }
    let mut ticker = tokio::time::interval(TAIL_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let answer = client
            .query_logs(&LogQueryParams {
                filter: filter.clone(),
                after: Some(cursor),
                limit: Some(1000),
                ..LogQueryParams::default()
            })
            .await?;
        print_tail(args, &answer.value.entries);
        if let Some(next) = answer.value.cursor {
            cursor = next;
        }
    }
}

/// The id of the newest line stored that the caller may read (0 if none).
async fn newest_id(client: &Client, filter: &FilterArgs) -> Result<i64> {
    let latest = client
        .query_logs(&LogQueryParams {
            filter: FilterArgs {
                node: filter.node.clone(),
                ..FilterArgs::default()
            },
            limit: Some(1),
            ..LogQueryParams::default()
        })
        .await?;
    Ok(latest.value.cursor.unwrap_or(0))
}

fn print_tail(args: &ClientArgs, lines: &[LogLine]) {
    for line in lines {
        if args.json {
            println!("{}", serde_json::to_string(line).unwrap_or_default());
        } else {
            println!("{}", line_text(line));
        }
    }
}

fn check_level(filter: &FilterArgs) -> Result<()> {
    if let Some(level) = &filter.level
        && !operon_proto::LOG_LEVELS.contains(&level.as_str())
    {
        bail!(
            "--level {level:?}: use one of {}",
            operon_proto::LOG_LEVELS.join(", ")
        );
    }
    Ok(())
}

pub fn logs(args: &ClientArgs, cmd: LogsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            LogsCmd::Ship { name, args: ship } => {
                checks::put(&client, args, &name, ship_body(ship)).await
            }
            LogsCmd::Shipping { cmd } => match cmd {
                ShippingCmd::List => checks::list(&client, args, SHIPPING).await,
                ShippingCmd::Describe { name } => {
                    checks::describe(&client, args, SHIPPING, &name).await
                }
                ShippingCmd::Delete { name } => {
                    checks::delete(&client, args, SHIPPING, &name).await
                }
            },
            LogsCmd::Query {
                filter,
                since,
                until,
                limit,
            } => {
                check_level(&filter)?;
                let params = LogQueryParams {
                    filter,
                    since: Some(since),
                    until,
                    after: None,
                    limit: Some(limit),
                };
                run_query(&client, args, params).await
            }
            LogsCmd::Tail { filter, since } => {
                check_level(&filter)?;
                tail(&client, args, filter, since).await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_paths() {
        let params = LogQueryParams {
            filter: FilterArgs {
                node: Some("web-1".into()),
                unit: Some("nginx.service".into()),
                level: Some("error".into()),
                grep: Some("a b".into()),
                ..FilterArgs::default()
            },
            since: Some("1h".into()),
            after: Some(42),
            limit: Some(10),
            ..LogQueryParams::default()
        };
        assert_eq!(
            params.path(),
            "/v1/logs?node=web-1&source=journal%3Anginx.service&level=error&grep=a%20b&since=1h&after=42&limit=10"
        );
        assert_eq!(LogQueryParams::default().path(), "/v1/logs");
    }

    #[test]
    fn lines_print_time_node_source_level_and_an_escaped_message() {
        let line = LogLine {
            id: 1,
            node_id: "n-1".into(),
            node_name: Some("web-1".into()),
            at: 0,
            source: "file:/var/log/app.log".into(),
            level: None,
            message: "bad \u{1b}[31m".into(),
            fields: Default::default(),
        };
        let text = line_text(&line);
        assert!(
            text.contains(" web-1 file:/var/log/app.log - bad "),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
