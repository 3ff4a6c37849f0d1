//! `operon metrics query|names`: statistics of the metrics agents push,
//! per period, as a sparkline per series for people, an SVG chart
//! (`--chart out.svg`) or the API's answer (`--json`).
//!
//! The drawing is pure (no I/O) and self-made: [`sparkline`] and
//! [`svg_chart`] take the answer and return text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use operon_api::metrics::{MetricQueryAnswer, MetricSeriesAnswer};

use super::client::{Client, ClientArgs, runtime};
use super::client_metrics::MetricQueryParams;
use super::output::{esc, print_json, table};

/// Columns of a sparkline at most: longer answers are averaged into them.
const SPARK_COLUMNS: usize = 60;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(clap::Subcommand)]
pub enum MetricsQueryCmd {
    /// Statistics of a metric per period, one line per series.
    Query(QueryArgs),
    /// The metric names stored, with their series and nodes.
    Names {
        /// Only this node's (id or name).
        #[arg(long)]
        node: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct QueryArgs {
    /// The metric name: cpu.used, mem.used_percent, disk.used_percent, ...
    #[arg(long)]
    metric: String,
    /// Only this node (id or name); otherwise every node you may read.
    #[arg(long)]
    node: Option<String>,
    /// Only series with this dimension value: --dim mount=/ (repeatable).
    #[arg(long = "dim", value_name = "KEY=VALUE", value_parser = dimension)]
    dims: Vec<(String, String)>,
    /// avg, min, max, sum, count or pNN (p90, p99.9).
    #[arg(long, default_value = "avg")]
    stat: String,
    /// Seconds per datapoint (default: chosen from the range).
    #[arg(long)]
    period: Option<u64>,
    /// The range ending now: 90s, 30m, 6h, 7d, 2w (default 1h).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    since: Option<String>,
    /// Range start: RFC 3339 (2026-12-02T10:00:00Z) or Unix ms.
    #[arg(long, value_parser = instant)]
    from: Option<i64>,
    /// Range end (default now): RFC 3339 or Unix ms.
    #[arg(long, value_parser = instant, requires = "from")]
    to: Option<i64>,
    /// all (one series for everything matched), node or series.
    #[arg(long)]
    by: Option<String>,
    /// Also draw the answer as an SVG line chart into this file.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

/// `KEY=VALUE`.
fn dimension(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE (mount=/)")),
    }
}

/// RFC 3339 or Unix ms.
fn instant(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{text:?} is neither RFC 3339 (2026-12-02T10:00:00Z) nor Unix ms: {e}")
    })?;
    let since = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is too far away"))
}

