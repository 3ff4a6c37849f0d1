//! A real server on a loopback port with a temporary data directory, driven
//! over HTTP with the admin token: the fixture of the in-process tests.

#![allow(dead_code)] // each test binary uses its own part of it

pub mod accounts;
pub mod console;
pub mod fleet;
pub mod raw_agent;
pub mod session_client;

use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Api {
    pub server: operon_server::Server,
    pub token: String,
    pub dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Api {
    pub async fn start() -> Api {
        Api::start_with(|_| {}).await
    }

    /// [`Api::start`] with the configuration changed by `configure`.
    pub async fn start_with(configure: impl FnOnce(&mut operon_server::ServerConfig)) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = operon_server::ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("server"),
        );
        // The tests' webhook receivers and HTTP servers are on loopback.
        config.http_allow = "127.0.0.1/32".parse().unwrap();
        configure(&mut config);
        let server = operon_server::start(config).await.unwrap();
        Api {
            token: server.new_admin_token.clone().unwrap(),
            server,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// The status and JSON answer (`null` when the body is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// A token of a new user `name` whose only policy is `statements`.
    pub async fn user_token(&self, name: &str, statements: Value) -> String {
        let document = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
        self.user_with_policy(name, document).await
    }

    /// [`Api::call`] with another token.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        let mut request = self
            .client
            .request(method.parse().unwrap(), url)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The answer of a call that must succeed.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A user holding one role (named after them) with one policy; returns
    /// a token of theirs.
    pub async fn user_with_policy(&self, user: &str, policy: Value) -> String {
        self.ok(
            "POST",
            "/v1/policies",
            Some(serde_json::json!({"name": user, "document": policy})),
        )
        .await;
        self.ok(
            "POST",
            "/v1/roles",
            Some(serde_json::json!({"name": user, "policies": [user]})),
        )
        .await;
        self.ok(
            "POST",
            "/v1/users",
            Some(serde_json::json!({"name": user, "roles": [user]})),
        )
        .await;
        let token = self
            .ok(
                "POST",
                "/v1/tokens",
                Some(serde_json::json!({"name": "main", "user": user})),
            )
            .await;
        token["token"].as_str().unwrap().to_string()
    }

    /// The audit records of `actor`, newest first.
    pub async fn audit_of(&self, actor: &str) -> Vec<Value> {
        let records = self
            .ok("GET", &format!("/v1/audit?actor={actor}&limit=500"), None)
            .await;
        records.as_array().unwrap().clone()
    }

    /// A workflow that does nothing and a rule starting it for every event
    /// matching `pattern`: each execution's input is an event to look at
    /// ([`Api::captured_events`]).
    pub async fn capture_events(&self, workflow: &str, pattern: Value) {
        let definition =
            serde_json::json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
        self.ok(
            "POST",
            "/v1/workflows",
            Some(serde_json::json!({"name": workflow, "definition": definition})),
        )
        .await;
        let rule = serde_json::json!({
            "pattern": pattern,
            "targets": [{"Id": "wf", "Kind": "workflow", "Workflow": workflow}]
        });
        self.ok("PUT", &format!("/v1/rules/{workflow}"), Some(rule))
            .await;
    }

    /// The events `workflow` captured, once there are at least `count`
    /// (20 s at most), in no particular order.
    pub async fn captured_events(&self, workflow: &str, count: usize) -> Vec<Value> {
        let path = format!("/v1/executions?workflow={workflow}");
        let executions = self
            .get_until(&path, |list| list.as_array().unwrap().len() >= count)
            .await;
        let mut events = Vec::new();
        for execution in executions.as_array().unwrap() {
            let id = execution["executionId"].as_str().unwrap();
            let full = self.ok("GET", &format!("/v1/executions/{id}"), None).await;
            events.push(match &full["input"] {
                Value::String(text) => serde_json::from_str(text).unwrap(),
                other => other.clone(),
            });
        }
        events
    }

    /// GET `path` until `done` holds for the answer (20 s at most).
    pub async fn get_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self.ok("GET", path, None).await;
            if done(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "GET {path} stuck: {answer}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
