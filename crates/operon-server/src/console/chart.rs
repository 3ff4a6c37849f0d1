//! A metric's datapoints as an inline SVG line chart.
//!
//! Why it is shaped this way: the node and alarm pages must show metrics
//! without any script (the CSP allows none inline) and without a charting
//! library, so the server draws them. The module is pure — points in, a
//! string out — so scaling, gaps and labels are unit-tested without a
//! server (`chart_tests.rs`). Every text drawn is escaped here, so the
//! result may be inserted with `|safe`. Colours live in `app.css`, keyed by
//! the classes set here (`chart`, `series`, `threshold`, `axis`, ...), so
//! dark mode follows the page's `prefers-color-scheme` block.

use std::fmt::Write;

use super::escape;

/// The drawing's size in SVG units (it scales to its container).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
/// Room for the value labels on the left, the time labels below.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Two neighbours further apart than this many typical steps are not
/// joined: the agent was away, and a line would invent values.
const GAP_STEPS: i64 = 3;

/// What to draw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chart<'a> {
    /// What the chart shows, for its accessible title (`CPU used on web-1`).
    pub title: &'a str,
    /// The unit shown after values (`%`, `B`), empty for none.
    pub unit: &'a str,
    /// `(Unix ms, value)`, in any order; non-finite values are skipped.
    pub points: &'a [(i64, f64)],
    /// The time span drawn; the points' own span when `None`.
    pub span: Option<(i64, i64)>,
    /// A horizontal line (an alarm's threshold), always in view.
    pub threshold: Option<f64>,
}

/// The plotting area's scales: time to x, value to y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub from: i64,
    pub to: i64,
    pub low: f64,
    pub high: f64,
}

impl Scale {
    /// The scales fitting `points` (finite ones), the span and the
    /// threshold; `None` with nothing finite to draw. A flat range is
    /// widened so that it has a height.
    pub(crate) fn fit(
        points: &[(i64, f64)],
        span: Option<(i64, i64)>,
        threshold: Option<f64>,
    ) -> Option<Scale> {
        let finite: Vec<(i64, f64)> = points
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite())
            .collect();
        if finite.is_empty() {
            return None;
        }
        let (mut from, mut to) = span.unwrap_or_else(|| {
            let times = finite.iter().map(|(t, _)| *t);
            (times.clone().min().unwrap_or(0), times.max().unwrap_or(0))
        });
        if to < from {
            std::mem::swap(&mut from, &mut to);
        }
        if from == to {
            from -= 30_000;
            to += 30_000;
        }
        let values = finite
            .iter()
            .map(|(_, v)| *v)
            .chain(threshold.filter(|t| t.is_finite()));
        let low = values.clone().fold(f64::INFINITY, f64::min);
        let high = values.fold(f64::NEG_INFINITY, f64::max);
        let (low, high) = if high > low {
            (low, high)
        } else {
            let pad = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
            (low - pad, high + pad)
        };
        Some(Scale {
            from,
            to,
            low,
            high,
        })
    }

    /// The x of a time, inside the plotting area for times in the span.
    pub(crate) fn x(&self, t: i64) -> f64 {
        let share = (t - self.from) as f64 / (self.to - self.from) as f64;
        LEFT + share * (WIDTH - LEFT - RIGHT)
    }

    /// The y of a value: the high end at the top.
    pub(crate) fn y(&self, v: f64) -> f64 {
        let share = (v - self.low) / (self.high - self.low);
        HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)
    }
}

/// The runs of points drawn as one line each: sorted by time, split where
/// a value is not finite or where two neighbours are further apart than
/// [`GAP_STEPS`] typical (median) steps.
pub(crate) fn segments(points: &[(i64, f64)]) -> Vec<Vec<(i64, f64)>> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(t, _)| *t);
    let mut steps: Vec<i64> = sorted
        .windows(2)
        .filter(|w| w[0].1.is_finite() && w[1].1.is_finite())
        .map(|w| w[1].0 - w[0].0)
        .filter(|d| *d > 0)
        .collect();
    steps.sort_unstable();
    let gap = steps
        .get(steps.len() / 2)
        .map(|median| median.saturating_mul(GAP_STEPS));
    let mut runs: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut current: Vec<(i64, f64)> = Vec::new();
    for (t, v) in sorted {
        if !v.is_finite() {
            runs.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            continue;
        }
        let apart = current
            .last()
            .is_some_and(|(last, _)| gap.is_some_and(|g| t - last > g));
        if apart {
            runs.push(std::mem::take(&mut current));
        }
        current.push((t, v));
    }
    runs.extend((!current.is_empty()).then_some(current));
    runs
}

