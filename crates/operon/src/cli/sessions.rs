//! `operon sessions start|exec|port-forward|list|describe|terminate|export|play`:
//! terminals, commands and port forwarding on nodes through the server, and
//! their recordings.
//!
//! The streaming commands are in [`super::session_terminal`] and
//! [`super::port_forward`]; the recording format in [`super::asciicast`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use operon_api::sessions::{ConnectQuery, SessionView};

use super::asciicast;
use super::client::{Client, ClientArgs, runtime};
use super::output::{esc, millis, millis_between, opt, print_json, table};
use super::port_forward::{self, Forward};
use super::runbooks::print_or;
use super::session_terminal;

#[derive(clap::Subcommand)]
pub enum SessionsCmd {
    /// Open an interactive shell on a node (exits with the shell's exit code).
    Start {
        node: String,
        /// The account on the node (default: the server's session user).
        #[arg(long)]
        user: Option<String>,
        /// Run this instead of the login shell.
        #[arg(long)]
        command: Option<String>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Run a command on a node with a terminal, like `ssh -t` (exits with its exit code).
    Exec {
        node: String,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        limits: Limits,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Forward a local TCP port to HOST:PORT as the node reaches it (until ctrl-c).
    PortForward {
        node: String,
        /// HOST:PORT as the node resolves it.
        #[arg(long, value_name = "HOST:PORT")]
        remote: String,
        /// [ADDR:]PORT to listen on (the address defaults to 127.0.0.1).
        #[arg(long, value_name = "[ADDR:]PORT")]
        local: String,
        #[command(flatten)]
        limits: Limits,
    },
    /// List sessions, newest first.
    List {
        /// Only sessions still running.
        #[arg(long)]
        active: bool,
        /// Only sessions on this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Show one session.
    Describe { id: String },
    /// End a session now.
    Terminate { id: String },
    /// Save a session's recording (asciicast v2), checked against its audit record.
    Export {
        id: String,
        /// The file to write, or `-` for stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Replay a session's recording in this terminal.
    Play {
        id: String,
        /// Play this many times faster (0.5 plays at half speed).
        #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
        speed: f64,
        /// Cap every pause of the recording at this (e.g. 2s); default the
        /// recording's own idle limit, if it has one.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_wait: Option<Duration>,
    },
}

/// Limits a session asks for (the server and policies may allow less).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Limits {
    /// End the session after this long without input (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// End the session after this long in any case (e.g. 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_duration: Option<Duration>,
}

impl Limits {
    fn apply(&self, query: &mut ConnectQuery) {
        query.idle_timeout = self.idle_timeout.map(|d| d.as_secs().max(1));
        query.max_duration = self.max_duration.map(|d| d.as_secs().max(1));
    }
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err(format!("expected a positive number, got {text:?}")),
    }
}

pub fn sessions(args: &ClientArgs, cmd: SessionsCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            SessionsCmd::Start {
                node,
                user,
                command,
                limits,
            } => {
                let query = terminal_query(node, "shell", user, command, &limits);
                session_terminal::run(&client, query).await
            }
            SessionsCmd::Exec {
                node,
                user,
                limits,
                command,
            } => {
                let command = join_command(&command)?;
                let query = terminal_query(node, "exec", user, Some(command), &limits);
                session_terminal::run(&client, query).await
            }
            SessionsCmd::PortForward {
                node,
                remote,
                local,
                limits,
            } => {
                let forward = Forward::parse(&node, &remote, &local)?;
                let mut query = forward.query();
                limits.apply(&mut query);
                port_forward::run(&client, forward, query).await
            }
            SessionsCmd::List { active, node } => {
                let list = client.sessions(active, node.as_deref()).await?;
                print_or(args, &list.json, || session_table(&list.value.sessions));
                Ok(ExitCode::SUCCESS)
            }
            SessionsCmd::Describe { id } => {
                let session = client.session(&id).await?;
                if args.json {
                    print_json(&session.json);
                } else {
                    print!("{}", describe(&session.value));
                }
                Ok(ExitCode::SUCCESS)
            }
            SessionsCmd::Terminate { id } => {
                let session = client.terminate_session(&id).await?;
                print_or(args, &session.json, || {
                    format!("{} {}", esc(&session.value.id), esc(&session.value.status))
                });
                Ok(ExitCode::SUCCESS)
            }
            SessionsCmd::Export { id, output } => {
                let recording = client.session_recording(&id).await?;
                write_output(&output, &recording.bytes)?;
                if output.as_os_str() != "-" {
                    eprintln!(
                        "wrote {}: {} bytes, sha256 {} (as audited)",
                        output.display(),
                        recording.bytes.len(),
                        recording.sha256
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            SessionsCmd::Play {
                id,
                speed,
                max_wait,
            } => {
                let recording = client.session_recording(&id).await?;
                play(&recording.bytes, speed, max_wait).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn terminal_query(
    node: String,
    kind: &str,
    user: Option<String>,
    command: Option<String>,
    limits: &Limits,
) -> ConnectQuery {
    let mut query = ConnectQuery {
        node,
        kind: Some(kind.into()),
        user,
        command,
        ..ConnectQuery::default()
    };
    limits.apply(&mut query);
    query
}

/// The arguments as one shell command line, each quoted as needed, so the
/// remote shell sees the same words.
fn join_command(words: &[String]) -> Result<String> {
    if words.is_empty() {
        bail!("give the command after --");
    }
    shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("cannot quote the command: {e}"))
}

fn session_table(sessions: &[SessionView]) -> String {
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.node_name.clone(),
                s.kind.clone(),
                target(s),
                s.started_by.clone(),
                millis(Some(s.started_at)),
                millis_between(Some(s.started_at), s.ended_at),
                s.status.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "NODE", "KIND", "TARGET", "BY", "STARTED", "DURATION", "STATUS",
        ],
        rows,
    )
}

/// What a session reached: `user` (and command) or the forwarded address.
fn target(session: &SessionView) -> String {
    if let Some(remote) = &session.remote {
        return remote.clone();
    }
    let user = session.user.as_deref().unwrap_or("-");
    match &session.command {
        Some(command) => format!("{user}: {command}"),
        None => user.to_string(),
    }
}

fn describe(s: &SessionView) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<11}{value}\n"));
    };
    line("session", esc(&s.id));
    line(
        "node",
        format!("{} ({})", esc(&s.node_name), esc(&s.node_id)),
    );
    line("kind", esc(&s.kind));
    if let Some(user) = &s.user {
        line("user", esc(user));
    }
    if let Some(command) = &s.command {
        line("command", esc(command));
    }
    if let Some(remote) = &s.remote {
        line("remote", esc(remote));
    }
    line(
        "started",
        format!("{} by {}", millis(Some(s.started_at)), esc(&s.started_by)),
    );
    line("ended", millis(s.ended_at));
    line("status", esc(&s.status));
    if let Some(reason) = &s.end_reason {
        line("reason", esc(reason));
    }
    line("exit code", opt(s.exit_code));
    line(
        "limits",
        format!(
            "idle {}, max {}",
            humantime::format_duration(Duration::from_secs(s.idle_timeout_secs)),
            humantime::format_duration(Duration::from_secs(s.max_duration_secs))
        ),
    );
    if let Some(sha) = &s.recording_sha256 {
        line(
            "recording",
            format!("{} bytes, sha256 {}", opt(s.recording_bytes), esc(sha)),
        );
    }
    out
}

fn write_output(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes).context("writing to stdout")?;
        return stdout.flush().context("writing to stdout");
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Replay the output events with their pauses.
async fn play(bytes: &[u8], speed: f64, max_wait: Option<Duration>) -> Result<()> {
    let text = std::str::from_utf8(bytes).context("the recording is not UTF-8 text")?;
    let cast = asciicast::parse(text).context("reading the recording")?;
    let header_limit = cast
        .header
        .idle_time_limit
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .map(Duration::from_secs_f64);
    let steps = asciicast::plan(&cast.events, speed, max_wait.or(header_limit));
    let mut stdout = std::io::stdout().lock();
    for (pause, output) in steps {
        if !pause.is_zero() {
            stdout.flush().context("writing to stdout")?;
            tokio::time::sleep(pause).await;
        }
        stdout
            .write_all(output.as_bytes())
            .context("writing to stdout")?;
    }
    stdout.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_arguments_keep_their_words() {
        let words: Vec<String> = ["grep", "-r", "a b", "it's", "$HOME"]
            .map(String::from)
            .to_vec();
        let joined = join_command(&words).unwrap();
        assert_eq!(shlex::split(&joined).unwrap(), words);
        assert_eq!(join_command(&["uptime".into()]).unwrap(), "uptime");
        assert!(join_command(&[]).is_err());
        assert!(join_command(&["a\0b".into()]).is_err());
    }

    #[test]
    fn limits_and_kind_go_in_the_query() {
        let limits = Limits {
            idle_timeout: Some(Duration::from_secs(600)),
            max_duration: Some(Duration::from_secs(3600)),
        };
        let query = terminal_query(
            "web-1".into(),
            "exec",
            Some("deploy".into()),
            Some("top".into()),
            &limits,
        );
        assert_eq!(query.kind.as_deref(), Some("exec"));
        assert_eq!(query.user.as_deref(), Some("deploy"));
        assert_eq!(
            (query.idle_timeout, query.max_duration),
            (Some(600), Some(3600))
        );
        let plain = terminal_query("web-1".into(), "shell", None, None, &Limits::default());
        assert_eq!(
            (plain.idle_timeout, plain.max_duration, plain.command),
            (None, None, None)
        );
    }

    #[test]
    fn speed_must_be_positive() {
        assert_eq!(parse_speed("2"), Ok(2.0));
        assert_eq!(parse_speed("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "NaN", "fast"] {
            assert!(parse_speed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_escape_what_nodes_and_users_chose() {
        let session = SessionView {
            id: "s-1".into(),
            node_id: "n-1".into(),
            node_name: "web\u{1b}[2J".into(),
            kind: "exec".into(),
            user: Some("deploy".into()),
            command: Some("top\r".into()),
            remote: None,
            started_by: "user/alice".into(),
            started_at: 1_700_000_000_000,
            ended_at: Some(1_700_000_061_000),
            status: "ended".into(),
            end_reason: Some("exited".into()),
            exit_code: Some(0),
            idle_timeout_secs: 600,
            max_duration_secs: 3600,
            recording_sha256: Some("ab".repeat(32)),
            recording_bytes: Some(1234),
        };
        let text = describe(&session);
        assert!(text.contains("node       web\\x1b[2J (n-1)"), "{text}");
        assert!(text.contains("command    top\\r"), "{text}");
        assert!(text.contains("limits     idle 10m, max 1h"), "{text}");
        assert!(text.contains("recording  1234 bytes"), "{text}");
        let listed = session_table(std::slice::from_ref(&session));
        assert!(listed.contains("deploy: top\\r"), "{listed}");
        assert!(listed.contains("61.00s"), "{listed}");
        assert!(!listed.contains('\u{1b}'), "{listed}");
    }
}
