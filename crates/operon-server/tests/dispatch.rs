//! Dispatch end to end, in one process: a real server and real agents (the
//! agent library, running real shells) on loopback, without spawning
//! binaries. Covers the commands service, the dispatcher and its rate
//! control, the agent session and the result writer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::Api;

/// A server and in-process agents.
struct Fleet {
    api: Api,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::ops::Deref for Fleet {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Fleet {
    /// A server and one agent per `(name, role)`, all online.
    async fn start(agents: &[(&str, &str)]) -> Fleet {
        let api = Api::start().await;
        let mut stops = Vec::new();
        for (name, role) in agents {
            let enroll = api
                .server
                .create_enroll_token(
                    BTreeMap::from([("role".to_string(), role.to_string())]),
                    1,
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            let config = operon_agent::AgentConfig {
                server_url: api.server.url(),
                state_dir: api.dir.path().join(name),
                enroll_token: Some(enroll),
                name: Some(name.to_string()),
                tags: BTreeMap::new(),
                heartbeat_secs: None,
                server_fingerprint: None,
                tls_ca: None,
                insecure: false,
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(operon_agent::run(config, async move {
                let _ = stopped.await;
            }));
            stops.push(stop);
        }
        let online = agents.len();
        api.get_until("/v1/nodes", |nodes| {
            nodes
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["online"] == true)
                .count()
                == online
        })
        .await;
        Fleet { api, stops }
    }

    /// Create a command and wait for its final status.
    async fn run(&self, body: Value) -> Value {
        let created = self.ok("POST", "/v1/commands", Some(body)).await;
        self.finished(created["id"].as_str().unwrap()).await
    }

    async fn finished(&self, id: &str) -> Value {
        self.get_until(&format!("/v1/commands/{id}"), |c| {
            !matches!(c["status"].as_str(), Some("Pending" | "InProgress"))
        })
        .await
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

fn by_node(command: &Value) -> BTreeMap<String, Value> {
    command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["node_name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_exactly_their_targets_under_rate_control() {
    let fleet = Fleet::start(&[("web-1", "web"), ("web-2", "web"), ("db-1", "db")]).await;

    // Targets by tag: only the web nodes run it, each with its own output.
    let command = fleet
        .run(json!({"targets": ["tag:role=web"], "parameters": {"commands": ["echo \"hi from $(hostname >/dev/null; echo node)\""]}}))
        .await;
    assert_eq!(command["status"], "Success", "{command}");
    let nodes = by_node(&command);
    assert_eq!(nodes.keys().collect::<Vec<_>>(), ["web-1", "web-2"]);
    for invocation in nodes.values() {
        assert_eq!(invocation["stdout"], "hi from node\n");
        assert_eq!(invocation["exit_code"], 0);
    }

    // SSM-shaped targets reach the same nodes.
    let command = fleet
        .run(json!({"targets": [{"Key": "tag:role", "Values": ["db"]}], "parameters": {"commands": ["true"]}}))
        .await;
    assert_eq!(by_node(&command).keys().collect::<Vec<_>>(), ["db-1"]);

    // One at a time and no error tolerated: the first failure stops the rest.
    let command = fleet
        .run(
            json!({"targets": ["all"], "max_concurrency": "1", "max_errors": "0",
            "parameters": {"commands": ["exit 3"]}}),
        )
        .await;
    let statuses: Vec<&str> = command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "Failed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "Cancelled").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(command["status"], "Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_command_is_cancelled_on_the_node() {
    let fleet = Fleet::start(&[("web-1", "web")]).await;
    let (_, created) = fleet
        .call(
            "POST",
            "/v1/commands",
            Some(json!({"node_ids": ["web-1"], "parameters": {"commands": ["echo started; sleep 30"]}})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    fleet
        .get_until(&format!("/v1/commands/{id}"), |c| {
            c["invocations"][0]["status"] == "InProgress"
        })
        .await;
    let started = Instant::now();
    let (status, _) = fleet
        .call(
            "POST",
            &format!("/v1/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    let command = fleet.finished(&id).await;
    assert_eq!(command["status"], "Cancelled", "{command}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the node stopped the process"
    );
    let (status, _) = fleet
        .call(
            "POST",
            &format!("/v1/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "a finished command cannot be cancelled again");
}
