//! Metrics on a real server (loopback, temporary data directory), fed by
//! agents speaking the protocol by hand: batches are acknowledged after
//! they are committed and stored once when resent, queries answer the
//! statistics computed by hand from raw points and from rollups, reads are
//! authorized per node with its tags, `/metrics` exports the latest values
//! and retention prunes each resolution on its own.

use std::collections::BTreeMap;

use common::raw_agent::RawAgent;
use operon_proto::MetricPoint;
use serde_json::{Value, json};

mod common;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// A hand-written agent announcing metrics: enrolled (with tags), connected, welcomed.
async fn metered(api: &common::Api, name: &str, tags: &[(&str, &str)]) -> RawAgent {
    RawAgent::connect(api, name, tags, &[operon_proto::CAPABILITY_METRICS]).await
}

fn point(name: &str, dims: &[(&str, &str)], at: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        at,
        value,
        unit: Some("Percent".into()),
    }
}

async fn node_id(api: &common::Api, name: &str) -> String {
    let node = api.ok("GET", &format!("/v1/nodes/{name}"), None).await;
    node["id"].as_str().unwrap().to_string()
}

fn now() -> i64 {
    operon_server::now_millis()
}

/// The points of the answer's series, as `(offset from t, value)`.
fn points(series: &Value, t: i64) -> Vec<(i64, f64)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap() - t, p[1].as_f64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_stored_once_and_queried_per_period_and_per_node() {
    let api = common::Api::start().await;
    let mut web1 = metered(&api, "web-1", &[("env", "prod")]).await;
    let mut web2 = metered(&api, "web-2", &[("env", "dev")]).await;
    // Two whole minutes starting on a minute boundary, ten minutes ago.
    let t = (now() - 10 * MIN).div_euclid(MIN) * MIN;
    let cpu1: Vec<MetricPoint> = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        .iter()
        .enumerate()
        .map(|(i, v)| point("cpu.used", &[], t + i as i64 * 20_000, *v))
        .collect();
    let mut batch = cpu1.clone();
    batch.push(point("disk.used_percent", &[("mount", "/")], t, 50.0));
    batch.push(point("disk.used_percent", &[("mount", "/var")], t, 70.0));
    web1.send_metrics(u64::MAX - 1, batch.clone()).await;

    // Acknowledged means committed: the alarm evaluator's read sees it at once.
    let state = api.server.state();
    let web1_id = node_id(&api, "web-1").await;
    let raw = state
        .metrics()
        .datapoints(&web1_id, "cpu.used", &BTreeMap::new(), t, t + 2 * MIN)
        .await
        .unwrap();
    assert_eq!(raw.len(), 6);
    assert_eq!(raw[0], (t, 10.0));

    // The same batch again (a resend after a reconnect): acknowledged, stored once.
    web1.send_metrics(u64::MAX - 1, batch).await;
    web2.send_metrics(7, vec![point("cpu.used", &[], t, 100.0)])
        .await;
    let range = format!("from={t}&to={}", t + 2 * MIN);
    let q = |extra: &str| format!("/v1/metrics/query?metric=cpu.used&period=60&{range}&{extra}");
    let count = api.ok("GET", &q("node=web-1&stat=count"), None).await;
    assert_eq!(
        points(&count["series"][0], t),
        [(0, 3.0), (MIN, 3.0)],
        "{count}"
    );

    // Statistics per minute, from the 1-minute rollups and from raw points alike.
    let avg = api.ok("GET", &q("node=web-1&stat=avg"), None).await;
    assert_eq!(avg["resolution"], "1m");
    assert_eq!(points(&avg["series"][0], t), [(0, 20.0), (MIN, 50.0)]);
    let raw_avg = api
        .ok("GET", &q("node=web-1&stat=avg&resolution=raw"), None)
        .await;
    assert_eq!(raw_avg["resolution"], "raw");
    assert_eq!(raw_avg["series"], avg["series"]);
    for (stat, expected) in [
        ("min", [10.0, 40.0]),
        ("max", [30.0, 60.0]),
        ("sum", [60.0, 150.0]),
        ("p90", [30.0, 60.0]),
        ("p50", [20.0, 50.0]),
    ] {
        let answer = api
            .ok("GET", &q(&format!("node=web-1&stat={stat}")), None)
            .await;
        assert_eq!(
            points(&answer["series"][0], t),
            [(0, expected[0]), (MIN, expected[1])],
            "{stat}: {answer}"
        );
    }
    let two_minutes = api
        .ok(
            "GET",
            &format!(
                "/v1/metrics/query?metric=cpu.used&node=web-1&period=120&stat=avg&from={}&to={}",
                t - t.rem_euclid(2 * MIN),
                t + 2 * MIN
            ),
            None,
        )
        .await;
    // Periods of two 1-minute buckets each, aligned on the epoch.
    let expected = if t.rem_euclid(2 * MIN) == 0 {
        vec![(0, 35.0)]
    } else {
        vec![(-MIN, 20.0), (MIN, 50.0)]
    };
    assert_eq!(
        points(&two_minutes["series"][0], t),
        expected,
        "{two_minutes}"
    );

    // Across the fleet: one series, or one per node.
    let fleet = api.ok("GET", &q("stat=avg"), None).await;
    assert_eq!(fleet["by"], "all");
    assert_eq!(points(&fleet["series"][0], t), [(0, 40.0), (MIN, 50.0)]);
    let by_node = api.ok("GET", &q("stat=max&by=node"), None).await;
    let series = by_node["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["node_name"], "web-1");
    assert_eq!(points(&series[1], t), [(0, 100.0)]);

    // Dimensions select series.
    let var = api
        .ok(
            "GET",
            &format!("/v1/metrics/query?metric=disk.used_percent&dim.mount=/var&period=60&{range}&by=series"),
            None,
        )
        .await;
    assert_eq!(var["series"].as_array().unwrap().len(), 1, "{var}");
    assert_eq!(var["series"][0]["dimensions"]["mount"], "/var");
    assert_eq!(var["series"][0]["unit"], "Percent");
    assert_eq!(points(&var["series"][0], t), [(0, 70.0)]);
    let infos = state
        .metrics()
        .series("disk.used_percent", &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!((infos[1].last_at, infos[1].last_value), (t, 70.0));

    // Names, with their series and nodes.
    let names = api.ok("GET", "/v1/metrics/names", None).await;
    assert_eq!(
        names["names"],
        json!([
            {"name": "cpu.used", "unit": "Percent", "series": 2, "nodes": 2, "dimension_keys": []},
            {"name": "disk.used_percent", "unit": "Percent", "series": 2, "nodes": 1, "dimension_keys": ["mount"]}
        ])
    );

    // Invalid points are dropped, the rest of the batch stored and acknowledged.
    web2.send_metrics(
        8,
        vec![
            point("cpu used", &[], t + MIN, 1.0),
            point("cpu.used", &[("", "x")], t + MIN, 1.0),
            point("cpu.used", &[], now() + 2 * 3_600_000, 1.0),
            point("cpu.used", &[], t + MIN, 80.0),
        ],
    )
    .await;
    let web2_cpu = api.ok("GET", &q("node=web-2&stat=count"), None).await;
    assert_eq!(points(&web2_cpu["series"][0], t), [(0, 1.0), (MIN, 1.0)]);

    // Bad queries are named.
    for (path, part) in [
        ("/v1/metrics/query?metric=cpu.used&stat=median", "median"),
        ("/v1/metrics/query?metric=cpu%20used", "metric name"),
        ("/v1/metrics/query?metric=cpu.used&since=6", "unit"),
        (
            "/v1/metrics/query?metric=cpu.used&since=30d&period=60",
            "periods",
        ),
        ("/v1/metrics/query?metric=cpu.used&node=nope", "nope"),
    ] {
        let (status, err) = api.call("GET", path, None).await;
        assert!(matches!(status, 400 | 404), "{path}: {status} {err}");
        assert!(err.to_string().contains(part), "{path}: {err}");
    }

    // Prometheus: the latest value of each series, the node and dimensions as labels.
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", api.server.url()))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("operon_node_cpu_used{node=\"web-1\"} 60\n"),
        "{text}"
    );
    assert!(
        text.contains("operon_node_cpu_used{node=\"web-2\"} 80\n"),
        "{text}"
    );
    assert!(
        text.contains("operon_node_disk_used_percent{node=\"web-1\",mount=\"/var\"} 70\n"),
        "{text}"
    );
    assert_eq!(text.matches("# TYPE operon_node_cpu_used gauge").count(), 1);
    assert!(
        text.contains("operon_agents_connected"),
        "the fleet gauges stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_user_sees_only_the_nodes_it_may_read() {
    let api = common::Api::start().await;
    let mut web1 = metered(&api, "web-1", &[("env", "prod")]).await;
    let mut db1 = metered(&api, "db-1", &[("env", "db")]).await;
    let t = (now() - 5 * MIN).div_euclid(MIN) * MIN;
    web1.send_metrics(1, vec![point("cpu.used", &[], t, 10.0)])
        .await;
    db1.send_metrics(1, vec![point("cpu.used", &[], t, 90.0)])
        .await;
    let web_only = api
        .user_token(
            "webview",
            json!([{"Effect": "Allow", "Action": "metrics:Get", "Resource": "node/*"},
                   {"Effect": "Deny", "Action": "metrics:Get", "Resource": "node/*",
                    "Condition": {"StringEquals": {"operon:NodeTag/env": "db"}}}]),
        )
        .await;
    let path = format!("/v1/metrics/query?metric=cpu.used&by=node&stat=max&from={t}&period=60");
    let (status, answer) = api.call_as(&web_only, "GET", &path, None).await;
    assert_eq!(status, 200, "{answer}");
    let nodes: Vec<&Value> = answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["node_name"])
        .collect();
    assert_eq!(nodes, [&json!("web-1")]);
    // One series over the fleet: only the readable node's samples.
    let (_, all) = api
        .call_as(&web_only, "GET", &path.replace("&by=node", ""), None)
        .await;
    assert_eq!(all["series"][0]["points"][0][1], 10.0, "{all}");
    let (status, _) = api
        .call_as(&web_only, "GET", &format!("{path}&node=db-1"), None)
        .await;
    assert_eq!(status, 403);
    let (_, names) = api
        .call_as(&web_only, "GET", "/v1/metrics/names", None)
        .await;
    assert_eq!(names["names"][0]["nodes"], 1, "{names}");
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", api.server.url()))
        .bearer_auth(&web_only)
        .send()
        .await
        .unwrap();
    // `/metrics` itself needs metrics:Get on `metrics`, which node/* does not grant.
    assert_eq!(text.status().as_u16(), 403);

    // Nothing of metrics allowed: refused, and the refusal audited.
    let nobody = api
        .user_token(
            "nobody",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]),
        )
        .await;
    let (status, _) = api.call_as(&nobody, "GET", &path, None).await;
    assert_eq!(status, 403);
    let (status, _) = api.call_as(&nobody, "GET", "/v1/metrics/names", None).await;
    assert_eq!(status, 403);
    let refusals = api.audit_of("nobody").await;
    assert!(
        refusals
            .iter()
            .any(|r| r["action"] == "metrics:Get" && r["outcome"] == "denied"),
        "{refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_each_resolution_on_its_own() {
    let api = common::Api::start().await;
    let mut web1 = metered(&api, "web-1", &[]).await;
    let old = (now() - 2 * DAY).div_euclid(3_600_000) * 3_600_000;
    let recent = (now() - 10 * MIN).div_euclid(MIN) * MIN;
    web1.send_metrics(
        1,
        vec![
            point("cpu.used", &[], old, 10.0),
            point("cpu.used", &[], old + 30_000, 30.0),
            point("cpu.used", &[], recent, 50.0),
        ],
    )
    .await;
    let state = api.server.state();
    let id = node_id(&api, "web-1").await;
    let metrics = state.metrics();
    let none = BTreeMap::new();
    let count = |resolution: &'static str, from: i64| {
        let api = &api;
        async move {
            let answer = api
                .ok(
                    "GET",
                    &format!("/v1/metrics/query?metric=cpu.used&stat=count&period=3600&from={from}&to={}&resolution={resolution}", from + 3_600_000),
                    None,
                )
                .await;
            answer["series"]
                .as_array()
                .and_then(|s| s.first())
                .map(|s| s["points"].as_array().unwrap().len())
                .unwrap_or(0)
        }
    };
    // Raw points are kept a day (the default): the old ones go, the recent one stays.
    let report = metrics.prune(now()).await.unwrap();
    assert_eq!(report.raw, 2, "{report:?}");
    let left = metrics
        .datapoints(&id, "cpu.used", &none, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(left, [(recent, 50.0)]);
    // The rollups of the old points are still there, and answer for them.
    assert_eq!(count("1m", old).await, 1);
    assert_eq!(count("1h", old).await, 1);
    let avg = api
        .ok(
            "GET",
            &format!(
                "/v1/metrics/query?metric=cpu.used&stat=avg&period=60&from={old}&to={}",
                old + MIN
            ),
            None,
        )
        .await;
    assert_eq!(avg["series"][0]["points"], json!([[old, 20.0]]), "{avg}");

    // Sixteen days on, the minutes are gone too; the hours remain.
    let report = metrics.prune(now() + 16 * DAY).await.unwrap();
    assert_eq!(report.minute, 2, "{report:?}");
    assert_eq!(count("1m", old).await, 0);
    assert_eq!(count("1h", old).await, 1);
    // Past the longest retention nothing of the series is left.
    let report = metrics.prune(now() + 401 * DAY).await.unwrap();
    assert_eq!(report.series, 1, "{report:?}");
    assert!(metrics.series("cpu.used", &none).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agents_at_once_are_each_acknowledged_and_stored_once() {
    let api = common::Api::start().await;
    let t = (now() - 30 * MIN).div_euclid(MIN) * MIN;
    let mut agents = Vec::new();
    for i in 0..12 {
        agents.push(metered(&api, &format!("n-{i}"), &[]).await);
    }
    // Every agent sends five batches (each twice) at the same time: the
    // writer commits whatever is waiting together.
    let sending = agents.into_iter().map(|mut agent| {
        tokio::spawn(async move {
            for b in 0..5i64 {
                let points: Vec<MetricPoint> = (0..20)
                    .map(|m| point(&format!("m.{m}"), &[], t + b * 10_000, (b * 10) as f64))
                    .collect();
                agent.send_metrics(900 + b as u64, points.clone()).await;
                agent.send_metrics(900 + b as u64, points).await;
            }
        })
    });
    for task in futures_util::future::join_all(sending).await {
        task.unwrap();
    }
    let answer = api
        .ok(
            "GET",
            &format!("/v1/metrics/query?metric=m.7&stat=count&period=60&from={t}&by=node"),
            None,
        )
        .await;
    let series = answer["series"].as_array().unwrap();
    assert_eq!(series.len(), 12);
    for s in series {
        assert_eq!(points(s, t), [(0, 5.0)], "{s}");
    }
    let sum = api
        .ok(
            "GET",
            &format!("/v1/metrics/query?metric=m.0&stat=sum&period=60&from={t}"),
            None,
        )
        .await;
    assert_eq!(points(&sum["series"][0], t), [(0, 12.0 * 100.0)]);
}
