//! How long `next_after`, `due` and `parse` take, per call, in a release
//! build. Goal: every call well under 50 µs, including an expression that
//! never matches (a pass over all years 1970-2199) and `due` after ten years
//! of downtime — the search skips by field, never minute by minute.
//!
//! Run: `cargo bench -p operon-schedule --bench next_after`

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use operon_schedule::Schedule;

const GOAL: Duration = Duration::from_micros(50);

/// Median time per call over 7 rounds of `calls` calls.
fn time_per_call(calls: u32, mut call: impl FnMut(u32)) -> Duration {
    let mut rounds: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for index in 0..calls {
                call(index);
            }
            started.elapsed() / calls
        })
        .collect();
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn report(name: &str, per_call: Duration, failures: &mut Vec<String>) {
    let mark = if per_call <= GOAL { "ok" } else { "SLOW" };
    println!(
        "{name:<58} {:>10.2} µs  {mark}",
        per_call.as_secs_f64() * 1e6
    );
    if per_call > GOAL {
        failures.push(name.to_string());
    }
}

fn main() {
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cases: &[(&str, Option<&str>)] = &[
        ("cron(* * * * ? *)", None),
        ("cron(0/15 * * * ? *)", Some("America/New_York")),
        ("cron(30 2 * * ? *)", Some("Europe/Berlin")),
        ("cron(0 9 ? * MON-FRI *)", Some("Asia/Tokyo")),
        ("cron(0 10 ? * 6#3 *)", Some("America/New_York")),
        ("cron(0 9 LW * ? *)", None),
        ("cron(0 12 15W * ? *)", Some("Australia/Lord_Howe")),
        ("cron(0 0 29 2 ? *)", None),
        ("cron(0 0 ? 2 FRI#5 *)", None),
        ("cron(0 0 30 2 ? *)", None),
        ("rate(5 minutes)", None),
        ("at(2030-06-01T09:00:00)", Some("Europe/Berlin")),
    ];
    let mut failures = Vec::new();
    println!("{:<58} {:>13}", "call", "median/call");
    for (expr, tz) in cases {
        let schedule = Schedule::parse(expr, *tz).unwrap();
        // Each call starts from a different instant spread over ~3 years.
        let per_call = time_per_call(2_000, |index| {
            let after = start + TimeDelta::minutes(i64::from(index) * 787);
            black_box(schedule.next_after(black_box(after)));
        });
        report(
            &format!("next_after {expr} {}", tz.unwrap_or("UTC")),
            per_call,
            &mut failures,
        );
    }
    for (expr, tz) in [
        ("cron(* * * * ? *)", None),
        ("cron(30 2 * * ? *)", Some("Europe/Berlin")),
        ("cron(0 0 ? 2 FRI#5 *)", None),
        ("cron(0 0 30 2 ? *)", None),
    ] {
        let schedule = Schedule::parse(expr, tz).unwrap();
        let created = start - TimeDelta::days(3_653);
        let per_call = time_per_call(2_000, |index| {
            let now = start + TimeDelta::minutes(i64::from(index) * 787);
            black_box(schedule.due(None, created, black_box(now)));
        });
        report(
            &format!("due after 10 years down {expr} {}", tz.unwrap_or("UTC")),
            per_call,
            &mut failures,
        );
    }
    let per_call = time_per_call(2_000, |_| {
        black_box(
            Schedule::parse(
                black_box("cron(0/5 8-18 ? JAN-NOV MON-FRI 2026-2030)"),
                Some("Europe/Berlin"),
            )
            .unwrap(),
        );
    });
    report(
        "parse cron(0/5 8-18 ? JAN-NOV MON-FRI 2026-2030)",
        per_call,
        &mut failures,
    );
    if !failures.is_empty() {
        eprintln!("slower than {GOAL:?}: {failures:?}");
        std::process::exit(1);
    }
}