pub fn metrics_query(args: &ClientArgs, cmd: MetricsQueryCmd) -> Result<ExitCode> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            MetricsQueryCmd::Query(q) => {
                let params = MetricQueryParams {
                    metric: q.metric,
                    node: q.node,
                    dimensions: dimensions(q.dims)?,
                    stat: Some(q.stat),
                    period: q.period,
                    since: q.since,
                    from: q.from,
                    to: q.to,
                    by: q.by,
                };
                let answer = client.query_metrics(&params).await?;
                if let Some(path) = &q.chart {
                    std::fs::write(path, svg_chart(&answer.value))
                        .with_context(|| format!("writing the chart to {}", path.display()))?;
                }
                if args.json {
                    print_json(&answer.json);
                } else {
                    print!("{}", report(&answer.value));
                    if let Some(path) = &q.chart {
                        println!("chart written to {}", path.display());
                    }
                }
            }
            MetricsQueryCmd::Names { node } => {
                let answer = client.metric_names(node.as_deref()).await?;
                if args.json {
                    print_json(&answer.json);
                } else {
                    let rows = answer
                        .value
                        .names
                        .iter()
                        .map(|n| {
                            vec![
                                esc(&n.name),
                                esc(n.unit.as_deref().unwrap_or("-")),
                                n.nodes.to_string(),
                                n.series.to_string(),
                                esc(&n.dimension_keys.join(",")),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        table(&["NAME", "UNIT", "NODES", "SERIES", "DIMENSIONS"], rows)
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// What a series is: its node and dimensions, or `all` for the fleet.
pub fn series_label(series: &MetricSeriesAnswer) -> String {
    let mut parts: Vec<String> = series.node_name.iter().cloned().collect();
    parts.extend(series.dimensions.iter().map(|(k, v)| format!("{k}={v}")));
    if parts.is_empty() {
        "all".into()
    } else {
        esc(&parts.join(" "))
    }
}

/// Min, average, max and last of the values, if any.
pub fn summary(points: &[(i64, f64)]) -> Option<(f64, f64, f64, f64)> {
    let (_, last) = *points.last()?;
    let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let avg = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    Some((min, avg, max, last))
}

/// A number in a few characters: 12.5, 1234, 1.2e9.
pub fn short(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(0.01..1e7).contains(&magnitude) {
        format!("{value:.2e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// One bar per period of `[from, to)` (averaged into at most
/// [`SPARK_COLUMNS`]), a space where there is no data.
pub fn sparkline(points: &[(i64, f64)], from: i64, to: i64, period_secs: u64) -> String {
    let period_ms = (period_secs.max(1) * 1000) as i64;
    let periods = ((to - from) / period_ms).max(1) as usize;
    let per_column = periods.div_ceil(SPARK_COLUMNS);
    let columns = periods.div_ceil(per_column);
    let mut sums = vec![(0.0, 0u32); columns];
    for &(at, value) in points {
        let index = ((at - from) / period_ms) as usize / per_column;
        if at >= from && index < columns {
            sums[index].0 += value;
            sums[index].1 += 1;
        }
    }
    let values: Vec<Option<f64>> = sums
        .into_iter()
        .map(|(sum, n)| (n > 0).then(|| sum / f64::from(n)))
        .collect();
    let present = values.iter().flatten();
    let min = present.clone().copied().fold(f64::INFINITY, f64::min);
    let max = present.copied().fold(f64::NEG_INFINITY, f64::max);
    values
        .into_iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if max <= min => BARS[3],
            Some(v) => BARS[(((v - min) / (max - min)) * 7.0).round() as usize],
        })
        .collect()
}

/// The lines people read: what was asked, then one line per series.
pub fn report(answer: &MetricQueryAnswer) -> String {
    let mut out = format!(
        "{} {} per {}s, {} to {} ({} data)\n",
        esc(&answer.metric),
        esc(&answer.stat),
        answer.period,
        super::output::millis(Some(answer.from)),
        super::output::millis(Some(answer.to)),
        esc(&answer.resolution),
    );
    if answer.series.is_empty() {
        out.push_str("no data\n");
        return out;
    }
    let labels: Vec<String> = answer.series.iter().map(series_label).collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (series, label) in answer.series.iter().zip(labels) {
        let spark = sparkline(&series.points, answer.from, answer.to, answer.period);
        let unit = series
            .unit
            .as_deref()
            .map(|u| format!(" {}", esc(u)))
            .unwrap_or_default();
        let numbers = match summary(&series.points) {
            Some((min, avg, max, last)) => format!(
                "min {} avg {} max {} last {}{unit}",
                short(min),
                short(avg),
                short(max),
                short(last)
            ),
            None => "no data".into(),
        };
        let _ = writeln!(out, "{label:<width$}  {spark}  {numbers}");
    }
    out
}

/// Text safe inside SVG (XML) text and attributes.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small line chart of every series: a line per series (broken where
/// periods have no data), the value axis with five labels, the range's
/// ends under the time axis, a legend.
pub fn svg_chart(answer: &MetricQueryAnswer) -> String {
    const W: f64 = 720.0;
    const H: f64 = 320.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 30.0;
    const BOTTOM: f64 = 60.0;
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ];
    let values = answer
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let mut low = values.clone().fold(f64::INFINITY, f64::min);
    let mut high = values.fold(f64::NEG_INFINITY, f64::max);
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    } else if high <= low {
        (low, high) = (low - 1.0, high + 1.0);
    }
    let span_ms = (answer.to - answer.from).max(1) as f64;
    let x = |at: i64| LEFT + (at - answer.from) as f64 / span_ms * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (high - v) / (high - low) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"13\">{} {} per {}s</text>\n",
        xml(&answer.metric),
        xml(&answer.stat),
        answer.period
    );
    for i in 0..=4 {
        let v = low + (high - low) * f64::from(i) / 4.0;
        let at = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{at:.1}\" x2=\"{:.1}\" y2=\"{at:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            at + 4.0,
            xml(&short(v))
        );
    }
    let bottom = H - BOTTOM;
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        bottom + 16.0,
        xml(&super::output::millis(Some(answer.from))),
        W - RIGHT,
        bottom + 16.0,
        xml(&super::output::millis(Some(answer.to)))
    );
    let period_ms = (answer.period.max(1) * 1000) as i64;
    for (i, series) in answer.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for run in runs(&series.points, period_ms) {
            let coords: Vec<String> = run
                .iter()
                .map(|&(at, v)| format!("{:.1},{:.1}", x(at), y(v)))
                .collect();
            if coords.len() == 1 {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>",
                    x(run[0].0),
                    y(run[0].1)
                );
            } else {
                let _ = writeln!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                    coords.join(" ")
                );
            }
        }
        let legend_x = LEFT + (i % 4) as f64 * 160.0;
        let legend_y = bottom + 32.0 + (i / 4) as f64 * 14.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">{}</text>",
            legend_y - 9.0,
            legend_x + 14.0,
            xml(&series_label(series))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Consecutive points split where a period is missing.
fn runs(points: &[(i64, f64)], period_ms: i64) -> Vec<&[(i64, f64)]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > period_ms {
            if start < i {
                runs.push(&points[start..i]);
            }
            start = i;
        }
    }
    runs
}

