//! A real server on a loopback port with a temporary data directory, driven
//! over HTTP with the admin token: the fixture of the in-process tests.

#![allow(dead_code)] // each test binary uses its own part of it

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

    /// [`Api::call`] with another bearer token.
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
