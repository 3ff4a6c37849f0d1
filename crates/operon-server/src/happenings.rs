//! The typed stream of server happenings: a node enrolled, connected or went
//! away; an invocation or a command changed status; an execution changed
//! status. Later features add theirs (compliance, alarms, sessions).
//!
//! Features publish here and do not know who listens; listeners subscribe.
//! The event bus is one listener: it turns each happening into an
//! EventBridge envelope (`operon.fleet`, `operon.commands`,
//! `operon.workflows`) with [`envelope_entry`], so the agent session, the
//! dispatcher and the workflow runner never call the event bus.
//!
//! Delivery is best effort, like the live view it replaces: the stream is a
//! bounded broadcast, and a listener that falls more than [`CAPACITY`]
//! behind is told how many it skipped (and logs it). What matters is in the
//! store first; a happening only announces it.

use std::collections::BTreeMap;

use operon_proto::InvocationStatus;
use operon_store::ExecutionRecord;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Happenings a slow listener may fall behind before it skips some.
pub const CAPACITY: usize = 16_384;

/// Something that happened on the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    Node {
        change: NodeChange,
        node_id: String,
        node_name: String,
        tags: BTreeMap<String, String>,
    },
    /// One node's part of a command changed status.
    Invocation {
        command_id: String,
        node_id: String,
        node_name: String,
        status: InvocationStatus,
        exit_code: Option<i32>,
        detail: Option<String>,
    },
    /// A command finished.
    Command {
        command_id: String,
        status: InvocationStatus,
    },
    /// An execution started, ended, or was redriven (after the commit).
    Execution(Box<ExecutionRecord>),
    /// The loop guard stopped a rule triggered again by its own effects.
    RuleLoopStopped {
        rule: String,
        causation: Vec<String>,
        event_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Enrolled,
    Connected,
    Disconnected,
}

/// The publishing end, shared by every feature.
#[derive(Debug, Clone)]
pub struct Happenings {
    tx: broadcast::Sender<Happening>,
}

impl Default for Happenings {
    fn default() -> Self {
        Happenings {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Happenings {
    /// Announce; never waits (nobody listening is fine).
    pub fn publish(&self, happening: Happening) {
        let _ = self.tx.send(happening);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Happening> {
        self.tx.subscribe()
    }
}

/// The EventBridge source, detail type and detail of a happening, as the
/// event bus puts it on the default bus.
pub fn envelope_entry(happening: &Happening) -> (&'static str, &'static str, Value) {
    match happening {
        Happening::Node {
            change,
            node_id,
            node_name,
            tags,
        } => {
            let detail_type = match change {
                NodeChange::Enrolled => "Node Enrolled",
                NodeChange::Connected => "Node Connected",
                NodeChange::Disconnected => "Node Disconnected",
            };
            (
                "operon.fleet",
                detail_type,
                json!({"node-id": node_id, "node-name": node_name, "tags": tags}),
            )
        }
        Happening::Invocation {
            command_id,
            node_id,
            node_name,
            status,
            exit_code,
            detail,
        } => (
            "operon.commands",
            "Command Invocation Status Change",
            json!({
                "command-id": command_id,
                "node-id": node_id,
                "node-name": node_name,
                "status": status.as_str(),
                "exit-code": exit_code,
                "status-detail": detail,
            }),
        ),
        Happening::Command { command_id, status } => (
            "operon.commands",
            "Command Status Change",
            json!({"command-id": command_id, "status": status.as_str()}),
        ),
        Happening::RuleLoopStopped {
            rule,
            causation,
            event_id,
        } => (
            "operon.events",
            "Rule Loop Stopped",
            json!({"rule": rule, "causation": causation, "event-id": event_id}),
        ),
        Happening::Execution(execution) => (
            "operon.workflows",
            "Workflow Execution Status Change",
            json!({
                "execution-id": execution.id,
                "workflow": execution.workflow,
                "version": execution.version,
                "name": execution.name,
                "status": execution.status,
                "started-by": execution.started_by,
                "error": execution.error,
                "cause": execution.cause,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_happenings_become_fleet_events() {
        let h = Happening::Node {
            change: NodeChange::Disconnected,
            node_id: "n-1".into(),
            node_name: "web-1".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
        };
        let (source, detail_type, detail) = envelope_entry(&h);
        assert_eq!((source, detail_type), ("operon.fleet", "Node Disconnected"));
        assert_eq!(
            detail,
            json!({"node-id": "n-1", "node-name": "web-1", "tags": {"env": "prod"}})
        );
    }

    #[test]
    fn command_happenings_become_command_events() {
        let h = Happening::Invocation {
            command_id: "c-1".into(),
            node_id: "n-1".into(),
            node_name: "web-1".into(),
            status: InvocationStatus::Failed,
            exit_code: Some(3),
            detail: None,
        };
        let (source, detail_type, detail) = envelope_entry(&h);
        assert_eq!(
            (source, detail_type),
            ("operon.commands", "Command Invocation Status Change")
        );
        assert_eq!(detail["status"], "Failed");
        assert_eq!(detail["exit-code"], 3);
        let done = Happening::Command {
            command_id: "c-1".into(),
            status: InvocationStatus::Success,
        };
        assert_eq!(
            envelope_entry(&done).2,
            json!({"command-id": "c-1", "status": "Success"})
        );
    }

    #[tokio::test]
    async fn every_listener_sees_every_happening_in_order() {
        let happenings = Happenings::default();
        let mut a = happenings.subscribe();
        let mut b = happenings.subscribe();
        for i in 0..3 {
            happenings.publish(Happening::Command {
                command_id: format!("c-{i}"),
                status: InvocationStatus::Success,
            });
        }
        for rx in [&mut a, &mut b] {
            for i in 0..3 {
                match rx.recv().await.unwrap() {
                    Happening::Command { command_id, .. } => {
                        assert_eq!(command_id, format!("c-{i}"))
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}
