//! Pure: the fleet's latest metric values in Prometheus text format
//! (exposition format 0.0.4).
//!
//! `cpu.used` of node `web-1` becomes `operon_node_cpu_used{node="web-1"} 12.5`:
//! names are prefixed and sanitised to `[a-zA-Z0-9_]`, dimensions become
//! labels (sanitised the same way; one called `node` becomes
//! `dimension_node`), label values are escaped. HELP and TYPE appear once
//! per name, before all of its samples.

use std::collections::BTreeMap;
use std::fmt::Write;

use operon_store::MetricSeries;

/// The prefix of every metric exported from nodes.
const PREFIX: &str = "operon_node_";

/// `[a-zA-Z0-9_]` only: every other character becomes `_`.
pub fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A label name: sanitised, not starting with a digit or `__` (reserved).
fn label_name(key: &str) -> String {
    let name = sanitise(key);
    match name.as_str() {
        "node" => "dimension_node".into(),
        _ if name.starts_with(|c: char| c.is_ascii_digit()) || name.starts_with("__") => {
            format!("dimension_{name}")
        }
        _ => name,
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition of `(node name, series)` pairs.
pub fn exposition(series: &[(String, MetricSeries)]) -> String {
    let mut by_name: BTreeMap<String, Vec<(&String, &MetricSeries)>> = BTreeMap::new();
    for (node, s) in series {
        by_name
            .entry(format!("{PREFIX}{}", sanitise(&s.name)))
            .or_default()
            .push((node, s));
    }
    let mut out = String::new();
    for (name, mut samples) in by_name {
        samples.sort_by(|a, b| (a.0, &a.1.dimensions).cmp(&(b.0, &b.1.dimensions)));
        let original = &samples[0].1.name;
        let unit = samples[0]
            .1
            .unit
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP {name} Latest {original}{unit} reported by each node's agent.\n# TYPE {name} gauge"
        );
        for (node, s) in samples {
            let mut labels = format!("node=\"{}\"", escape(node));
            for (key, value) in &s.dimensions {
                let _ = write!(labels, ",{}=\"{}\"", label_name(key), escape(value));
            }
            let _ = writeln!(out, "{name}{{{labels}}} {}", s.last_value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, dims: &[(&str, &str)], value: f64) -> MetricSeries {
        MetricSeries {
            id: 0,
            node_id: "n".into(),
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unit: Some("Percent".into()),
            last_at: 1_000,
            last_value: value,
        }
    }

    #[test]
    fn names_labels_and_help_once() {
        let text = exposition(&[
            ("web-2".into(), series("cpu.used", &[], 3.0)),
            ("web-1".into(), series("cpu.used", &[], 12.5)),
            (
                "web-1".into(),
                series(
                    "disk.used_percent",
                    &[("mount", "/var \"x\"\\"), ("node", "n"), ("0x", "y")],
                    50.0,
                ),
            ),
        ]);
        let expected = "\
# HELP operon_node_cpu_used Latest cpu.used (Percent) reported by each node's agent.
# TYPE operon_node_cpu_used gauge
operon_node_cpu_used{node=\"web-1\"} 12.5
operon_node_cpu_used{node=\"web-2\"} 3
# HELP operon_node_disk_used_percent Latest disk.used_percent (Percent) reported by each node's agent.
# TYPE operon_node_disk_used_percent gauge
operon_node_disk_used_percent{node=\"web-1\",dimension_0x=\"y\",mount=\"/var \\\"x\\\"\\\\\",dimension_node=\"n\"} 50
";
        assert_eq!(text, expected);
        assert_eq!(sanitise("net.rx_bytes-per/sec"), "net_rx_bytes_per_sec");
        assert_eq!(exposition(&[]), "");
    }
}