/// Dimensions from `--dim` pairs; a key given twice is refused.
pub fn dimensions(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            bail!("--dim {k} is given twice");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(series: Vec<MetricSeriesAnswer>) -> MetricQueryAnswer {
        MetricQueryAnswer {
            metric: "cpu.used".into(),
            stat: "avg".into(),
            period: 60,
            from: 0,
            to: 8 * 60_000,
            resolution: "1m".into(),
            by: "node".into(),
            series,
        }
    }

    fn series(node: &str, points: Vec<(i64, f64)>) -> MetricSeriesAnswer {
        MetricSeriesAnswer {
            node_id: Some(format!("id-{node}")),
            node_name: Some(node.into()),
            dimensions: BTreeMap::new(),
            unit: Some("Percent".into()),
            points,
        }
    }

    #[test]
    fn sparklines_scale_and_leave_gaps() {
        let m = 60_000;
        let points: Vec<(i64, f64)> = (0..8).map(|i| (i * m, i as f64)).collect();
        assert_eq!(sparkline(&points, 0, 8 * m, 60), "▁▂▃▄▅▆▇█");
        let gappy = [(0, 5.0), (3 * m, 5.0)];
        assert_eq!(sparkline(&gappy, 0, 4 * m, 60), "▄  ▄");
        assert_eq!(sparkline(&[], 0, 2 * m, 60), "  ");
        // 120 periods into 60 columns of two.
        let long: Vec<(i64, f64)> = (0..120).map(|i| (i * m, (i / 2) as f64)).collect();
        let line = sparkline(&long, 0, 120 * m, 60);
        assert_eq!(line.chars().count(), 60);
        assert!(line.starts_with('▁') && line.ends_with('█'), "{line}");
    }

    #[test]
    fn numbers_and_summaries() {
        for (v, text) in [
            (12.5, "12.50"),
            (60.0, "60"),
            (123.45, "123.5"),
            (0.0, "0"),
            (1.5e9, "1.50e9"),
            (0.001, "1.00e-3"),
        ] {
            assert_eq!(short(v), text);
        }
        assert_eq!(
            summary(&[(0, 1.0), (1, 3.0), (2, 2.0)]),
            Some((1.0, 2.0, 3.0, 2.0))
        );
        assert_eq!(summary(&[]), None);
    }

    #[test]
    fn reports_name_each_series() {
        let m = 60_000;
        let text = report(&answer(vec![
            series("web-1", vec![(0, 10.0), (m, 20.0)]),
            series("db-10", vec![]),
        ]));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("cpu.used avg per 60s"), "{text}");
        assert!(lines[1].starts_with("web-1  ▁█        min"), "{text}");
        assert!(
            lines[1].ends_with("min 10 avg 15 max 20 last 20 Percent"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("db-10 ") && lines[2].ends_with("no data"),
            "{text}"
        );
        let mut fleet = series("x", vec![]);
        fleet.node_name = None;
        fleet.dimensions = [("mount".to_string(), "/".to_string())].into();
        assert_eq!(series_label(&fleet), "mount=/");
        fleet.dimensions.clear();
        assert_eq!(series_label(&fleet), "all");
        assert!(report(&answer(vec![])).ends_with("no data\n"));
    }

    #[test]
    fn charts_draw_a_line_per_run_and_escape_text() {
        let m = 60_000;
        let mut s = series(
            "web<1>",
            vec![(0, 1.0), (m, 2.0), (4 * m, 3.0), (5 * m, 1.0), (7 * m, 2.0)],
        );
        s.dimensions = [("mount".to_string(), "/&".to_string())].into();
        let svg = svg_chart(&answer(vec![s, series("web-2", vec![])]));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("web&lt;1&gt; mount=/&amp;"), "{svg}");
        assert!(!svg.contains("web<1>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            2,
            "a legend entry per series"
        );
        // The first point is at the left edge, the lowest value at the bottom.
        assert!(svg.contains("points=\"70.0,260.0 "), "{svg}");
        // No data at all still draws the frame.
        assert!(svg_chart(&answer(vec![])).contains("</svg>"));
    }

    #[test]
    fn arguments() {
        assert_eq!(dimension("mount=/"), Ok(("mount".into(), "/".into())));
        assert!(dimension("mount").is_err());
        assert!(dimension("=x").is_err());
        assert_eq!(instant("1796205600000"), Ok(1_796_205_600_000));
        assert_eq!(instant("2026-12-02T10:00:00Z"), Ok(1_796_205_600_000));
        assert!(instant("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(dimensions(vec![("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
        let path = MetricQueryParams {
            metric: "disk.used_percent".into(),
            node: Some("web-1".into()),
            dimensions: [("mount".to_string(), "/var lib".to_string())].into(),
            stat: Some("p90".into()),
            since: Some("6h".into()),
            ..Default::default()
        }
        .path();
        assert_eq!(
            path,
            "/v1/metrics/query?metric=disk.used_percent&node=web-1&stat=p90&since=6h&dim.mount=%2Fvar%20lib"
        );
    }
}
