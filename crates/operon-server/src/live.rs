//! Live views of running commands: output chunks and status changes, fanned
//! out to `GET /v1/commands/{id}/stream` subscribers.
//!
//! Each command keeps a bounded backlog so a client that subscribes just after
//! creating a command still sees the output produced before it connected.
//! Live output is best effort; the stored result is the record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use operon_proto::{InvocationStatus, OutputStream};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::happenings::{Happening, Happenings};

/// Backlog kept per command for late subscribers.
const BACKLOG_BYTES: usize = 1 << 20;
/// How long a finished command's live view is kept.
const KEEP_AFTER_DONE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    Output {
        node_id: String,
        node_name: String,
        stream: OutputStream,
        data: String,
    },
    Status {
        node_id: String,
        node_name: String,
        status: InvocationStatus,
        exit_code: Option<i32>,
        detail: Option<String>,
    },
    Done {
        status: InvocationStatus,
    },
}

impl LiveEvent {
    fn size(&self) -> usize {
        match self {
            LiveEvent::Output { data, .. } => data.len() + 64,
            _ => 128,
        }
    }
}

struct LiveCommand {
    backlog: Vec<LiveEvent>,
    backlog_bytes: usize,
    tx: broadcast::Sender<LiveEvent>,
    done_at: Option<Instant>,
}

impl LiveCommand {
    fn new() -> Self {
        LiveCommand {
            backlog: Vec::new(),
            backlog_bytes: 0,
            tx: broadcast::channel(1024).0,
            done_at: None,
        }
    }
}

pub struct Live {
    commands: Mutex<HashMap<String, LiveCommand>>,
    /// Status changes and completions are also announced as happenings
    /// (the event bus turns them into `operon.commands` events).
    happenings: Happenings,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveCommand>> {
        self.commands.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn new(happenings: Happenings) -> Self {
        Live {
            commands: Mutex::default(),
            happenings,
        }
    }

    pub fn publish(&self, command_id: &str, event: LiveEvent) {
        if let Some(happening) = happening_of(command_id, &event) {
            self.happenings.publish(happening);
        }
        let mut commands = self.lock();
        let live = commands
            .entry(command_id.to_string())
            .or_insert_with(LiveCommand::new);
        if matches!(event, LiveEvent::Done { .. }) {
            live.done_at = Some(Instant::now());
        }
        let size = event.size();
        let is_output = matches!(event, LiveEvent::Output { .. });
        if !is_output || live.backlog_bytes + size <= BACKLOG_BYTES {
            live.backlog_bytes += size;
            live.backlog.push(event.clone());
        }
        let _ = live.tx.send(event);
    }

    /// The backlog so far and a receiver for what follows, atomically.
    pub fn subscribe(&self, command_id: &str) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let mut commands = self.lock();
        let live = commands
            .entry(command_id.to_string())
            .or_insert_with(LiveCommand::new);
        (live.backlog.clone(), live.tx.subscribe())
    }

    /// Forget views of commands finished long ago.
    pub fn collect_garbage(&self) {
        self.lock()
            .retain(|_, live| live.done_at.is_none_or(|at| at.elapsed() < KEEP_AFTER_DONE));
    }
}

/// The happening a live event announces (output is not one).
fn happening_of(command_id: &str, event: &LiveEvent) -> Option<Happening> {
    match event {
        LiveEvent::Output { .. } => None,
        LiveEvent::Status {
            node_id,
            node_name,
            status,
            exit_code,
            detail,
        } => Some(Happening::Invocation {
            command_id: command_id.to_string(),
            node_id: node_id.clone(),
            node_name: node_name.clone(),
            status: *status,
            exit_code: *exit_code,
            detail: detail.clone(),
        }),
        LiveEvent::Done { status } => Some(Happening::Command {
            command_id: command_id.to_string(),
            status: *status,
        }),
    }
}
