//! An account of its own for each test's interactive shells.
//!
//! A login shell reads its account's startup files. Root's on a developer or
//! CI machine can do anything: this machine's `~/.bashrc` runs `pyenv init`,
//! whose rehash waits up to 60 s for a lock file that a shell hung up in the
//! middle of it leaves behind (a test ending a session does exactly that).
//! So tests that type into a shell, or hang one up, do it as a fresh account
//! made with `useradd` from `/etc/skel`, removed with its home when dropped.
//! Not running as root (no `useradd`), they use the current account.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct ShellAccount {
    pub name: String,
    /// Made by this test, so removed by it.
    created: bool,
}

impl ShellAccount {
    pub fn new() -> ShellAccount {
        if id(&["-u"]) != "0" {
            return ShellAccount {
                name: id(&["-un"]),
                created: false,
            };
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "opsh{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Parallel tests may find /etc/passwd locked by another useradd.
        for _ in 0..50 {
            let status = Command::new("useradd")
                .args(["--create-home", "--shell", "/bin/bash", &name])
                .stderr(Stdio::null())
                .status()
                .expect("useradd runs");
            if status.success() {
                return ShellAccount {
                    name,
                    created: true,
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("useradd {name} kept failing");
    }
}

impl Drop for ShellAccount {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel")
                .args(["--force", "--remove", &self.name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