/// A value as a label: few digits, no trailing zeros.
pub(crate) fn value_text(v: f64, unit: &str) -> String {
    let number = if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.2}"))
    };
    let number = if number == "-0" { "0".into() } else { number };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn trim(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A time as a label: `HH:MM` (UTC), with the day when the span is longer
/// than a day.
pub(crate) fn time_label(t: i64, long: bool) -> String {
    let format = if long { "%m-%d %H:%M" } else { "%H:%M" };
    chrono::DateTime::from_timestamp_millis(t)
        .map_or_else(|| t.to_string(), |d| d.format(format).to_string())
}

/// The chart as an `<svg>` element.
pub(crate) fn render(chart: &Chart) -> String {
    let title = escape(chart.title);
    // Points outside a given span would be drawn outside the axes.
    let inside: Vec<(i64, f64)> = match chart.span {
        Some((a, b)) => {
            let (from, to) = (a.min(b), a.max(b));
            chart
                .points
                .iter()
                .copied()
                .filter(|(t, _)| (from..=to).contains(t))
                .collect()
        }
        None => chart.points.to_vec(),
    };
    let points = inside.as_slice();
    let Some(scale) = Scale::fit(points, chart.span, chart.threshold) else {
        return format!(
            r#"<svg class="chart empty" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{title}: no data</title><rect class="frame" x="{LEFT}" y="{TOP}" width="{w}" height="{h}"/><text class="no-data" x="{cx}" y="{cy}" text-anchor="middle">No data</text></svg>"#,
            w = WIDTH - LEFT - RIGHT,
            h = HEIGHT - TOP - BOTTOM,
            cx = (LEFT + WIDTH - RIGHT) / 2.0,
            cy = (TOP + HEIGHT - BOTTOM) / 2.0,
        );
    };
    let unit = chart.unit;
    let finite: Vec<f64> = points
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .collect();
    let (min, max) = (
        finite.iter().copied().fold(f64::INFINITY, f64::min),
        finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{title}: {n} points, min {min}, max {max}</title>"#,
        n = finite.len(),
        min = escape(&value_text(min, unit)),
        max = escape(&value_text(max, unit)),
    );
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = write!(
        svg,
        r#"<path class="axis" d="M{LEFT} {TOP}V{bottom}H{right}"/>"#
    );
    // Value labels: the scale's ends.
    for (v, y, baseline) in [(scale.high, TOP, "hanging"), (scale.low, bottom, "auto")] {
        let _ = write!(
            svg,
            r#"<text class="label value" x="{x}" y="{y}" text-anchor="end" dominant-baseline="{baseline}">{text}</text>"#,
            x = LEFT - 6.0,
            text = escape(&value_text(v, unit)),
        );
    }
    // Time labels: the span's ends.
    let long = scale.to - scale.from > 86_400_000;
    for (t, x, anchor) in [(scale.from, LEFT, "start"), (scale.to, right, "end")] {
        let _ = write!(
            svg,
            r#"<text class="label time" x="{x}" y="{y}" text-anchor="{anchor}">{text}</text>"#,
            y = HEIGHT - 8.0,
            text = escape(&time_label(t, long)),
        );
    }
    if let Some(threshold) = chart.threshold.filter(|t| t.is_finite()) {
        let y = fixed(scale.y(threshold));
        let _ = write!(
            svg,
            r#"<line class="threshold" x1="{LEFT}" y1="{y}" x2="{right}" y2="{y}"/><text class="label threshold-label" x="{x}" y="{ty}" text-anchor="end">threshold {text}</text>"#,
            x = right - 4.0,
            ty = fixed(scale.y(threshold) - 4.0),
            text = escape(&value_text(threshold, unit)),
        );
    }
    for run in segments(points) {
        match run.as_slice() {
            [(t, v)] => {
                let _ = write!(
                    svg,
                    r#"<circle class="series point" cx="{}" cy="{}" r="2.5"/>"#,
                    fixed(scale.x(*t)),
                    fixed(scale.y(*v)),
                );
            }
            many => {
                let coordinates: Vec<String> = many
                    .iter()
                    .map(|(t, v)| format!("{},{}", fixed(scale.x(*t)), fixed(scale.y(*v))))
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polyline class="series" points="{}"/>"#,
                    coordinates.join(" ")
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A coordinate with one decimal, no `-0`.
fn fixed(v: f64) -> String {
    let text = format!("{v:.1}");
    if text == "-0.0" { "0.0".into() } else { text }
}

#[cfg(test)]
#[path = "chart_tests.rs"]
mod tests;
