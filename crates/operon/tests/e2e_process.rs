//! End-to-end: the server and agent as processes ("no side doors"): SIGTERM
//! stops the server cleanly and promptly, one server per data directory,
//! private files, commands that do not see the agent's environment, and no
//! credentials over plain HTTP off loopback.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn credentials_are_not_sent_over_plain_http_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // An address that never answers: a refusal must come before connecting.
    let remote = "http://10.255.255.1:7780";
    let started = Instant::now();
    let out = operon()
        .args(["nodes", "list", "--server", remote, "--token", "t"])
        .env_remove("OPERON_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--insecure") && err.contains("10.255.255.1"),
        "{err}"
    );

    let out = operon()
        .args(["agent", "--server", remote, "--enroll-token", "ot-x"])
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .env_remove("OPERON_INSECURE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--insecure"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
