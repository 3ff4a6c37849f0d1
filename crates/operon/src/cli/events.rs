//! `operon events ...`: the offline pattern tools (test-pattern, match) and,
//! through [`super::bus`], `put` and `tail` against a server.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use operon_pattern::cases::{Outcome, evaluate, run_case_line};
use operon_pattern::{Matcher, Scratch, parse_rule_set};

#[derive(clap::Subcommand)]
pub enum EventsCmd {
    /// Put events on a bus (PutEvents).
    Put {
        #[command(flatten)]
        client: super::client::ClientArgs,
        #[command(flatten)]
        args: super::bus::PutArgs,
    },
    /// Stream events of a bus live, one JSON envelope per line.
    Tail {
        #[command(flatten)]
        client: super::client::ClientArgs,
        #[command(flatten)]
        args: super::bus::TailArgs,
    },
    /// Test an event pattern against an event (prints match / no_match), or run a case file.
    TestPattern {
        /// The event pattern (JSON file).
        #[arg(long, required_unless_present = "cases", requires = "event")]
        pattern: Option<PathBuf>,
        /// The event (JSON file).
        #[arg(long)]
        event: Option<PathBuf>,
        /// JSON lines of {"id","event","pattern","expect"} (and optional "pattern_text").
        #[arg(long, conflicts_with_all = ["pattern", "event"])]
        cases: Option<PathBuf>,
    },
    /// Match every event of a file against a rule set and count matches per rule.
    Match {
        /// JSON object mapping rule names to event patterns.
        #[arg(long)]
        rules: PathBuf,
        /// Events, one JSON object per line (gzip-compressed if the name ends in .gz).
        #[arg(long)]
        events: PathBuf,
        /// Print {"events","seconds","events_per_second","matches"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: EventsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EventsCmd::Put { client, args } => super::bus::put(&client, args),
        EventsCmd::Tail { client, args } => super::bus::tail(&client, args),
        EventsCmd::TestPattern {
            cases: Some(cases), ..
        } => run_cases(&cases),
        EventsCmd::TestPattern {
            pattern: Some(pattern),
            event: Some(event),
            ..
        } => test_pattern(&pattern, &event),
        EventsCmd::TestPattern { .. } => bail!("give --pattern and --event, or --cases"),
        EventsCmd::Match {
            rules,
            events,
            json,
        } => match_events(&rules, &events, json),
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn test_pattern(pattern: &Path, event: &Path) -> anyhow::Result<ExitCode> {
    let (outcome, detail) = evaluate(&read_text(pattern)?, &read_text(event)?);
    match outcome {
        Outcome::Match | Outcome::NoMatch => {
            println!("{}", outcome.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Outcome::InvalidPattern | Outcome::InvalidEvent => {
            eprintln!("{}", detail.unwrap_or_else(|| outcome.as_str().to_string()));
            Ok(ExitCode::from(2))
        }
    }
}

fn run_cases(path: &Path) -> anyhow::Result<ExitCode> {
    let text = read_text(path)?;
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut stdout = std::io::stdout().lock();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match run_case_line(line) {
            Ok(result) if result.passed() => passed += 1,
            Ok(result) => {
                failed += 1;
                let detail = result.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                writeln!(
                    stdout,
                    "FAIL {}: expected {}, got {}{detail}",
                    result.id,
                    result.expected,
                    result.actual.as_str()
                )?;
            }
            Err(message) => {
                failed += 1;
                writeln!(stdout, "FAIL line {}: {message}", number + 1)?;
            }
        }
    }
    writeln!(stdout, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn read_event_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut lines = Vec::new();
    for line in BufReader::with_capacity(1 << 20, reader).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    Ok(lines)
}

fn match_events(rules: &Path, events: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let rule_set = match parse_rule_set(&read_text(rules)?) {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("{}: {e}", rules.display());
            return Ok(ExitCode::from(2));
        }
    };
    let mut matcher: Matcher<usize> = Matcher::new();
    for (index, (_, pattern)) in rule_set.iter().enumerate() {
        matcher.add(index, pattern);
    }
    let lines = read_event_lines(events)?;
    let mut counts = vec![0u64; rule_set.len()];
    let mut invalid = 0u64;
    let mut scratch = Scratch::default();
    let started = Instant::now();
    for line in &lines {
        if matcher
            .for_each_match(line, &mut scratch, |&i| counts[i] += 1)
            .is_err()
        {
            invalid += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if invalid > 0 {
        eprintln!("{invalid} events were not valid JSON objects");
    }
    let names = rule_set.iter().map(|(name, _)| name.as_str());
    if json {
        let matches: serde_json::Map<String, serde_json::Value> = names
            .zip(&counts)
            .map(|(n, &c)| (n.to_string(), c.into()))
            .collect();
        let report = serde_json::json!({
            "events": lines.len(),
            "seconds": seconds,
            "events_per_second": lines.len() as f64 / seconds.max(1e-9),
            "matches": matches,
        });
        println!("{report}");
    } else {
        for (name, count) in names.zip(&counts) {
            println!("{name}\t{count}");
        }
        println!(
            "{} events in {seconds:.3} s ({:.0} events/s)",
            lines.len(),
            lines.len() as f64 / seconds.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}
