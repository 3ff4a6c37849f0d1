//! Unit tests of the line chart: scaling, gaps, labels, escaping, edge cases.

use super::{Chart, HEIGHT, Scale, render, segments, time_label, value_text};

const MIN: i64 = 60_000;

fn chart<'a>(points: &'a [(i64, f64)]) -> Chart<'a> {
    Chart {
        title: "CPU used",
        unit: "%",
        points,
        ..Chart::default()
    }
}

/// The `points` attribute of every polyline, as numbers.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .map(|part| {
            let start = part.find("points=\"").unwrap() + 8;
            let end = part[start..].find('"').unwrap();
            part[start..start + end]
                .split(' ')
                .map(|pair| {
                    let (x, y) = pair.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

fn threshold_y(svg: &str) -> f64 {
    let part = &svg[svg.find(r#"<line class="threshold""#).expect("a threshold")..];
    let start = part.find("y1=\"").unwrap() + 4;
    let end = part[start..].find('"').unwrap();
    part[start..start + end].parse().unwrap()
}

#[test]
fn points_are_scaled_to_the_plotting_area_high_values_on_top() {
    let points = [(0, 0.0), (MIN, 50.0), (2 * MIN, 100.0)];
    let scale = Scale::fit(&points, None, None).unwrap();
    assert_eq!((scale.from, scale.to), (0, 2 * MIN));
    assert_eq!((scale.low, scale.high), (0.0, 100.0));
    assert_eq!(scale.x(0), 64.0);
    assert_eq!(scale.x(2 * MIN), 628.0);
    assert_eq!(scale.x(MIN), 346.0);
    assert_eq!(scale.y(0.0), HEIGHT - 28.0);
    assert_eq!(scale.y(100.0), 12.0);
    assert_eq!(scale.y(50.0), 92.0);
    let svg = render(&chart(&points));
    assert_eq!(
        polylines(&svg),
        [vec![(64.0, 172.0), (346.0, 92.0), (628.0, 12.0)]]
    );
}

#[test]
fn the_svg_is_an_accessible_image_with_axes_and_min_max_and_time_labels() {
    // 2026-01-01 10:00 and 11:00 UTC.
    let t = 1_767_261_600_000;
    let points = [(t, 12.5), (t + 30 * MIN, 80.0), (t + 60 * MIN, 40.0)];
    let svg = render(&chart(&points));
    assert!(svg.starts_with(r#"<svg class="chart""#), "{svg}");
    assert!(svg.contains(r#"role="img""#));
    assert!(
        svg.contains("<title>CPU used: 3 points, min 12.5 %, max 80 %</title>"),
        "{svg}"
    );
    assert!(svg.contains(r#"<path class="axis""#));
    assert!(svg.contains(">80 %</text>"), "the top label: {svg}");
    assert!(svg.contains(">12.5 %</text>"), "the bottom label: {svg}");
    assert!(
        svg.contains(">10:00</text>") && svg.contains(">11:00</text>"),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>"));
}

#[test]
fn a_given_span_places_points_in_it_and_labels_days_when_long() {
    let points = [(MIN, 1.0), (2 * MIN, 2.0)];
    let scale = Scale::fit(&points, Some((0, 4 * MIN)), None).unwrap();
    assert_eq!((scale.from, scale.to), (0, 4 * MIN));
    assert_eq!(scale.x(MIN), 64.0 + 564.0 / 4.0);
    let reversed = Scale::fit(&points, Some((4 * MIN, 0)), None).unwrap();
    assert_eq!((reversed.from, reversed.to), (0, 4 * MIN));
    assert_eq!(time_label(0, false), "00:00");
    assert_eq!(time_label(86_400_000 + 90 * MIN, true), "01-02 01:30");
    let two_days = Chart {
        span: Some((0, 2 * 86_400_000)),
        ..chart(&points)
    };
    assert!(render(&two_days).contains(">01-03 00:00</text>"));
}

#[test]
fn a_single_point_is_a_dot_in_a_widened_range() {
    let points = [(10 * MIN, 42.0)];
    let scale = Scale::fit(&points, None, None).unwrap();
    assert_eq!(
        (scale.from, scale.to),
        (10 * MIN - 30_000, 10 * MIN + 30_000)
    );
    assert!(scale.low < 42.0 && scale.high > 42.0, "{scale:?}");
    let svg = render(&chart(&points));
    assert!(polylines(&svg).is_empty(), "{svg}");
    assert!(
        svg.contains(r#"<circle class="series point" cx="346.0" cy="92.0""#),
        "{svg}"
    );
}

#[test]
fn a_constant_series_is_a_flat_line_in_the_middle() {
    let points = [(0, 5.0), (MIN, 5.0), (2 * MIN, 5.0)];
    let scale = Scale::fit(&points, None, None).unwrap();
    assert_eq!((scale.low, scale.high), (4.5, 5.5));
    let lines = polylines(&render(&chart(&points)));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].iter().all(|(_, y)| *y == 92.0), "{lines:?}");
    // Zero has no size to take a tenth of: widened by one.
    let zeros = [(0, 0.0), (MIN, 0.0)];
    let scale = Scale::fit(&zeros, None, None).unwrap();
    assert_eq!((scale.low, scale.high), (-1.0, 1.0));
}

#[test]
fn negative_values_are_scaled_below_zero() {
    let points = [(0, -20.0), (MIN, -5.0), (2 * MIN, 10.0)];
    let scale = Scale::fit(&points, None, None).unwrap();
    assert_eq!((scale.low, scale.high), (-20.0, 10.0));
    assert_eq!(scale.y(-20.0), 172.0);
    assert_eq!(scale.y(10.0), 12.0);
    assert!(scale.y(0.0) > 12.0 && scale.y(0.0) < 172.0);
    let svg = render(&chart(&points));
    assert!(svg.contains(">-20 %</text>"), "{svg}");
    let constant = Scale::fit(&[(0, -10.0), (MIN, -10.0)], None, None).unwrap();
    assert_eq!((constant.low, constant.high), (-11.0, -9.0));
}

#[test]
fn a_threshold_outside_the_values_widens_the_range_to_stay_in_view() {
    let points = [(0, 10.0), (MIN, 20.0)];
    let above = Scale::fit(&points, None, Some(90.0)).unwrap();
    assert_eq!((above.low, above.high), (10.0, 90.0));
    let below = Scale::fit(&points, None, Some(-5.0)).unwrap();
    assert_eq!((below.low, below.high), (-5.0, 20.0));
    let svg = render(&Chart {
        threshold: Some(90.0),
        ..chart(&points)
    });
    assert_eq!(threshold_y(&svg), 12.0, "drawn at the top: {svg}");
    assert!(svg.contains(">threshold 90 %</text>"), "{svg}");
    // Inside the range it does not change it.
    let inside = Scale::fit(&points, None, Some(15.0)).unwrap();
    assert_eq!((inside.low, inside.high), (10.0, 20.0));
    let svg = render(&Chart {
        threshold: Some(15.0),
        ..chart(&points)
    });
    assert_eq!(threshold_y(&svg), 92.0);
    // A non-finite threshold is not drawn and changes nothing.
    let svg = render(&Chart {
        threshold: Some(f64::NAN),
        ..chart(&points)
    });
    assert!(!svg.contains("threshold"), "{svg}");
}

#[test]
fn gaps_and_non_finite_values_break_the_line() {
    // Every minute, then nothing for ten minutes, then every minute again.
    let mut points: Vec<(i64, f64)> = (0..5).map(|i| (i * MIN, i as f64)).collect();
    points.extend((15..18).map(|i| (i * MIN, i as f64)));
    let runs = segments(&points);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].len(), 5);
    assert_eq!(runs[1].len(), 3);
    assert_eq!(polylines(&render(&chart(&points))).len(), 2);

    // NaN and infinities are skipped and split the run; unsorted input is sorted.
    let odd = [
        (2 * MIN, f64::NAN),
        (MIN, 1.0),
        (0, 0.0),
        (3 * MIN, 3.0),
        (4 * MIN, f64::INFINITY),
        (5 * MIN, 5.0),
        (6 * MIN, f64::NEG_INFINITY),
    ];
    let runs = segments(&odd);
    assert_eq!(
        runs,
        [
            vec![(0, 0.0), (MIN, 1.0)],
            vec![(3 * MIN, 3.0)],
            vec![(5 * MIN, 5.0)]
        ]
    );
    let scale = Scale::fit(&odd, None, None).unwrap();
    assert_eq!((scale.low, scale.high), (0.0, 5.0));
    let svg = render(&chart(&odd));
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
    assert!(svg.contains("4 points"), "{svg}");
}

#[test]
fn an_empty_or_all_non_finite_series_is_a_no_data_figure() {
    for points in [vec![], vec![(0, f64::NAN), (MIN, f64::INFINITY)]] {
        let svg = render(&Chart {
            threshold: Some(90.0),
            ..chart(&points)
        });
        assert!(svg.contains(r#"class="chart empty""#), "{svg}");
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title>CPU used: no data</title>"), "{svg}");
        assert!(svg.contains(">No data</text>"));
        assert!(!svg.contains("<polyline") && !svg.contains("threshold"));
    }
    assert!(Scale::fit(&[], None, Some(3.0)).is_none());
}

#[test]
fn titles_and_units_are_escaped() {
    let points = [(0, 1.0), (MIN, 2.0)];
    let svg = render(&Chart {
        title: "<script>alert('x')</script> & co",
        unit: "<b>",
        points: &points,
        ..Chart::default()
    });
    assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
    assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
    assert!(svg.contains("2 &lt;b&gt;"), "{svg}");
    let empty = render(&Chart {
        title: "a\"b",
        ..Chart::default()
    });
    assert!(empty.contains("a&quot;b: no data"), "{empty}");
}

#[test]
fn values_are_labelled_with_few_digits() {
    assert_eq!(value_text(12.345, ""), "12.3");
    assert_eq!(value_text(80.0, "%"), "80 %");
    assert_eq!(value_text(0.126, ""), "0.13");
    assert_eq!(value_text(1.5, ""), "1.5");
    assert_eq!(value_text(123_456.7, "B"), "123457 B");
    assert_eq!(value_text(-0.001, ""), "0");
    assert_eq!(value_text(-42.0, ""), "-42");
}

#[test]
fn points_outside_a_given_span_are_not_drawn() {
    let points = [(-MIN, 1000.0), (0, 1.0), (MIN, 2.0), (3 * MIN, -1000.0)];
    let svg = render(&Chart {
        span: Some((0, 2 * MIN)),
        ..chart(&points)
    });
    assert!(svg.contains("2 points, min 1 %, max 2 %"), "{svg}");
    let lines = polylines(&svg);
    assert_eq!(lines, [vec![(64.0, 172.0), (346.0, 12.0)]]);
    let outside = render(&Chart {
        span: Some((10 * MIN, 20 * MIN)),
        ..chart(&points)
    });
    assert!(outside.contains(">No data</text>"), "{outside}");
}
