//! Asciicast v2 recordings (what `GET /v1/sessions/{id}/recording` serves):
//! reading them and planning their replay.
//!
//! Pure on purpose: `operon sessions play` only sleeps and writes what
//! [`plan`] returns, so the timing rules (speed, idle cap, which events
//! show) are tested here without a terminal or a clock.
//!
//! The format (<https://docs.asciinema.org/manual/asciicast/v2/>): the first
//! line is a JSON header object with `"version": 2`; every other non-empty
//! line is an event `[seconds since start, code, data]`. Code `"o"` is
//! output, the only one replayed; `"i"` (input), `"r"` (resize) and `"m"`
//! (marker) are read and skipped.

use std::time::Duration;

use serde::Deserialize;

/// Why a recording could not be read; every error names its line (1-based).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CastError {
    #[error("the recording is empty")]
    Empty,
    #[error("line 1: the header is not an asciicast header: {0}")]
    BadHeader(String),
    #[error("line 1: asciicast version {0} is not supported (only 2)")]
    Version(u64),
    #[error("line {line}: not an event [time, code, data]: {reason}")]
    BadEvent { line: usize, reason: String },
    #[error("line {line}: the time {time} is not a number of seconds from 0")]
    BadTime { line: usize, time: f64 },
}

/// The header line (the fields replay uses; others are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Header {
    pub version: u64,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    /// Seconds: the recorder's suggested cap on pauses.
    #[serde(default)]
    pub idle_time_limit: Option<f64>,
}

/// One event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the recording started.
    pub time: f64,
    /// `"o"` output, `"i"` input, `"r"` resize, `"m"` marker.
    pub code: String,
    /// JSON escapes resolved.
    pub data: String,
}

/// A recording read from its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub header: Header,
    pub events: Vec<Event>,
}

/// Read a whole asciicast v2 text.
pub fn parse(text: &str) -> Result<Cast, CastError> {
    let mut lines = text.lines().enumerate();
    let header_line = lines
        .by_ref()
        .find(|(_, line)| !line.trim().is_empty())
        .map(|(_, line)| line)
        .ok_or(CastError::Empty)?;
    let header = parse_header(header_line)?;
    if header.version != 2 {
        return Err(CastError::Version(header.version));
    }
    let mut events = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        events.push(parse_event(index + 1, line)?);
    }
    Ok(Cast { header, events })
}

