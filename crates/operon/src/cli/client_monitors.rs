//! The typed API of monitors (`/v1/monitors`): health checks and log watchers.

use anyhow::Result;
use operon_api::monitors::{Monitor, MonitorDetail, PutMonitor};

use super::client::{Answer, Client, to_json};
use super::client_params::encode;

impl Client {
    pub async fn put_monitor(&self, name: &str, body: &PutMonitor) -> Result<Answer<Monitor>> {
        let path = format!("/v1/monitors/{}", encode(name));
        Answer::read(self.put(&path, &to_json(body)?).await?)
    }

    pub async fn monitors(&self) -> Result<Answer<Vec<Monitor>>> {
        Answer::read(self.get("/v1/monitors").await?)
    }

    pub async fn monitor(&self, name: &str) -> Result<Answer<MonitorDetail>> {
        Answer::read(self.get(&format!("/v1/monitors/{}", encode(name))).await?)
    }

    pub async fn delete_monitor(&self, name: &str) -> Result<Answer<Monitor>> {
        Answer::read(
            self.delete(&format!("/v1/monitors/{}", encode(name)))
                .await?,
        )
    }
}
