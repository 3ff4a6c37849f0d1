//! `service`: running/stopped and enabled/disabled, through systemd when
//! `/run/systemd/system` exists, else SysV init: running means
//! `/etc/init.d/NAME status` exits 0, start/stop/restart go through the init
//! script, enabled means an `S??NAME` link in `/etc/rc2.d` to `rc5.d`, and
//! `update-rc.d` enables and disables. A service notified by a resource that
//! changed is restarted after its state is ensured, unless it is declared
//! stopped or this run just started it.

use std::path::Path;

use operon_state::document::{ServiceSpec, ServiceState};

use super::exec::{self, ToolOutput};
use super::{Found, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    Systemd,
    SysV,
}

fn init() -> Init {
    if Path::new("/run/systemd/system").is_dir() {
        Init::Systemd
    } else {
        Init::SysV
    }
}

/// Whether `/etc/rcN.d` (N in 2..=5) holds an `S??NAME` entry, given the
/// entries' names. Pure.
pub fn enabled_in(names: &[String], service: &str) -> bool {
    names.iter().any(|n| {
        n.len() == service.len() + 3
            && n.starts_with('S')
            && n[1..3].bytes().all(|b| b.is_ascii_digit())
            && &n[3..] == service
    })
}

fn sysv_links() -> Vec<String> {
    let mut names = Vec::new();
    for level in 2..=5 {
        if let Ok(dir) = std::fs::read_dir(format!("/etc/rc{level}.d")) {
            names.extend(
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    names
}

struct Service<'a> {
    name: &'a str,
    init: Init,
}

impl Service<'_> {
    fn script(&self) -> String {
        format!("/etc/init.d/{}", self.name)
    }

    async fn action(&self, verb: &str) -> Result<ToolOutput, String> {
        match self.init {
            Init::Systemd => exec::tool("systemctl", &[verb, self.name], &[]).await,
            Init::SysV => exec::tool(&self.script(), &[verb], &[]).await,
        }
    }

    async fn must(&self, verb: &str) -> Result<(), String> {
        let out = self.action(verb).await?;
        if out.success() {
            Ok(())
        } else {
            Err(out.failure(&format!("{verb} of {}", self.name)))
        }
    }

    async fn running(&self) -> Result<bool, String> {
        let verb = match self.init {
            Init::Systemd => "is-active",
            Init::SysV => "status",
        };
        Ok(self.action(verb).await?.success())
    }

    async fn enabled(&self) -> Result<bool, String> {
        match self.init {
            Init::Systemd => Ok(exec::tool("systemctl", &["is-enabled", self.name], &[])
                .await?
                .success()),
            Init::SysV => Ok(enabled_in(&sysv_links(), self.name)),
        }
    }

    async fn set_enabled(&self, on: bool) -> Result<(), String> {
        match self.init {
            Init::Systemd => {
                let verb = if on { "enable" } else { "disable" };
                let out = exec::tool("systemctl", &[verb, self.name], &[]).await?;
                if out.success() {
                    Ok(())
                } else {
                    Err(out.failure(&format!("systemctl {verb} {}", self.name)))
                }
            }
            Init::SysV => {
                let steps: &[&str] = if on {
                    &["defaults", "enable"]
                } else {
                    &["disable"]
                };
                for verb in steps {
                    let out = exec::tool("update-rc.d", &[self.name, verb], &[]).await?;
                    if !out.success() {
                        return Err(out.failure(&format!("update-rc.d {} {verb}", self.name)));
                    }
                }
                Ok(())
            }
        }
    }
}

pub async fn ensure(spec: &ServiceSpec, mode: Mode, notifiers: &[&str]) -> Result<Found, String> {
    let service = Service {
        name: &spec.name,
        init: init(),
    };
    if service.init == Init::SysV && !Path::new(&service.script()).exists() {
        return Err(format!(
            "service {}: no init script {}",
            spec.name,
            service.script()
        ));
    }
    let mut found = Found::compliant();
    let mut started = false;
    if let Some(enabled) = spec.enabled
        && service.enabled().await? != enabled
    {
        if mode == Mode::Apply {
            service.set_enabled(enabled).await?;
        }
        found
            .changes
            .push(if enabled { "enabled" } else { "disabled" }.into());
    }
    let running = service.running().await?;
    match spec.state {
        Some(ServiceState::Running) if !running => {
            if mode == Mode::Apply {
                service.must("start").await?;
            }
            started = true;
            found.changes.push("started".into());
        }
        Some(ServiceState::Stopped) if running => {
            if mode == Mode::Apply {
                service.must("stop").await?;
            }
            found.changes.push("stopped".into());
        }
        _ => {}
    }
    let restartable = spec.state != Some(ServiceState::Stopped) && !started;
    if !notifiers.is_empty() && restartable {
        let by = notifiers.join(", ");
        match mode {
            Mode::Check => found
                .changes
                .push(format!("would restart (notified by {by})")),
            Mode::Apply => {
                service.must("restart").await?;
                found.changes.push(format!("restarted (notified by {by})"));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_links_are_recognised() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(enabled_in(&names(&["README", "S01cron", "K01ssh"]), "cron"));
        assert!(!enabled_in(&names(&["K01cron"]), "cron"));
        assert!(!enabled_in(&names(&["S01cronie"]), "cron"));
        assert!(!enabled_in(&names(&["Sx1cron"]), "cron"));
        assert!(!enabled_in(&names(&[]), "cron"));
    }
}
