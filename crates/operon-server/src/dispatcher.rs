//! The dispatcher: drives every active command to completion.
//!
//! One task loops over the commands not yet final, asks the pure planner
//! ([`crate::rate::plan`]) what to do, persists each decision, then performs
//! it. A target is marked InProgress in the database *before* its `Run` is
//! sent, so a crash between the two is repaired by the resend on reconnect,
//! never by a second dispatch. The loop wakes on every relevant change
//! (new command, agent connect/disconnect, result) and at least once a second
//! for timeouts.

use std::sync::Arc;
use std::time::Duration;

use operon_proto::{RunCommand, ServerMessage};
use operon_store::{Command, invocation_id};

use crate::coordination::Topic;
use crate::live::LiveEvent;
use crate::rate::{self, Limit, PlanInput, Target};
use crate::{AppState, now_millis};

/// Build the `Run` message for one node of a command from the steps to
/// send (parameter references resolved, see [`crate::params::refs`]);
/// environment values are opened here, at the last moment.
pub fn run_message(
    command: &Command,
    steps: Vec<operon_proto::Step>,
    node_id: &str,
    seal: &crate::events::signing::SealKey,
) -> RunCommand {
    let template = &command.run_template;
    RunCommand {
        invocation_id: invocation_id(&command.id, node_id),
        command_id: command.id.clone(),
        steps,
        timeout_secs: command.timeout_secs.max(1) as u64,
        cwd: template.cwd.clone(),
        env: crate::commands::service::open_env(seal, &template.env),
        user: template.user.clone(),
        output_cap_bytes: template.output_cap_bytes,
    }
}

pub async fn run(state: Arc<AppState>) {
    let mut wake = state.coordination.subscribe(Topic::Dispatch);
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = tick(&state).await {
            tracing::error!(error = %e, "dispatcher pass failed; retrying");
        }
        state.live.collect_garbage();
    }
}

async fn tick(state: &AppState) -> Result<(), operon_store::StoreError> {
    for command in state.store.active_commands().await? {
        advance(state, &command).await?;
    }
    Ok(())
}

async fn advance(state: &AppState, command: &Command) -> Result<(), operon_store::StoreError> {
    let invocations = state.store.invocations(&command.id).await?;
    let targets: Vec<Target> = invocations
        .iter()
        .map(|inv| Target {
            node_id: inv.node_id.clone(),
            status: inv.status,
            dispatched_at: inv.dispatched_at,
            online: state.hub.is_online(&inv.node_id),
        })
        .collect();
    let now = now_millis();
    // Both limits were validated when the command was created.
    let max_concurrency = Limit::parse(&command.max_concurrency).unwrap_or(Limit::Count(50));
    let max_errors = Limit::parse(&command.max_errors).unwrap_or(Limit::Count(0));
    let plan = rate::plan(&PlanInput {
        max_concurrency,
        max_errors,
        timeout_secs: command.timeout_secs,
        delivery_timeout_secs: command.delivery_timeout_secs,
        created_at: command.created_at,
        cancel_requested: command.cancel_requested,
        now,
        targets: &targets,
    });
    let name_of = |node_id: &str| {
        invocations
            .iter()
            .find(|i| i.node_id == node_id)
            .map(|i| i.node_name.clone())
            .unwrap_or_default()
    };
    for ending in &plan.end {
        end_without_result(
            state,
            command,
            &ending.node_id,
            ending.status,
            &ending.detail,
            now,
            &name_of,
        )
        .await?;
    }
    let steps = if plan.start.is_empty() {
        None
    } else {
        match crate::params::refs::steps_to_send(state, command).await {
            Ok(steps) => Some(steps),
            Err(e) if e.kind.is_transient() => {
                tracing::warn!(command_id = %command.id, error = %e.message, "parameter references not readable now; trying again");
                None
            }
            Err(e) => {
                let detail = format!(
                    "not sent: a parameter reference cannot be read: {}",
                    e.message
                );
                fail_unsent(state, command, &plan.start, &detail, now, &name_of).await?;
                None
            }
        }
    };
    if let Some(steps) = steps {
        let start = refuse_incapable(state, command, &steps, &plan.start, now, &name_of).await?;
        // Persisted before any Run is sent: a crash in between is repaired by
        // the resend on reconnect, never by a second dispatch.
        let dispatched = state
            .store
            .mark_dispatched_many(&command.id, &start, now)
            .await?;
        for node_id in &dispatched {
            state.hub.send(
                node_id,
                ServerMessage::Run(run_message(
                    command,
                    steps.clone(),
                    node_id,
                    &state.events.key,
                )),
            );
            state.live.publish(
                &command.id,
                LiveEvent::Status {
                    node_id: node_id.clone(),
                    node_name: name_of(node_id),
                    status: operon_proto::InvocationStatus::InProgress,
                    exit_code: None,
                    detail: None,
                },
            );
        }
    }
    if let Some(status) = plan.command_status {
        state
            .store
            .set_command_status(&command.id, status, Some(now))
            .await?;
        state.live.publish(&command.id, LiveEvent::Done { status });
        state.coordination.notify(Topic::CommandStatus);
        tracing::info!(command_id = %command.id, %status, "command finished");
    }
    Ok(())
}

/// End one target without a result from its agent (the planner's endings,
/// or a send that could not be made), and say so to the live view.
async fn end_without_result(
    state: &AppState,
    command: &Command,
    node_id: &str,
    status: operon_proto::InvocationStatus,
    detail: &str,
    now: i64,
    name_of: &impl Fn(&str) -> String,
) -> Result<(), operon_store::StoreError> {
    let changed = state
        .store
        .finish_invocation_without_result(&command.id, node_id, status, detail, now)
        .await?;
    if changed {
        state.live.publish(
            &command.id,
            LiveEvent::Status {
                node_id: node_id.to_string(),
                node_name: name_of(node_id),
                status,
                exit_code: None,
                detail: Some(detail.to_string()),
            },
        );
    }
    Ok(())
}

/// The nodes of `start` whose agents can run `steps`: a desired-state step
/// goes only to agents announcing [`operon_proto::CAPABILITY_DESIRED_STATE`];
/// the others fail now, saying why, rather than receive what they would
/// not understand.
async fn refuse_incapable(
    state: &AppState,
    command: &Command,
    steps: &[operon_proto::Step],
    start: &[String],
    now: i64,
    name_of: &impl Fn(&str) -> String,
) -> Result<Vec<String>, operon_store::StoreError> {
    if !steps.iter().any(|s| s.state.is_some()) {
        return Ok(start.to_vec());
    }
    let (able, unable): (Vec<String>, Vec<String>) = start.iter().cloned().partition(|node| {
        state
            .hub
            .supports(node, operon_proto::CAPABILITY_DESIRED_STATE)
            != Some(false)
    });
    if !unable.is_empty() {
        let detail = "not sent: the agent on this node cannot apply desired-state documents (it does not announce the desired_state capability); upgrade it";
        fail_unsent(state, command, &unable, detail, now, name_of).await?;
    }
    Ok(able)
}

/// End targets that could not be sent (their parameter references cannot
/// be read by whoever asked for the command) as Failed, with why.
async fn fail_unsent(
    state: &AppState,
    command: &Command,
    node_ids: &[String],
    detail: &str,
    now: i64,
    name_of: &impl Fn(&str) -> String,
) -> Result<(), operon_store::StoreError> {
    for node_id in node_ids {
        let failed = operon_proto::InvocationStatus::Failed;
        end_without_result(state, command, node_id, failed, detail, now, name_of).await?;
    }
    state.coordination.notify(Topic::Dispatch);
    Ok(())
}
