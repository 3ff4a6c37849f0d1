//! Metrics with the real binary: a server started with a retention flag,
//! an agent session sending a batch by hand (acknowledged), then
//! `operon metrics query` (sparkline line, `--chart` SVG, `--json`) and
//! `operon metrics names`. The lead's end-to-end with real agents builds
//! on this once the agent sampler is merged.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, free_port, http, old_agent_session};

/// One masked text frame (a zero mask leaves the payload as it is).
fn text_frame(payload: &str) -> Vec<u8> {
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload.as_bytes());
    frame
}

#[test]
fn metrics_query_draws_sparklines_and_charts_and_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("server"),
        free_port(),
        &["--metrics-raw-retention", "2d"],
    );
    let token = server.enroll_token(&["env=prod"], 1, "1h");
    let inventory = json!({"hostname": "web-1", "os_name": "", "os_version": "", "kernel": "",
        "arch": "", "cpus": 1, "memory_bytes": 0, "agent_version": "0.0.1"});
    let (status, enrolled) = http(
        server.port,
        "POST",
        "/v1/agent/enroll",
        None,
        Some(&json!({"enroll_token": token, "name": "web-1", "inventory": inventory})),
    );
    assert_eq!(status, 200, "{enrolled}");
    let mut session = old_agent_session(server.port, enrolled["credential"].as_str().unwrap());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t = (now - 10 * 60_000).div_euclid(60_000) * 60_000;
    let points: Vec<Value> = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": "cpu.used", "at": t + i as i64 * 20_000, "value": v, "unit": "Percent"}))
        .collect();
    let batch = json!({"type": "metrics", "seq": 41, "points": points});
    let decoded: operon_proto::AgentMessage = operon_proto::decode(&batch.to_string()).unwrap();
    assert!(matches!(decoded, operon_proto::AgentMessage::Metrics(_)));
    session.write_all(&text_frame(&batch.to_string())).unwrap();
    session
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"metrics_ack\"") {
        let n = session.read(&mut buf).expect("an acknowledgement in time");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }

    let chart = dir.path().join("cpu.svg");
    let chart_arg = chart.to_str().unwrap();
    let range = format!("{t}");
    let query = [
        "metrics", "query", "--metric", "cpu.used", "--node", "web-1", "--period", "60", "--from",
        &range, "--chart", chart_arg,
    ];
    let out = server.cli(&query);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("web-1"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("▁█"), "{line}");
    assert!(
        line.ends_with("min 20 avg 35 max 50 last 50 Percent"),
        "{line}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );

    let answer = server.cli_json(&query[..query.len() - 2]);
    assert_eq!(answer["resolution"], "1m");
    assert_eq!(
        answer["series"][0]["points"],
        json!([[t, 20.0], [t + 60_000, 50.0]])
    );
    let names = server.cli_json(&["metrics", "names"]);
    assert_eq!(names["names"][0]["name"], "cpu.used");

    let out = server.cli(&[
        "metrics", "query", "--metric", "cpu.used", "--stat", "median",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("median"));
}
