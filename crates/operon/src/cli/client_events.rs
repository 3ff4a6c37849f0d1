//! Typed calls of the event bus: PutEvents, buses, rules, dead letters,
//! inbound webhooks, archives and replays.
//!
//! Paths are built from the names given, as the commands always did; the
//! server answers 404 for a name it does not know.

use anyhow::Result;
use operon_api::events::{
    Archive, Bus, BusCreated, CreateArchive, CreateBus, CreateWebhook, CreatedWebhook, DeadLetter,
    DeletedName, PutEventsResult, PutRule, RedriveDeadLetters, Redriven, Replay, Rule,
    RuleTestResult, StartReplay, TestRule, Webhook,
};
use serde_json::{Value, json};

use super::bus::encode;
use super::client::{Answer, Client, to_json};

impl Client {
    /// PutEvents. The entries go as given (a file's entries are the
    /// server's to judge, entry by entry).
    pub async fn put_events(&self, entries: &[Value]) -> Result<Answer<PutEventsResult>> {
        Answer::read(
            self.post("/v1/events", &json!({"Entries": entries}))
                .await?,
        )
    }

    pub async fn buses(&self) -> Result<Answer<Vec<Bus>>> {
        Answer::read(self.get("/v1/buses").await?)
    }

    pub async fn create_bus(&self, body: &CreateBus) -> Result<Answer<BusCreated>> {
        Answer::read(self.post("/v1/buses", &to_json(body)?).await?)
    }

    pub async fn delete_bus(&self, name: &str) -> Result<Answer<DeletedName>> {
        Answer::read(self.delete(&format!("/v1/buses/{name}")).await?)
    }

    pub async fn rules(&self) -> Result<Answer<Vec<Rule>>> {
        Answer::read(self.get("/v1/rules").await?)
    }

    pub async fn rule(&self, name: &str) -> Result<Answer<Rule>> {
        Answer::read(self.get(&format!("/v1/rules/{name}")).await?)
    }

    pub async fn put_rule(&self, name: &str, body: &PutRule) -> Result<Answer<Rule>> {
        Answer::read(
            self.put(&format!("/v1/rules/{name}"), &to_json(body)?)
                .await?,
        )
    }

    pub async fn delete_rule(&self, name: &str) -> Result<Answer<DeletedName>> {
        Answer::read(self.delete(&format!("/v1/rules/{name}")).await?)
    }

    /// Enable (`true`) or disable a rule.
    pub async fn set_rule_enabled(&self, name: &str, enabled: bool) -> Result<Answer<Rule>> {
        let verb = if enabled { "enable" } else { "disable" };
        Answer::read(
            self.post(&format!("/v1/rules/{name}/{verb}"), &json!({}))
                .await?,
        )
    }

    pub async fn test_rule(&self, name: &str, body: &TestRule) -> Result<Answer<RuleTestResult>> {
        let path = format!("/v1/rules/{name}/test");
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }

    /// Dead letters, of one rule when given.
    pub async fn dead_letters(&self, rule: Option<&str>) -> Result<Answer<Vec<DeadLetter>>> {
        let path = match rule {
            Some(r) => format!("/v1/dlq?rule={}", encode(r)),
            None => "/v1/dlq".to_string(),
        };
        Answer::read(self.get(&path).await?)
    }

    pub async fn dead_letter(&self, id: &str) -> Result<Answer<DeadLetter>> {
        Answer::read(self.get(&format!("/v1/dlq/{id}")).await?)
    }

    pub async fn redrive(&self, body: &RedriveDeadLetters) -> Result<Answer<Redriven>> {
        Answer::read(self.post("/v1/dlq/redrive", &to_json(body)?).await?)
    }

    pub async fn webhooks(&self) -> Result<Answer<Vec<Webhook>>> {
        Answer::read(self.get("/v1/webhooks").await?)
    }

    pub async fn create_webhook(&self, body: &CreateWebhook) -> Result<Answer<CreatedWebhook>> {
        Answer::read(self.post("/v1/webhooks", &to_json(body)?).await?)
    }

    pub async fn delete_webhook(&self, name: &str) -> Result<Answer<DeletedName>> {
        Answer::read(self.delete(&format!("/v1/webhooks/{name}")).await?)
    }

    pub async fn archives(&self) -> Result<Answer<Vec<Archive>>> {
        Answer::read(self.get("/v1/archives").await?)
    }

    pub async fn create_archive(&self, body: &CreateArchive) -> Result<Answer<Archive>> {
        Answer::read(self.post("/v1/archives", &to_json(body)?).await?)
    }

    pub async fn delete_archive(&self, name: &str) -> Result<Answer<DeletedName>> {
        Answer::read(self.delete(&format!("/v1/archives/{name}")).await?)
    }

    pub async fn replays(&self) -> Result<Answer<Vec<Replay>>> {
        Answer::read(self.get("/v1/replays").await?)
    }

    pub async fn replay(&self, name: &str) -> Result<Answer<Replay>> {
        Answer::read(self.get(&format!("/v1/replays/{name}")).await?)
    }

    pub async fn start_replay(&self, body: &StartReplay) -> Result<Answer<Replay>> {
        Answer::read(self.post("/v1/replays", &to_json(body)?).await?)
    }
}
