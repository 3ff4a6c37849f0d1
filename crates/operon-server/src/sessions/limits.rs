//! What a session request asks for, checked: the kind, the account, the
//! terminal, the remote address, and the durations within the server's
//! limits. Pure.

use std::time::Duration;

use operon_api::sessions::ConnectQuery;

/// The account sessions run as when none is named.
pub const DEFAULT_USER: &str = "operon-user";
/// Seconds without input before a session ends (AWS's default, 20 minutes).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The longest a session may last.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(8 * 3600);
/// The longest recording kept per session (plain asciicast text).
pub const DEFAULT_RECORDING_LIMIT: u64 = 256 * 1024 * 1024;

/// Addresses no port forward reaches, whatever the policy: the link-local
/// range (cloud metadata services at 169.254.169.254, ECS credentials at
/// 169.254.170.2), IPv6 link-local and AWS's IPv6 metadata address, and
/// Alibaba Cloud's metadata address. `--session-forward-deny` adds more.
pub const DEFAULT_FORWARD_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// The server's session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub default_user: String,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    /// Record what users type (off for sites where people type secrets).
    pub record_input: bool,
    pub recording_limit: u64,
    /// Deny entries sent with every forwarded connection (the defaults and
    /// the operator's).
    pub forward_deny: Vec<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            default_user: DEFAULT_USER.to_string(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_duration: DEFAULT_MAX_DURATION,
            record_input: true,
            recording_limit: DEFAULT_RECORDING_LIMIT,
            forward_deny: DEFAULT_FORWARD_DENY.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// What a session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Shell,
    Exec,
    PortForward,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Exec => "exec",
            Kind::PortForward => "port-forward",
        }
    }

    /// The action a start needs.
    pub fn action(self) -> &'static str {
        match self {
            Kind::Shell | Kind::Exec => "sessions:Start",
            Kind::PortForward => "sessions:PortForward",
        }
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRequest {
    pub node: String,
    pub kind: Kind,
    pub target: Target,
    pub idle_timeout_secs: u64,
    pub max_duration_secs: u64,
}

/// The terminal, or the remote end of a forward.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Terminal {
        user: String,
        /// The server's default account (the agent may create it).
        default_user: bool,
        command: Option<String>,
        cols: u16,
        rows: u16,
        term: String,
    },
    Forward {
        host: String,
        port: u16,
    },
}

const MAX_COMMAND: usize = 8 * 1024;
const MAX_TERMINAL_SIDE: u16 = 1000;

/// Check a connect query against the server's settings. The error names
/// the parameter and what is wrong with it.
pub fn check(query: &ConnectQuery, config: &SessionConfig) -> Result<SessionRequest, String> {
    let node = query.node.trim();
    if node.is_empty() {
        return Err("node: name the node (its name or id)".into());
    }
    let kind = match query.kind.as_deref().unwrap_or("shell") {
        "shell" => Kind::Shell,
        "exec" => Kind::Exec,
        "port-forward" => Kind::PortForward,
        other => {
            return Err(format!(
                "kind: '{other}' is not one of shell, exec, port-forward"
            ));
        }
    };
    let target = match kind {
        Kind::Shell | Kind::Exec => terminal(query, kind, config)?,
        Kind::PortForward => forward(query)?,
    };
    Ok(SessionRequest {
        node: node.to_string(),
        kind,
        target,
        idle_timeout_secs: within("idle_timeout", query.idle_timeout, config.idle_timeout)?,
        max_duration_secs: within("max_duration", query.max_duration, config.max_duration)?,
    })
}

fn terminal(query: &ConnectQuery, kind: Kind, config: &SessionConfig) -> Result<Target, String> {
    if query.host.is_some() || query.port.is_some() {
        return Err(format!(
            "host, port: only for port-forward sessions, not {}",
            kind.as_str()
        ));
    }
    let command = match (&query.command, kind) {
        (None, Kind::Exec) => {
            return Err("command: an exec session needs the command to run".into());
        }
        (Some(command), _) if command.trim().is_empty() => {
            return Err("command: empty".into());
        }
        (Some(command), _) if command.len() > MAX_COMMAND || command.contains('\0') => {
            return Err(format!("command: at most {MAX_COMMAND} bytes, without NUL"));
        }
        (command, _) => command.clone(),
    };
    let (user, default_user) = match &query.user {
        Some(user) => (user.clone(), false),
        None => (config.default_user.clone(), true),
    };
    if !valid_user_name(&user) {
        return Err(format!(
            "user: '{user}' is not a valid account name (letters, digits, '_', '-', '.', starting with a letter or '_', at most 32)"
        ));
    }
    let side = |name: &str, value: Option<u16>, default: u16| match value.unwrap_or(default) {
        0 => Err(format!("{name}: must be at least 1")),
        v if v > MAX_TERMINAL_SIDE => Err(format!("{name}: at most {MAX_TERMINAL_SIDE}")),
        v => Ok(v),
    };
    let term = query
        .term
        .clone()
        .unwrap_or_else(|| "xterm-256color".into());
    if term.is_empty() || term.len() > 64 || !term.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("term: '{term}' is not a terminal type name"));
    }
    Ok(Target::Terminal {
        user,
        default_user,
        command,
        cols: side("cols", query.cols, 80)?,
        rows: side("rows", query.rows, 24)?,
        term,
    })
}

fn forward(query: &ConnectQuery) -> Result<Target, String> {
    if query.user.is_some() || query.command.is_some() {
        return Err("user, command: not for port-forward sessions".into());
    }
    let host = query
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or("host: a port-forward session needs the remote host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_%".contains(&b))
    {
        return Err(format!("host: '{host}' is not a host name or IP address"));
    }
    match query.port {
        None | Some(0) => {
            Err("port: a port-forward session needs the remote port (1-65535)".into())
        }
        Some(port) => Ok(Target::Forward {
            host: host.to_string(),
            port,
        }),
    }
}

