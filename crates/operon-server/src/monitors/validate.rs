//! What a monitor definition must satisfy before it is stored: pure checks,
//! each error naming the field and what is allowed.

use operon_api::monitors::{LogSourceSpec, MonitorSpec, ProbeSpec};
use operon_proto::{HealthCheck, LogShipping, LogSource, LogWatcher, Probe};

/// Shortest interval between two runs of a check, in seconds.
pub const MIN_INTERVAL_SECS: u32 = 5;
/// Longest interval between two runs of a check, in seconds.
pub const MAX_INTERVAL_SECS: u32 = 3600;
/// Longest regular expression accepted.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Check `spec` and `targets`' shape (the target grammar is parsed by the
/// caller). `Err` says what is wrong, naming the field.
pub fn validate_spec(spec: &MonitorSpec, targets: &[String]) -> Result<(), String> {
    if targets.is_empty() {
        return Err("targets: give the nodes (tag:KEY=VALUE, node names, all)".into());
    }
    match spec {
        MonitorSpec::Check {
            interval_secs,
            timeout_secs,
            probe,
        } => {
            if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(interval_secs) {
                return Err(format!(
                    "interval_secs {interval_secs}: use {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS}"
                ));
            }
            if *timeout_secs == 0 || timeout_secs >= interval_secs {
                return Err(format!(
                    "timeout_secs {timeout_secs}: use at least 1 and less than interval_secs ({interval_secs})"
                ));
            }
            validate_probe(probe)
        }
        MonitorSpec::Watcher { source, pattern } => {
            valid_source(source)?;
            valid_regex("pattern", pattern)
        }
        MonitorSpec::Shipping { source } => valid_source(source),
    }
}

fn valid_source(source: &LogSourceSpec) -> Result<(), String> {
    match source {
        LogSourceSpec::File { path } => {
            if !path.starts_with('/') || path.contains('\0') || path.len() > 4096 {
                return Err(format!("source.path {path:?}: give an absolute file path"));
            }
            Ok(())
        }
        LogSourceSpec::Journal { unit: Some(unit) } => valid_unit("source.unit", unit),
        LogSourceSpec::Journal { unit: None } => Ok(()),
    }
}

fn validate_probe(probe: &ProbeSpec) -> Result<(), String> {
    match probe {
        ProbeSpec::Systemd { unit } => valid_unit("probe.unit", unit),
        ProbeSpec::Process { name } => {
            if name.is_empty() || name.len() > 255 || name.contains(['/', '\0']) {
                return Err(format!(
                    "probe.name {name:?}: give a process name (1 to 255 characters, no '/')"
                ));
            }
            Ok(())
        }
        ProbeSpec::Tcp { host, port } => {
            if *port == 0 {
                return Err("probe.port 0: use 1 to 65535".into());
            }
            valid_host("probe.host", host)
        }
        ProbeSpec::Http {
            url,
            expect_status,
            body_regex,
        } => {
            valid_url(url)?;
            if let Some(status) = expect_status
                && !(100..=599).contains(status)
            {
                return Err(format!("probe.expect_status {status}: use 100 to 599"));
            }
            match body_regex {
                Some(pattern) => valid_regex("probe.body_regex", pattern),
                None => Ok(()),
            }
        }
        ProbeSpec::Command { command, run_as } => {
            if command.trim().is_empty() || command.contains('\0') {
                return Err("probe.command: give a shell command".into());
            }
            valid_user("probe.run_as", run_as)
        }
    }
}

/// A systemd unit name: letters, digits and `:-_.\@`, not starting with `-`.
fn valid_unit(field: &str, unit: &str) -> Result<(), String> {
    let ok = !unit.is_empty()
        && unit.len() <= 256
        && !unit.starts_with('-')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {unit:?}: give a systemd unit name (letters, digits, ':-_.\\@')"
        ))
    }
}

fn valid_host(field: &str, host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {host:?}: give a host name or an IP address"
        ))
    }
}

fn valid_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("probe.url {url:?}: use an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "probe.url {url:?}: the URL needs a host and no spaces"
        ));
    }
    Ok(())
}

fn valid_regex(field: &str, pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "{field}: give a regular expression of 1 to {MAX_PATTERN_LEN} characters"
        ));
    }
    regex::Regex::new(pattern)
        .map(drop)
        .map_err(|e| format!("{field} {pattern:?} is not a valid regular expression: {e}"))
}

