//! A server and in-process agents (the agent library, running real shells)
//! on loopback: the fixture of tests that need nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Api;

/// A server and in-process agents.
pub struct Fleet {
    pub api: Api,
    stops: Vec<Option<tokio::sync::oneshot::Sender<()>>>,
    inventory_interval: Duration,
    metrics_interval: Duration,
}

impl std::ops::Deref for Fleet {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Fleet {
    /// Where agent `name` reads its custom inventory files.
    pub fn custom_inventory_dir(&self, name: &str) -> std::path::PathBuf {
        self.api.dir.path().join(format!("{name}-inventory.d"))
    }

    /// A server and one agent per `(name, role)`, all online.
    pub async fn start(agents: &[(&str, &str)]) -> Fleet {
        let tagged: Vec<(&str, Vec<(&str, &str)>)> = agents
            .iter()
            .map(|(name, role)| (*name, vec![("role", *role)]))
            .collect();
        Fleet::start_tagged(&tagged).await
    }

    /// A server and one agent per `(name, tags)`, all online.
    pub async fn start_tagged(agents: &[(&str, Vec<(&str, &str)>)]) -> Fleet {
        Fleet::start_with(agents, operon_agent::inventory_sets::DEFAULT_INTERVAL).await
    }

    /// [`start_tagged`](Self::start_tagged), collecting inventory every
    /// `inventory_interval`; each agent reads custom inventory from
    /// `<dir>/<name>-inventory.d` ([`Fleet::custom_inventory_dir`]).
    pub async fn start_with(
        agents: &[(&str, Vec<(&str, &str)>)],
        inventory_interval: Duration,
    ) -> Fleet {
        let mut fleet = Fleet {
            api: Api::start().await,
            stops: Vec::new(),
            inventory_interval,
            metrics_interval: Duration::ZERO,
        };
        for (name, tags) in agents {
            fleet.spawn_agent(name, tags).await;
        }
        fleet.wait_online(agents.len()).await;
        fleet
    }

    /// A server and agents that sample metrics (and run monitors) every
    /// `metrics_interval`; other fleets' agents send no metrics.
    pub async fn start_metered(
        agents: &[(&str, Vec<(&str, &str)>)],
        metrics_interval: Duration,
    ) -> Fleet {
        let mut fleet = Fleet {
            api: Api::start().await,
            stops: Vec::new(),
            inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
            metrics_interval,
        };
        for (name, tags) in agents {
            fleet.spawn_agent(name, tags).await;
        }
        fleet.wait_online(agents.len()).await;
        fleet
    }

    /// A server configured by `configure` and one agent per `(name, tags)`.
    pub async fn start_configured(
        agents: &[(&str, Vec<(&str, &str)>)],
        configure: impl FnOnce(&mut operon_server::ServerConfig),
    ) -> Fleet {
        let mut fleet = Fleet {
            api: Api::start_with(configure).await,
            stops: Vec::new(),
            inventory_interval: operon_agent::inventory_sets::DEFAULT_INTERVAL,
            metrics_interval: Duration::ZERO,
        };
        for (name, tags) in agents {
            fleet.spawn_agent(name, tags).await;
        }
        fleet.wait_online(agents.len()).await;
        fleet
    }

    /// Start one more agent (a node joining) and wait until it is online.
    pub async fn join(&mut self, name: &str, tags: &[(&str, &str)]) {
        let online = self.stops.iter().filter(|s| s.is_some()).count() + 1;
        self.spawn_agent(name, tags).await;
        self.wait_online(online).await;
    }

    async fn spawn_agent(&mut self, name: &str, tags: &[(&str, &str)]) {
        let api = &self.api;
        let tags: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let enroll = api
            .server
            .create_enroll_token(tags, 1, Duration::from_secs(60))
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
            // Each agent keeps synced files below its own directory,
            // as if it were its own host.
            host_root: Some(api.dir.path().join(format!("{name}-root"))),
            inventory_interval: self.inventory_interval,
            custom_inventory_dir: self.custom_inventory_dir(name),
            metrics_interval: self.metrics_interval,
            custom_metrics_dir: api.dir.path().join(format!("{name}-metrics.d")),
            session_create_user: false,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(operon_agent::run(config, async move {
            let _ = stopped.await;
        }));
        self.stops.push(Some(stop));
    }

    /// Stop the `index`th agent started (from 0); its node goes offline.
    #[allow(dead_code)] // not every test binary stops agents
    pub async fn stop_agent(&mut self, index: usize) {
        if let Some(stop) = self.stops[index].take() {
            let _ = stop.send(());
        }
        let online = self.stops.iter().filter(|s| s.is_some()).count();
        self.wait_online(online).await;
    }

    async fn wait_online(&self, online: usize) {
        self.api
            .get_until("/v1/nodes", |nodes| {
                nodes
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["online"] == true)
                    .count()
                    == online
            })
            .await;
    }

    /// Create a command and wait for its final status.
    pub async fn run(&self, body: Value) -> Value {
        let created = self.ok("POST", "/v1/commands", Some(body)).await;
        self.finished(created["id"].as_str().unwrap()).await
    }

    pub async fn finished(&self, id: &str) -> Value {
        self.get_until(&format!("/v1/commands/{id}"), |c| {
            !matches!(c["status"].as_str(), Some("Pending" | "InProgress"))
        })
        .await
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for stop in self.stops.drain(..).flatten() {
            let _ = stop.send(());
        }
    }
}
