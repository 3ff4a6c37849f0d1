//! `package`: installed (any version, an exact one, or the newest
//! available) or absent. The package manager is found once per agent
//! process: `dpkg-query` (apt) first, else `rpm` (dnf).
//!
//! apt: installed means `dpkg-query -W -f='${db:Status-Abbrev} ${Version}'`
//! says `ii`; the newest is `apt-cache policy`'s `Candidate`; installs run
//! `apt-get install -y --no-install-recommends` with
//! `DEBIAN_FRONTEND=noninteractive` and `--force-confold` (a changed
//! configuration file is kept), `NAME=VERSION` for an exact version
//! (downgrades allowed); `absent` runs `apt-get remove -y`.
//! dnf: `rpm -q --qf '%{VERSION}-%{RELEASE}'`, `dnf install -y NAME[-VERSION]`,
//! `dnf remove -y`, the newest from `dnf repoquery --latest-limit 1`.

use std::sync::OnceLock;

use operon_state::document::{PackageSpec, PackageState, PackageVersion};

use super::exec;
use super::{Found, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    Dnf,
}

static MANAGER: OnceLock<Option<Manager>> = OnceLock::new();

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| crate::runner::DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .chain(std::env::split_paths(crate::runner::DEFAULT_PATH))
        .any(|dir| dir.join(program).is_file())
}

/// The node's package manager, detected once.
pub fn manager() -> Option<Manager> {
    *MANAGER.get_or_init(|| {
        if on_path("dpkg-query") && on_path("apt-get") {
            Some(Manager::Apt)
        } else if on_path("rpm") && on_path("dnf") {
            Some(Manager::Dnf)
        } else {
            None
        }
    })
}

/// The installed version from `dpkg-query`'s `${db:Status-Abbrev} ${Version}`. Pure.
pub fn parse_dpkg_status(text: &str) -> Option<String> {
    let text = text.trim();
    if !text.starts_with("ii") {
        return None;
    }
    let version = text.get(3..).unwrap_or_default().trim();
    Some(version.to_string())
}

/// `Candidate:` of `apt-cache policy`; `None` when there is none. Pure.
pub fn parse_candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != "(none)")
        .map(str::to_string)
}

const APT_ENV: &[(&str, &str)] = &[("DEBIAN_FRONTEND", "noninteractive")];

async fn installed(manager: Manager, name: &str) -> Result<Option<String>, String> {
    match manager {
        Manager::Apt => {
            let out = exec::tool(
                "dpkg-query",
                &["-W", "-f=${db:Status-Abbrev} ${Version}", name],
                &[],
            )
            .await?;
            Ok(if out.success() {
                parse_dpkg_status(&out.output)
            } else {
                None
            })
        }
        Manager::Dnf => {
            let out =
                exec::tool("rpm", &["-q", "--qf", "%{VERSION}-%{RELEASE}", name], &[]).await?;
            Ok(out.success().then(|| out.output.trim().to_string()))
        }
    }
}

async fn newest(manager: Manager, name: &str) -> Result<String, String> {
    let out = match manager {
        Manager::Apt => exec::tool("apt-cache", &["policy", name], &[]).await?,
        Manager::Dnf => {
            exec::tool(
                "dnf",
                &[
                    "-q",
                    "repoquery",
                    "--latest-limit",
                    "1",
                    "--qf",
                    "%{version}-%{release}",
                    name,
                ],
                &[],
            )
            .await?
        }
    };
    if !out.success() {
        return Err(out.failure("looking up the newest version"));
    }
    let found = match manager {
        Manager::Apt => parse_candidate(&out.output),
        Manager::Dnf => out
            .output
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string),
    };
    found.ok_or_else(|| format!("package {name} has no installable version"))
}

async fn install(manager: Manager, name: &str, version: Option<&str>) -> Result<(), String> {
    let out = match manager {
        Manager::Apt => {
            let target = match version {
                Some(v) => format!("{name}={v}"),
                None => name.to_string(),
            };
            exec::tool(
                "apt-get",
                &[
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "--allow-downgrades",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    &target,
                ],
                APT_ENV,
            )
            .await?
        }
        Manager::Dnf => {
            let target = match version {
                Some(v) => format!("{name}-{v}"),
                None => name.to_string(),
            };
            exec::tool("dnf", &["install", "-y", &target], &[]).await?
        }
    };
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(&format!("installing {name}")))
    }
}

async fn remove(manager: Manager, name: &str) -> Result<(), String> {
    let out = match manager {
        Manager::Apt => exec::tool("apt-get", &["remove", "-y", name], APT_ENV).await?,
        Manager::Dnf => exec::tool("dnf", &["remove", "-y", name], &[]).await?,
    };
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(&format!("removing {name}")))
    }
}

pub async fn ensure(spec: &PackageSpec, mode: Mode) -> Result<Found, String> {
    let manager = manager().ok_or("no supported package manager (apt or dnf) on this node")?;
    let name = spec.name.as_str();
    let current = installed(manager, name).await?;
    match spec.state {
        PackageState::Absent => match current {
            None => Ok(Found::compliant()),
            Some(version) => {
                if mode == Mode::Apply {
                    remove(manager, name).await?;
                }
                Ok(Found::change(format!("removed {version}")))
            }
        },
        PackageState::Installed => {
            let want = match &spec.version {
                PackageVersion::Any => None,
                PackageVersion::Exact(v) => Some(v.clone()),
                PackageVersion::Latest => Some(newest(manager, name).await?),
            };
            let phrase = match (&current, &want) {
                (None, Some(v)) => format!("installed {v}"),
                (None, None) => "installed".to_string(),
                (Some(have), Some(v)) if have != v => format!("{have} -> {v}"),
                _ => return Ok(Found::compliant()),
            };
            if mode == Mode::Apply {
                install(manager, name, want.as_deref()).await?;
                if want.is_none()
                    && let Some(v) = installed(manager, name).await?
                {
                    return Ok(Found::change(format!("installed {v}")));
                }
            }
            Ok(Found::change(phrase))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_table() {
        assert_eq!(parse_dpkg_status("ii  1.2-3"), Some("1.2-3".into()));
        assert_eq!(parse_dpkg_status("ii  1:2.0"), Some("1:2.0".into()));
        assert_eq!(parse_dpkg_status("rc  1.0"), None);
        assert_eq!(parse_dpkg_status("un  "), None);
        assert_eq!(parse_dpkg_status(""), None);
    }

    #[test]
    fn candidate_table() {
        let policy = "x:\n  Installed: 1.0\n  Candidate: 1.1\n  Version table:\n";
        assert_eq!(parse_candidate(policy), Some("1.1".into()));
        assert_eq!(
            parse_candidate("x:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
        assert_eq!(parse_candidate(""), None);
    }
}
