//! Metrics the agent samples on its node and sends to the server
//! ([`operon_proto::CAPABILITY_METRICS`]).

use std::time::Duration;

/// How often the node is sampled unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Where scripts on the node drop custom metrics unless configured otherwise.
pub const DEFAULT_CUSTOM_DIR: &str = "/var/lib/operon/metrics.d";
