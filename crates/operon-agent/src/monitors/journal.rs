//! Reading the systemd journal for a log watcher: `journalctl -f -o cat -n 0
//! [-u UNIT]` as a child process, its output fed to the watcher's
//! [`LineCounter`](super::lines::LineCounter) (or, shipping, a line collector).
//!
//! On a node without `journalctl` (no systemd, like most containers) the
//! watcher says so once in the agent's log and reports nothing: no
//! `log.matches` at all rather than a misleading 0, so an alarm on it sees
//! missing data. A `journalctl` that exits is started again after
//! [`RESTART_AFTER`]; lines written meanwhile are not counted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};

use super::lines::LineFeed;

/// The program run unless another is configured (tests).
pub const JOURNALCTL: &str = "journalctl";

/// Wait before starting `journalctl` again after it exited.
pub const RESTART_AFTER: Duration = Duration::from_secs(10);

/// The arguments for following `unit` (every unit when `None`) from now on.
pub fn journalctl_args(unit: Option<&str>) -> Vec<String> {
    journalctl_args_as("cat", unit)
}

/// The arguments for following `unit` from now on in `output` format
/// (`cat` for watchers, `json` for shipping: fields and priorities).
pub fn journalctl_args_as(output: &str, unit: Option<&str>) -> Vec<String> {
    let mut args = vec!["-f", "-o", output, "-n", "0", "--no-pager"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if let Some(unit) = unit {
        args.push(format!("--unit={unit}"));
    }
    args
}

/// A running `journalctl`, or the reason there is none.
pub struct JournalReader {
    program: PathBuf,
    unit: Option<String>,
    child: Option<(Child, ChildStdout)>,
    /// `journalctl -o` format.
    output: &'static str,
    /// Set when `journalctl` cannot be run at all: nothing is reported.
    pub unavailable: Option<String>,
}

impl JournalReader {
    pub fn new(program: &Path, unit: Option<String>) -> JournalReader {
        JournalReader {
            program: program.to_owned(),
            unit,
            child: None,
            output: "cat",
            unavailable: None,
        }
    }

    /// Read entries as JSON objects, one a line (`-o json`), for shipping.
    pub fn json(mut self) -> JournalReader {
        self.output = "json";
        self
    }

    /// Read the next piece of the journal into `counter`: matching lines
    /// completed. Cancel-safe (a read that did not finish consumed nothing).
    /// Never returns while `journalctl` is unavailable.
    pub async fn next(&mut self, counter: &mut impl LineFeed, watcher: &str) -> u64 {
        loop {
            if self.child.is_none() && !self.start(watcher) {
                // Cannot run at all, or failed: try again later.
                tokio::time::sleep(RESTART_AFTER).await;
                continue;
            }
            let Some((_, stdout)) = &mut self.child else {
                continue;
            };
            let mut buf = [0u8; 16 * 1024];
            match stdout.read(&mut buf).await {
                Ok(n) if n > 0 => return counter.feed(&buf[..n]),
                Ok(_) => tracing::warn!(watcher, "journalctl ended; starting it again"),
                Err(err) => {
                    tracing::warn!(watcher, %err, "reading journalctl failed; starting it again")
                }
            }
            self.child = None; // kill_on_drop stops it
            counter.restart();
            tokio::time::sleep(RESTART_AFTER).await;
        }
    }

    fn start(&mut self, watcher: &str) -> bool {
        let spawned = Command::new(&self.program)
            .args(journalctl_args_as(self.output, self.unit.as_deref()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(mut child) => match child.stdout.take() {
                Some(stdout) => {
                    self.unavailable = None;
                    self.child = Some((child, stdout));
                    true
                }
                None => false,
            },
            Err(err) => {
                let reason = format!(
                    "cannot run {} ({err}): this node has no systemd journal to read",
                    self.program.display()
                );
                if self.unavailable.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(watcher, %reason, "journal log watcher reports nothing");
                }
                self.unavailable = Some(reason);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_from_now_with_an_optional_unit() {
        assert_eq!(journalctl_args(None).join(" "), "-f -o cat -n 0 --no-pager");
        assert_eq!(
            journalctl_args(Some("app.service")).join(" "),
            "-f -o cat -n 0 --no-pager --unit=app.service"
        );
    }
}