/// A POSIX-ish user name: `[a-z_][a-z0-9_-]*` (a trailing `$` allowed), at
/// most 32 characters.
fn valid_user(field: &str, user: &str) -> Result<(), String> {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let body = user.strip_suffix('$').unwrap_or(user);
    let ok = first_ok
        && user.len() <= 32
        && body
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} {user:?}: give a user name ([a-z_][a-z0-9_-]*, at most 32 characters)"
        ))
    }
}

/// What the agent runs for a monitor named `name`.
pub enum Pushed {
    Check(HealthCheck),
    Watcher(LogWatcher),
    Shipping(LogShipping),
}

/// The protocol form of a monitor.
pub fn to_proto(name: &str, spec: &MonitorSpec) -> Pushed {
    match spec {
        MonitorSpec::Check {
            interval_secs,
            timeout_secs,
            probe,
        } => Pushed::Check(HealthCheck {
            name: name.to_owned(),
            interval_secs: *interval_secs,
            timeout_secs: *timeout_secs,
            probe: match probe.clone() {
                ProbeSpec::Systemd { unit } => Probe::Systemd { unit },
                ProbeSpec::Process { name } => Probe::Process { name },
                ProbeSpec::Tcp { host, port } => Probe::Tcp { host, port },
                ProbeSpec::Http {
                    url,
                    expect_status,
                    body_regex,
                } => Probe::Http {
                    url,
                    expect_status,
                    body_regex,
                },
                ProbeSpec::Command { command, run_as } => Probe::Command { command, run_as },
            },
        }),
        MonitorSpec::Watcher { source, pattern } => Pushed::Watcher(LogWatcher {
            name: name.to_owned(),
            source: log_source(source),
            pattern: pattern.clone(),
        }),
        MonitorSpec::Shipping { source } => Pushed::Shipping(LogShipping {
            name: name.to_owned(),
            source: log_source(source),
        }),
    }
}

fn log_source(source: &LogSourceSpec) -> LogSource {
    match source.clone() {
        LogSourceSpec::File { path } => LogSource::File { path },
        LogSourceSpec::Journal { unit } => LogSource::Journal { unit },
    }
}