/// A requested duration, at most the server's; the server's when absent.
fn within(name: &str, asked: Option<u64>, limit: Duration) -> Result<u64, String> {
    let limit = limit.as_secs();
    match asked {
        None => Ok(limit),
        Some(0) => Err(format!("{name}: must be at least 1 second")),
        Some(secs) if secs > limit => Err(format!(
            "{name}: {secs} s is over the server's limit of {limit} s (a session may ask for less, never more)"
        )),
        Some(secs) => Ok(secs),
    }
}

/// A POSIX-portable account name (as `useradd` takes them).
pub fn valid_user_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(node: &str) -> ConnectQuery {
        ConnectQuery {
            node: node.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_shell_defaults_to_the_server_account_and_limits() {
        let config = SessionConfig::default();
        let request = check(&query("web-1"), &config).unwrap();
        assert_eq!(request.kind, Kind::Shell);
        assert_eq!(request.idle_timeout_secs, 1200);
        assert_eq!(request.max_duration_secs, 8 * 3600);
        assert_eq!(
            request.target,
            Target::Terminal {
                user: "operon-user".into(),
                default_user: true,
                command: None,
                cols: 80,
                rows: 24,
                term: "xterm-256color".into(),
            }
        );
    }

    #[test]
    fn durations_go_down_never_up() {
        let config = SessionConfig::default();
        let mut q = query("web-1");
        q.idle_timeout = Some(60);
        q.max_duration = Some(600);
        let request = check(&q, &config).unwrap();
        assert_eq!(
            (request.idle_timeout_secs, request.max_duration_secs),
            (60, 600)
        );
        q.max_duration = Some(9 * 3600);
        let err = check(&q, &config).unwrap_err();
        assert!(
            err.starts_with("max_duration:") && err.contains("28800"),
            "{err}"
        );
        q.max_duration = None;
        q.idle_timeout = Some(0);
        assert!(check(&q, &config).unwrap_err().starts_with("idle_timeout:"));
    }

    #[test]
    fn every_mistake_names_its_parameter() {
        let config = SessionConfig::default();
        let cases: Vec<(ConnectQuery, &str)> = vec![
            (query(" "), "node:"),
            (
                ConnectQuery {
                    kind: Some("ssh".into()),
                    ..query("n")
                },
                "kind:",
            ),
            (
                ConnectQuery {
                    kind: Some("exec".into()),
                    ..query("n")
                },
                "command:",
            ),
            (
                ConnectQuery {
                    command: Some(" ".into()),
                    ..query("n")
                },
                "command:",
            ),
            (
                ConnectQuery {
                    command: Some("a\0b".into()),
                    ..query("n")
                },
                "command:",
            ),
            (
                ConnectQuery {
                    user: Some("root;rm".into()),
                    ..query("n")
                },
                "user:",
            ),
            (
                ConnectQuery {
                    user: Some("-x".into()),
                    ..query("n")
                },
                "user:",
            ),
            (
                ConnectQuery {
                    cols: Some(0),
                    ..query("n")
                },
                "cols:",
            ),
            (
                ConnectQuery {
                    rows: Some(5000),
                    ..query("n")
                },
                "rows:",
            ),
            (
                ConnectQuery {
                    term: Some("xterm 256".into()),
                    ..query("n")
                },
                "term:",
            ),
            (
                ConnectQuery {
                    host: Some("db".into()),
                    ..query("n")
                },
                "host, port:",
            ),
            (
                ConnectQuery {
                    kind: Some("port-forward".into()),
                    ..query("n")
                },
                "host:",
            ),
            (
                ConnectQuery {
                    kind: Some("port-forward".into()),
                    host: Some("db".into()),
                    ..query("n")
                },
                "port:",
            ),
            (
                ConnectQuery {
                    kind: Some("port-forward".into()),
                    host: Some("db/x".into()),
                    port: Some(1),
                    ..query("n")
                },
                "host:",
            ),
            (
                ConnectQuery {
                    kind: Some("port-forward".into()),
                    host: Some("db".into()),
                    port: Some(5432),
                    user: Some("root".into()),
                    ..query("n")
                },
                "user, command:",
            ),
        ];
        for (q, want) in cases {
            let err = check(&q, &config).unwrap_err();
            assert!(err.starts_with(want), "{q:?}: {err}");
        }
    }

    #[test]
    fn forwards_and_execs() {
        let config = SessionConfig::default();
        let q = ConnectQuery {
            kind: Some("port-forward".into()),
            host: Some("[::1]".into()),
            port: Some(5432),
            ..query("db-1")
        };
        let request = check(&q, &config).unwrap();
        assert_eq!(request.kind.action(), "sessions:PortForward");
        assert_eq!(
            request.target,
            Target::Forward {
                host: "::1".into(),
                port: 5432
            }
        );
        let q = ConnectQuery {
            kind: Some("exec".into()),
            command: Some("uptime".into()),
            user: Some("deploy".into()),
            ..query("web-1")
        };
        let request = check(&q, &config).unwrap();
        assert_eq!(request.kind.action(), "sessions:Start");
        assert!(matches!(
            request.target,
            Target::Terminal {
                default_user: false,
                ..
            }
        ));
    }

    #[test]
    fn account_names() {
        for good in ["deploy", "_svc", "a.b-c_d", "operon-user", "x"] {
            assert!(valid_user_name(good), "{good}");
        }
        for bad in ["", "1abc", "-x", "a b", "a/b", "ab$", &"a".repeat(33)] {
            assert!(!valid_user_name(bad), "{bad}");
        }
    }
}
