//! The typed API of metrics (`operon_api::metrics`).

use std::collections::BTreeMap;

use anyhow::Result;
use operon_api::metrics::{MetricNames, MetricQueryAnswer};

use super::client::{Answer, Client};
use super::client_params::{encode, query};

/// What `GET /v1/metrics/query` is asked (absent fields are left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricQueryParams {
    pub metric: String,
    pub node: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    pub stat: Option<String>,
    pub period: Option<u64>,
    pub since: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub by: Option<String>,
}

impl MetricQueryParams {
    /// The query string, `dim.KEY=VALUE` for each dimension.
    pub fn path(&self) -> String {
        let mut path = format!(
            "/v1/metrics/query{}",
            query(&[
                ("metric", Some(self.metric.clone())),
                ("node", self.node.clone()),
                ("stat", self.stat.clone()),
                ("period", self.period.map(|p| p.to_string())),
                ("since", self.since.clone()),
                ("from", self.from.map(|f| f.to_string())),
                ("to", self.to.map(|t| t.to_string())),
                ("by", self.by.clone()),
            ])
        );
        for (key, value) in &self.dimensions {
            path.push_str(&format!("&dim.{}={}", encode(key), encode(value)));
        }
        path
    }
}

impl Client {
    /// Statistics of a metric per period.
    pub async fn query_metrics(
        &self,
        params: &MetricQueryParams,
    ) -> Result<Answer<MetricQueryAnswer>> {
        Answer::read(self.get(&params.path()).await?)
    }

    /// Metric names stored (of one node when given).
    pub async fn metric_names(&self, node: Option<&str>) -> Result<Answer<MetricNames>> {
        let path = format!(
            "/v1/metrics/names{}",
            query(&[("node", node.map(str::to_string))])
        );
        Answer::read(self.get(&path).await?)
    }
}