/// The account a command probe runs as, if it is one.
pub fn command_user(spec: &MonitorSpec) -> Option<&str> {
    match spec {
        MonitorSpec::Check {
            probe: ProbeSpec::Command { run_as, .. },
            ..
        } => Some(run_as),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(interval: u32, timeout: u32, probe: ProbeSpec) -> MonitorSpec {
        MonitorSpec::Check {
            interval_secs: interval,
            timeout_secs: timeout,
            probe,
        }
    }

    fn tcp(host: &str, port: u16) -> ProbeSpec {
        ProbeSpec::Tcp {
            host: host.into(),
            port,
        }
    }

    fn http(url: &str, status: Option<u16>, regex: Option<&str>) -> ProbeSpec {
        ProbeSpec::Http {
            url: url.into(),
            expect_status: status,
            body_regex: regex.map(Into::into),
        }
    }

    fn command(cmd: &str, user: &str) -> ProbeSpec {
        ProbeSpec::Command {
            command: cmd.into(),
            run_as: user.into(),
        }
    }

    fn watcher(source: LogSourceSpec, pattern: &str) -> MonitorSpec {
        MonitorSpec::Watcher {
            source,
            pattern: pattern.into(),
        }
    }

    fn file(path: &str) -> LogSourceSpec {
        LogSourceSpec::File { path: path.into() }
    }

    #[test]
    fn definitions_are_accepted_or_refused_naming_the_field() {
        let all = vec!["all".to_string()];
        // (spec, Ok or the start of the error)
        let table: Vec<(MonitorSpec, Result<(), &str>)> = vec![
            (check(30, 5, tcp("db.internal", 5432)), Ok(())),
            (check(5, 4, tcp("10.0.0.1", 1)), Ok(())),
            (check(3600, 3599, tcp("::1", 22)), Ok(())),
            (check(4, 1, tcp("h", 1)), Err("interval_secs 4")),
            (check(3601, 1, tcp("h", 1)), Err("interval_secs 3601")),
            (check(30, 30, tcp("h", 1)), Err("timeout_secs 30")),
            (check(30, 0, tcp("h", 1)), Err("timeout_secs 0")),
            (check(30, 5, tcp("h", 0)), Err("probe.port 0")),
            (check(30, 5, tcp("", 80)), Err("probe.host")),
            (check(30, 5, tcp("a b", 80)), Err("probe.host")),
            (check(30, 5, tcp("-oProxy", 80)), Err("probe.host")),
            (
                check(
                    30,
                    5,
                    http("http://127.0.0.1:8080/health", Some(200), Some("ok$")),
                ),
                Ok(()),
            ),
            (
                check(30, 5, http("https://example.com", None, None)),
                Ok(()),
            ),
            (
                check(30, 5, http("ftp://example.com", None, None)),
                Err("probe.url"),
            ),
            (
                check(30, 5, http("http:///path", None, None)),
                Err("probe.url"),
            ),
            (
                check(30, 5, http("http://a b/", None, None)),
                Err("probe.url"),
            ),
            (
                check(30, 5, http("http://h/", Some(42), None)),
                Err("probe.expect_status 42"),
            ),
            (
                check(30, 5, http("http://h/", None, Some("(oops"))),
                Err("probe.body_regex"),
            ),
            (
                check(
                    30,
                    5,
                    ProbeSpec::Systemd {
                        unit: "nginx.service".into(),
                    },
                ),
                Ok(()),
            ),
            (
                check(
                    30,
                    5,
                    ProbeSpec::Systemd {
                        unit: "getty@tty1.service".into(),
                    },
                ),
                Ok(()),
            ),
            (
                check(
                    30,
                    5,
                    ProbeSpec::Systemd {
                        unit: "--all".into(),
                    },
                ),
                Err("probe.unit"),
            ),
            (
                check(30, 5, ProbeSpec::Systemd { unit: "a;b".into() }),
                Err("probe.unit"),
            ),
            (
                check(
                    30,
                    5,
                    ProbeSpec::Process {
                        name: "nginx".into(),
                    },
                ),
                Ok(()),
            ),
            (
                check(
                    30,
                    5,
                    ProbeSpec::Process {
                        name: "/usr/bin/x".into(),
                    },
                ),
                Err("probe.name"),
            ),
            (
                check(30, 5, ProbeSpec::Process { name: "".into() }),
                Err("probe.name"),
            ),
            (
                check(30, 5, command("curl -fsS localhost", "nobody")),
                Ok(()),
            ),
            (check(30, 5, command("true", "www-data")), Ok(())),
            (check(30, 5, command("true", "Root")), Err("probe.run_as")),
            (check(30, 5, command("true", "")), Err("probe.run_as")),
            (check(30, 5, command("true", "a user")), Err("probe.run_as")),
            (check(30, 5, command("  ", "root")), Err("probe.command")),
            (
                watcher(file("/var/log/app.log"), "CRITICAL|OutOfMemory"),
                Ok(()),
            ),
            (watcher(file("var/log/app.log"), "x"), Err("source.path")),
            (watcher(file("/var/log/app.log"), "("), Err("pattern")),
            (watcher(file("/var/log/app.log"), ""), Err("pattern")),
            (watcher(LogSourceSpec::Journal { unit: None }, "x"), Ok(())),
            (
                watcher(
                    LogSourceSpec::Journal {
                        unit: Some("app.service".into()),
                    },
                    "x",
                ),
                Ok(()),
            ),
            (
                watcher(
                    LogSourceSpec::Journal {
                        unit: Some("-f".into()),
                    },
                    "x",
                ),
                Err("source.unit"),
            ),
        ];
        for (spec, expected) in table {
            let got = validate_spec(&spec, &all);
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{spec:?}"),
                Err(start) => {
                    let err = got.expect_err(&format!("{spec:?} is refused"));
                    assert!(err.starts_with(start), "{spec:?}: {err}");
                }
            }
        }
        let err = validate_spec(&check(30, 5, tcp("h", 1)), &[]).unwrap_err();
        assert!(err.starts_with("targets"), "{err}");
    }

    #[test]
    fn the_protocol_form_keeps_every_field() {
        let spec = check(30, 5, http("http://h/", Some(204), Some("ok")));
        let Pushed::Check(pushed) = to_proto("web", &spec) else {
            panic!("a check")
        };
        assert_eq!(pushed.name, "web");
        assert_eq!((pushed.interval_secs, pushed.timeout_secs), (30, 5));
        assert_eq!(
            pushed.probe,
            Probe::Http {
                url: "http://h/".into(),
                expect_status: Some(204),
                body_regex: Some("ok".into())
            }
        );
        let spec = watcher(
            LogSourceSpec::Journal {
                unit: Some("a".into()),
            },
            "E",
        );
        let Pushed::Watcher(pushed) = to_proto("j", &spec) else {
            panic!("a watcher")
        };
        assert_eq!(
            pushed.source,
            LogSource::Journal {
                unit: Some("a".into())
            }
        );
        assert_eq!(
            command_user(&check(30, 5, command("x", "deploy"))),
            Some("deploy")
        );
        assert_eq!(command_user(&spec), None);
    }
}