/// The header is a JSON object (serde would also take a bare array).
fn parse_header(line: &str) -> Result<Header, CastError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| CastError::BadHeader(e.to_string()))?;
    if !value.is_object() {
        return Err(CastError::BadHeader("not a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| CastError::BadHeader(e.to_string()))
}

fn parse_event(line: usize, text: &str) -> Result<Event, CastError> {
    let (time, code, data): (f64, String, String) =
        serde_json::from_str(text).map_err(|e| CastError::BadEvent {
            line,
            reason: e.to_string(),
        })?;
    if !time.is_finite() || time < 0.0 {
        return Err(CastError::BadTime { line, time });
    }
    Ok(Event { time, code, data })
}

/// When to write what: `(pause before writing, output)` for every `"o"`
/// event in order. A pause is the time since the previous output (never
/// negative: a time going back counts as no pause), capped at `max_wait`
/// (asciinema's idle time limit, applied to the recording's time as
/// asciinema does) and then divided by `speed`. `speed` must be positive
/// and finite (the CLI checks it).
pub fn plan(events: &[Event], speed: f64, max_wait: Option<Duration>) -> Vec<(Duration, &str)> {
    let mut previous = 0.0_f64;
    let mut steps = Vec::new();
    for event in events.iter().filter(|e| e.code == "o") {
        let gap = (event.time - previous).max(0.0);
        previous = previous.max(event.time);
        let mut pause = Duration::from_secs_f64(gap);
        if let Some(cap) = max_wait {
            pause = pause.min(cap);
        }
        steps.push((pause.div_f64(speed), event.data.as_str()));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = concat!(
        r#"{"version": 2, "width": 80, "height": 24, "timestamp": 1700000000, "env": {"TERM": "xterm"}}"#,
        "\n",
        r#"[0.5, "o", "$ "]"#,
        "\n",
        r#"[1.0, "i", "l"]"#,
        "\n",
        r#"[1.5, "r", "100x40"]"#,
        "\n",
        r#"[2.0, "o", "ls\r\n\u001b[1mfile\u001b[0m\r\n"]"#,
        "\n",
        r#"[62.0, "o", "done"]"#,
        "\n",
        r#"[62.25, "m", "marker"]"#,
        "\n",
    );

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_the_header_and_every_event() {
        let cast = parse(CAST).unwrap();
        assert_eq!(cast.header.version, 2);
        assert_eq!((cast.header.width, cast.header.height), (80, 24));
        assert_eq!(cast.header.idle_time_limit, None);
        assert_eq!(cast.events.len(), 6);
        assert_eq!(cast.events[3].data, "ls\r\n\u{1b}[1mfile\u{1b}[0m\r\n");
        assert_eq!(cast.events[2].code, "r");
    }

    #[test]
    fn plays_only_output_with_its_pauses() {
        let cast = parse(CAST).unwrap();
        let steps = plan(&cast.events, 1.0, None);
        let texts: Vec<&str> = steps.iter().map(|(_, text)| *text).collect();
        assert_eq!(texts, ["$ ", "ls\r\n\u{1b}[1mfile\u{1b}[0m\r\n", "done"]);
        let pauses: Vec<Duration> = steps.iter().map(|(pause, _)| *pause).collect();
        // The input and resize between the first two outputs add no pause.
        assert_eq!(pauses, [ms(500), ms(1500), ms(60_000)]);
    }

    #[test]
    fn speed_divides_every_pause() {
        let cast = parse(CAST).unwrap();
        let pauses: Vec<Duration> = plan(&cast.events, 2.0, None)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pauses, [ms(250), ms(750), ms(30_000)]);
        let slow: Vec<Duration> = plan(&cast.events, 0.5, None)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(slow, [ms(1000), ms(3000), ms(120_000)]);
    }

    #[test]
    fn long_pauses_are_capped_before_the_speed() {
        let cast = parse(CAST).unwrap();
        let pauses: Vec<Duration> = plan(&cast.events, 1.0, Some(ms(2000)))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pauses, [ms(500), ms(1500), ms(2000)]);
        let fast: Vec<Duration> = plan(&cast.events, 4.0, Some(ms(2000)))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(fast, [ms(125), ms(375), ms(500)]);
    }

    #[test]
    fn times_going_back_make_no_pause() {
        let text = "{\"version\":2}\n[3.0,\"o\",\"a\"]\n[1.0,\"o\",\"b\"]\n[4.0,\"o\",\"c\"]\n";
        let cast = parse(text).unwrap();
        let pauses: Vec<Duration> = plan(&cast.events, 1.0, None)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pauses, [ms(3000), ms(0), ms(1000)]);
    }

    #[test]
    fn the_header_idle_limit_is_read() {
        let cast =
            parse("{\"version\":2,\"width\":1,\"height\":1,\"idle_time_limit\":1.5}\n").unwrap();
        assert_eq!(cast.header.idle_time_limit, Some(1.5));
        assert!(cast.events.is_empty());
    }

    #[test]
    fn blank_lines_are_skipped_and_do_not_shift_line_numbers() {
        let text = "{\"version\":2}\n\n[1.0,\"o\",\"a\"]\n\n[oops]\n";
        assert!(matches!(
            parse(text),
            Err(CastError::BadEvent { line: 5, .. })
        ));
        let ok = parse("\n{\"version\":2}\r\n[1.0,\"o\",\"a\"]\r\n\r\n").unwrap();
        assert_eq!(ok.events.len(), 1);
    }

    #[test]
    fn malformed_recordings_name_the_line() {
        assert_eq!(parse(""), Err(CastError::Empty));
        assert_eq!(parse("\n  \n"), Err(CastError::Empty));
        assert!(matches!(parse("not json"), Err(CastError::BadHeader(_))));
        assert!(matches!(parse("[1]"), Err(CastError::BadHeader(_))));
        assert_eq!(parse("{\"version\":1}"), Err(CastError::Version(1)));
        let bad = [
            ("{\"version\":2}\n[1.0,\"o\"]", 2),
            ("{\"version\":2}\n[1.0,\"o\",\"a\"]\n[\"x\",\"o\",\"a\"]", 3),
            (
                "{\"version\":2}\n[1.0,\"o\",\"a\"]\n[1.0,\"o\",\"a\"]\n[2.0,\"o\",7]",
                4,
            ),
            ("{\"version\":2}\n{\"time\":1}", 2),
            ("{\"version\":2}\n[1.0,\"o\",\"a\",\"extra\"]", 2),
            ("{\"version\":2}\n[1.0,\"o\",\"unterminated]", 2),
        ];
        for (text, line) in bad {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, CastError::BadEvent { line: l, .. } if l == line),
                "{text:?}: {err:?}"
            );
            assert!(
                err.to_string().starts_with(&format!("line {line}:")),
                "{err}"
            );
        }
        let negative = parse("{\"version\":2}\n[-1.0,\"o\",\"a\"]").unwrap_err();
        assert_eq!(
            negative,
            CastError::BadTime {
                line: 2,
                time: -1.0
            }
        );
        assert!(negative.to_string().starts_with("line 2:"), "{negative}");
    }
}
