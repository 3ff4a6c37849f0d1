//! `operon metrics put NAME VALUE`: one datapoint, written as a custom
//! metric drop (see `operon_agent::metrics::custom`) into the agent's
//! custom metrics directory, atomically (temporary file, then rename), for
//! the local agent to send with its next sample.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use operon_agent::metrics::{self, custom};
use operon_proto::MetricPoint;

#[derive(clap::Args)]
pub struct PutArgs {
    /// The metric's name: letters, digits, '_', '-' and '.', up to 128
    /// (e.g. app.queue_depth).
    pub name: String,
    /// The value (a finite number).
    pub value: f64,
    /// A CloudWatch unit name: Count, Percent, Bytes, Seconds, Bytes/Second, ...
    #[arg(long)]
    pub unit: Option<String>,
    /// A dimension, NAME=VALUE (repeatable): --dim queue=mail.
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = parse_dimension)]
    pub dimensions: Vec<(String, String)>,
    /// The agent's custom metrics directory (as its --custom-metrics-dir).
    #[arg(long, env = "OPERON_CUSTOM_METRICS_DIR", default_value = metrics::DEFAULT_CUSTOM_DIR)]
    pub dir: PathBuf,
}

fn parse_dimension(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got '{text}'")),
    }
}

pub fn put(args: PutArgs) -> Result<ExitCode> {
    let point = point(args.name, args.value, args.unit, args.dimensions)?;
    custom::write_drop(&args.dir, &[point])
        .with_context(|| format!("metric not written to {}", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The datapoint, stamped now; refused if the agent would refuse it.
fn point(
    name: String,
    value: f64,
    unit: Option<String>,
    dimensions: Vec<(String, String)>,
) -> Result<MetricPoint> {
    let mut unique = BTreeMap::new();
    for (key, value) in dimensions {
        if unique.insert(key.clone(), value).is_some() {
            anyhow::bail!("dimension {key} given twice");
        }
    }
    let point = MetricPoint {
        name,
        dimensions: unique,
        at: now_millis(),
        value,
        unit,
    };
    custom::validate_point(&point)?;
    Ok(point)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_table() {
        assert_eq!(
            parse_dimension("queue=mail"),
            Ok(("queue".into(), "mail".into()))
        );
        assert_eq!(parse_dimension("k=a=b"), Ok(("k".into(), "a=b".into())));
        for bad in ["queue", "=mail", "queue=", ""] {
            assert!(parse_dimension(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_are_checked_as_the_agent_checks_them() {
        let ok = point(
            "app.x".into(),
            -2.5,
            Some("Count".into()),
            vec![("q".into(), "m".into())],
        )
        .unwrap();
        assert_eq!(ok.value, -2.5);
        for (name, value, unit, dims, wanted) in [
            ("a b", 1.0, None, vec![], "invalid metric name"),
            ("a", f64::NAN, None, vec![], "finite"),
            ("a", f64::INFINITY, None, vec![], "finite"),
            ("a", 1.0, Some("Furlongs"), vec![], "unknown unit"),
            ("a", 1.0, None, vec![("k", "1"), ("k", "2")], "given twice"),
            ("a", 1.0, None, vec![("bad key", "1")], "invalid dimension"),
        ] {
            let dims = dims
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let err = point(name.into(), value, unit.map(str::to_owned), dims).unwrap_err();
            assert!(err.to_string().contains(wanted), "{name}: {err}");
        }
    }
}
