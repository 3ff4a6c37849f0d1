//! Inventory with real agents on a real server (loopback, temporary data
//! directory): a custom inventory file appears, a change travels as a
//! delta carrying only the change, fleet-wide queries and
//! `inventory:KIND:FILTER` targets find the node, and reads are authorized
//! per node with its tags.

use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::fleet::Fleet;

/// The details of the events captured by `workflow`, once there are `count`.
async fn captured(fleet: &Fleet, workflow: &str, count: usize) -> Vec<Value> {
    let mut details = Vec::new();
    for input in fleet.captured_events(workflow, count).await {
        assert_eq!(input["source"], "operon.inventory");
        assert_eq!(input["detail-type"], "Inventory Change");
        details.push(input["detail"].clone());
    }
    details
}

fn write_custom(fleet: &Fleet, node: &str, name: &str, content: Value) {
    let dir = fleet.custom_inventory_dir(node);
    std::fs::create_dir_all(&dir).unwrap();
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, content.to_string()).unwrap();
    std::fs::rename(&temp, dir.join(format!("{name}.json"))).unwrap();
}

fn keys(answer: &Value, field: &str) -> Vec<String> {
    answer[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_inventory_appears_changes_as_a_delta_and_is_found_by_queries_and_targets() {
    let fleet = Fleet::start_with(
        &[("web-1", vec![("env", "prod")]), ("web-2", vec![])],
        Duration::from_millis(300),
    )
    .await;
    fleet
        .capture_events(
            "oninventory",
            json!({"source": ["operon.inventory"], "detail": {"type": ["custom:apps"]}}),
        )
        .await;

    // Built-in kinds arrive right after the Welcome.
    let users = fleet
        .get_until("/v1/nodes/web-2/inventory?type=users", |a| {
            keys(a, "items").contains(&"root".to_string())
        })
        .await;
    assert_eq!(users["node_name"], "web-2");

    // A custom file appears on its node at the next collection.
    write_custom(
        &fleet,
        "web-1",
        "apps",
        json!({"billing": {"version": "2.1", "port": 8080}, "ledger": {"version": "1.0"}}),
    );
    let apps = fleet
        .get_until("/v1/nodes/web-1/inventory?type=custom:apps", |a| {
            a["items"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(keys(&apps, "items"), ["billing", "ledger"]);
    assert_eq!(apps["items"][0]["attributes"]["port"], "8080");
    assert_eq!(apps["items"][0]["type"], "custom:apps");

    // A change to one item travels as a delta carrying only that item.
    write_custom(
        &fleet,
        "web-1",
        "apps",
        json!({"billing": {"version": "2.2", "port": 8080}, "ledger": {"version": "1.0"}}),
    );
    fleet
        .get_until("/v1/nodes/web-1/inventory?type=custom:apps", |a| {
            a["items"][0]["attributes"]["version"] == "2.2"
        })
        .await;
    let events = captured(&fleet, "oninventory", 2).await;
    let first = events.iter().find(|d| d["added"] == 2).unwrap();
    assert_eq!(first["full"], true, "{first}");
    assert_eq!(first["node_name"], "web-1");
    assert_eq!(first["added_keys"], json!(["billing", "ledger"]));
    let change = events.iter().find(|d| d["updated"] == 1).unwrap();
    assert_eq!(change["full"], false, "{change}");
    assert_eq!(
        change["sent"], 1,
        "only the changed item was sent: {change}"
    );
    assert_eq!(change["updated_keys"], json!(["billing"]));
    assert_eq!(
        (change["added"].as_u64(), change["removed"].as_u64()),
        (Some(0), Some(0))
    );

    // Fleet-wide queries, with Debian version order.
    let query = |filter: &str| {
        let encoded: String = filter
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("/v1/inventory?type=custom:apps&filter={encoded}")
    };
    let found = fleet
        .ok("GET", &query("name=billing,version>=2.2~rc1"), None)
        .await;
    assert_eq!(found["matches"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["matches"][0]["node_name"], "web-1");
    assert_eq!(found["matches"][0]["key"], "billing");
    let none = fleet
        .ok("GET", &query("name=billing,version<2.2"), None)
        .await;
    assert_eq!(none["matches"], json!([]));
    let regex = fleet.ok("GET", &query("name~^led"), None).await;
    assert_eq!(keys(&regex, "matches"), ["ledger"]);
    let (status, err) = fleet.call("GET", &query("version"), None).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "InvalidFilter", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"version\"")
    );
    let (status, err) = fleet.call("GET", "/v1/inventory?type=kernels", None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("InvalidInventoryType"))
    );

    // Targets by inventory: only the node with the item runs the command.
    let command = fleet
        .run(
            json!({"targets": ["inventory:custom:apps:name=billing,version>=2.2"],
            "parameters": {"commands": ["echo found"]}}),
        )
        .await;
    assert_eq!(command["status"], "Success", "{command}");
    let ran: Vec<&str> = command["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["web-1"]);
    let (status, err) = fleet
        .call(
            "POST",
            "/v1/commands",
            Some(json!({"targets": ["inventory:custom:apps:name=nothing"],
            "parameters": {"commands": ["true"]}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("ValidationError")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no nodes match"),
        "{err}"
    );
    let (status, err) = fleet
        .call(
            "POST",
            "/v1/commands",
            Some(json!({"targets": ["inventory:packages:name~("],
            "parameters": {"commands": ["true"]}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("ValidationError")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inventory:packages:name~("),
        "{err}"
    );

    // Syncs decide their nodes by tags alone: inventory targets are refused.
    let (status, err) = fleet
        .call(
            "PUT",
            "/v1/param-syncs/s1",
            Some(
                json!({"path": "/app/", "targets": ["inventory:custom:apps:name=billing"],
                "file": "/etc/app/env"}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported for syncs"),
        "{err}"
    );

    // Removing the file empties the kind on the server.
    std::fs::remove_file(fleet.custom_inventory_dir("web-1").join("apps.json")).unwrap();
    fleet
        .get_until("/v1/nodes/web-1/inventory?type=custom:apps", |a| {
            a["items"].as_array().unwrap().is_empty()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_reads_are_authorized_per_node_with_its_tags() {
    let fleet = Fleet::start_tagged(&[("web-1", vec![("env", "prod")]), ("web-2", vec![])]).await;
    for node in ["web-1", "web-2"] {
        fleet
            .get_until(&format!("/v1/nodes/{node}/inventory?type=users"), |a| {
                !a["items"].as_array().unwrap().is_empty()
            })
            .await;
    }
    let prod = fleet
        .user_token(
            "prod-reader",
            json!([
                {"Effect": "Allow", "Action": "inventory:Query", "Resource": "node/*"},
                {"Effect": "Allow", "Action": "inventory:Get", "Resource": "node/*",
                 "Condition": {"StringEquals": {"operon:NodeTag/env": "prod"}}}
            ]),
        )
        .await;
    let (status, found) = fleet
        .call_as(
            &prod,
            "GET",
            "/v1/inventory?type=users&filter=name=root",
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let nodes: Vec<&str> = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["web-1"], "only the node its policy allows");
    let (status, _) = fleet
        .call_as(&prod, "GET", "/v1/nodes/web-1/inventory", None)
        .await;
    assert_eq!(status, 200);
    let (status, err) = fleet
        .call_as(&prod, "GET", "/v1/nodes/web-2/inventory", None)
        .await;
    assert_eq!(status, 403, "{err}");
    let (status, _) = fleet
        .call_as(&prod, "GET", "/v1/nodes/nosuch/inventory", None)
        .await;
    assert_eq!(
        status, 403,
        "an unknown name is refused like one it may not read"
    );

    let nobody = fleet
        .user_token(
            "nobody",
            json!([{"Effect": "Allow", "Action": "nodes:List", "Resource": "node/*"}]),
        )
        .await;
    let (status, err) = fleet
        .call_as(&nobody, "GET", "/v1/inventory?type=users", None)
        .await;
    assert_eq!(status, 403, "{err}");
    let refusals = fleet.audit_of("nobody").await;
    assert!(
        refusals
            .iter()
            .any(|r| r["action"] == "inventory:Query" && r["outcome"] == "denied"),
        "{refusals:?}"
    );
}

/// An agent speaking the protocol by hand: enrolled, connected, welcomed.
struct RawAgent {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawAgent {
    async fn connect(api: &common::Api, name: &str, capabilities: &[&str]) -> RawAgent {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let token = api
            .server
            .create_enroll_token(Default::default(), 1, Duration::from_secs(60))
            .await
            .unwrap();
        let enrolled: Value = reqwest::Client::new()
            .post(format!("{}/v1/agent/enroll", api.server.url()))
            .json(&json!({"enroll_token": token, "name": name, "inventory": operon_proto::Inventory::default()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let credential = enrolled["credential"].as_str().unwrap();
        let url = format!(
            "{}/v1/agent/connect",
            api.server.url().replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut agent = RawAgent { ws };
        let hello = operon_proto::AgentMessage::Hello {
            protocol_version: operon_proto::PROTOCOL_VERSION,
            inventory: Default::default(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        };
        agent
            .ws
            .send(operon_proto::encode(&hello).into())
            .await
            .unwrap();
        match agent.next().await {
            operon_proto::ServerMessage::Welcome { .. } => agent,
            other => panic!("{other:?}"),
        }
    }

    async fn send(&mut self, message: operon_proto::AgentMessage) {
        use futures_util::SinkExt;
        self.ws
            .send(operon_proto::encode(&message).into())
            .await
            .unwrap();
    }

    async fn next(&mut self) -> operon_proto::ServerMessage {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame within 10 s")
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                return operon_proto::decode(&text).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_acknowledged_on_their_base_and_resynced_otherwise() {
    use operon_proto::{
        AgentMessage, InventoryDelta, InventoryItem, ServerMessage, inventory_digest,
    };
    let api = common::Api::start().await;
    let mut agent = RawAgent::connect(&api, "raw-1", &[operon_proto::CAPABILITY_INVENTORY]).await;
    let item = |key: &str, version: &str| InventoryItem {
        key: key.into(),
        attributes: [("version".to_string(), version.to_string())].into(),
    };
    let v1 = vec![item("bash", "5.2"), item("openssl", "3.0.2")];
    let d1 = inventory_digest(&v1);
    let report =
        |base: Option<&str>, digest: &str, upserts: Vec<InventoryItem>, removals: Vec<&str>| {
            AgentMessage::InventoryReport(InventoryDelta {
                kind: "packages".into(),
                base: base.map(str::to_string),
                digest: digest.to_string(),
                upserts,
                removals: removals.into_iter().map(str::to_string).collect(),
                at: 1,
            })
        };
    // A whole set is stored and acknowledged.
    agent.send(report(None, &d1, v1.clone(), vec![])).await;
    assert_eq!(
        agent.next().await,
        ServerMessage::InventoryAck {
            kind: "packages".into(),
            digest: d1.clone()
        }
    );
    // A delta on a base the server does not hold: send the whole set.
    agent.send(report(Some("0000"), &d1, vec![], vec![])).await;
    assert_eq!(
        agent.next().await,
        ServerMessage::InventoryResync {
            kind: "packages".into()
        }
    );
    // A delta whose result is not what the agent says: the same.
    agent
        .send(report(Some(&d1), "ffff", vec![item("zsh", "5.9")], vec![]))
        .await;
    assert_eq!(
        agent.next().await,
        ServerMessage::InventoryResync {
            kind: "packages".into()
        }
    );
    // A delta on the held base is applied.
    let v2 = vec![item("bash", "5.2"), item("openssl", "3.0.7")];
    let d2 = inventory_digest(&v2);
    agent
        .send(report(
            Some(&d1),
            &d2,
            vec![item("openssl", "3.0.7")],
            vec![],
        ))
        .await;
    assert_eq!(
        agent.next().await,
        ServerMessage::InventoryAck {
            kind: "packages".into(),
            digest: d2.clone()
        }
    );
    let shown = api
        .ok("GET", "/v1/nodes/raw-1/inventory?type=packages", None)
        .await;
    assert_eq!(shown["items"][1]["attributes"]["version"], "3.0.7");
    assert_eq!(shown["items"].as_array().unwrap().len(), 2);
    // A report of an unknown kind is dropped unanswered: the heartbeat's
    // answer is the next frame.
    agent
        .send(AgentMessage::InventoryReport(InventoryDelta {
            kind: "kernels".into(),
            base: None,
            digest: inventory_digest(&[]),
            upserts: vec![],
            removals: vec![],
            at: 1,
        }))
        .await;
    agent.send(AgentMessage::Heartbeat { seq: 7 }).await;
    assert_eq!(agent.next().await, ServerMessage::HeartbeatAck { seq: 7 });

    // An agent that did not announce the capability gets no answer and
    // nothing is stored.
    let mut old = RawAgent::connect(&api, "raw-old", &[]).await;
    old.send(report(None, &d1, v1.clone(), vec![])).await;
    old.send(AgentMessage::Heartbeat { seq: 1 }).await;
    assert_eq!(old.next().await, ServerMessage::HeartbeatAck { seq: 1 });
    let shown = api.ok("GET", "/v1/nodes/raw-old/inventory", None).await;
    assert_eq!(shown["items"], json!([]));
}
