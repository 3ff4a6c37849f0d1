//! `/v1/workflows`, `/v1/executions`, `/v1/approvals`, `/v1/tasks/*`:
//! durable workflows (Amazon States Language state machines), their
//! executions, human approvals and task tokens.
//!
//! The Step Functions-shaped bodies keep AWS's camelCase (`executionId`,
//! `startedAt`, `taskToken`); approvals are Operon's own, snake_case.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// An execution's status.
pub const EXECUTION_STATUSES: [&str; 5] =
    ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];

/// `POST /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateWorkflow {
    /// 1 to 80 of letters, digits, '-', '_'
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,80}$")]
    pub name: String,
    /// An Amazon States Language state machine, as an object or as its JSON
    /// text (400 if invalid)
    #[schema(value_type = Object)]
    pub definition: Value,
    #[doc = "The role its executions act as (NAME, role/NAME or an ARN ending in :role/NAME); \
             needs roles:Pass on it. Without one they act as the version's author. On update, \
             omitted keeps the current role and \"\" removes it."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `PUT /v1/workflows/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateWorkflow {
    /// An Amazon States Language state machine, as an object or as its JSON
    /// text (400 if invalid)
    #[schema(value_type = Object)]
    pub definition: Value,
    #[doc = "The role its executions act as (NAME, role/NAME or an ARN ending in :role/NAME); \
             needs roles:Pass on it. Without one they act as the version's author. On update, \
             omitted keeps the current role and \"\" removes it."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The version a create or an update made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowVersion {
    pub name: String,
    pub version: i64,
}

/// A workflow at its latest version, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    pub name: String,
    pub version: i64,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    pub updated_at: i64,
    /// The role the latest version's executions act as, if it names one.
    #[serde(default)]
    #[schema(required = true)]
    pub role: Option<String>,
    /// Who made the latest version.
    pub created_by: String,
}

/// A workflow and its latest definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    pub name: String,
    pub version: i64,
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    pub updated_at: i64,
    /// The role the latest version's executions act as, if it names one.
    #[serde(default)]
    #[schema(required = true)]
    pub role: Option<String>,
    /// Who made the latest version.
    pub created_by: String,
}

/// A deleted workflow: the shape every deletion answers.
pub use crate::identity::Deleted as WorkflowDeleted;

/// `POST /v1/workflows/{name}/executions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StartExecution {
    /// The execution input; {} when absent or null
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    #[doc = "Idempotency key: starting the same name again answers the existing execution"]
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/executions/{id}/stop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StopExecution {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

/// An execution of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub execution_id: String,
    pub workflow: String,
    pub version: i64,
    pub name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    #[schema(value_type = Object)]
    pub input: Value,
    #[serde(default)]
    #[schema(value_type = Object, required = true)]
    pub output: Option<Value>,
    #[serde(default)]
    #[schema(required = true)]
    pub error: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub cause: Option<String>,
    pub started_by: String,
    /// Unix time in milliseconds
    pub started_at: i64,
    /// Unix time in milliseconds
    #[serde(default)]
    #[schema(required = true)]
    pub stopped_at: Option<i64>,
    pub redrive_count: i64,
    /// The task token of the parent execution's task that started it.
    #[serde(default)]
    #[schema(required = true)]
    pub parent_task_token: Option<String>,
    /// Present (true) when a start named an execution that already
    /// existed with the same input: that execution is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub already_existed: Option<bool>,
}

/// A page of an execution's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionHistory {
    pub execution_id: String,
    /// The execution's status.
    pub status: String,
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// A human approval step of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    pub id: String,
    pub execution_id: String,
    pub token: String,
    pub state: String,
    pub message: String,
    pub approvers: Vec<String>,
    /// Pending, Approved, Rejected or Expired.
    pub status: String,
    #[serde(default)]
    #[schema(required = true)]
    pub decided_by: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub comment: Option<String>,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    #[serde(default)]
    #[schema(required = true)]
    pub decided_at: Option<i64>,
}

/// `POST /v1/approvals/{id}/approve|reject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /v1/tasks/send-success|send-failure|send-heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskAnswer {
    #[serde(rename = "taskToken")]
    pub task_token: String,
    /// send-success: the task's output ({} when absent)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub output: Option<Value>,
    /// send-failure: the error name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// send-failure: the cause
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A task answer the execution took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskAccepted {
    pub execution_id: String,
    pub accepted: bool,
}

/// An Amazon States Language state machine, as the example bodies give it.
fn example_definition() -> Value {
    json!({
        "Comment": "Ask, then finish",
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "operon:approval",
                "Parameters": {"Message": "Deploy?"},
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    })
}

/// What an optional body's operation says about it.
const OPTIONAL_BODY: &str = "The body is optional; when sent, content-type must be application/json (415) and the \
     JSON valid (400/422)";

pub(crate) fn describe(api: &mut Api) {
    let any = || json!({"description": "any JSON value"});
    let status = || json!({"enum": EXECUTION_STATUSES});
    let definition = || {
        json!({
            "type": ["object", "string"],
            "description": "An Amazon States Language state machine, as an object or as its \
                JSON text (400 if invalid)",
        })
    };
    let optional = "Optional: the body may be left out (then send no content-type)";
    api.refine("CreateWorkflow/properties/definition", definition());
    api.refine("UpdateWorkflow/properties/definition", definition());
    api.refine("Workflow/properties/definition", json!({"type": "object"}));
    api.refine(
        "StartExecution/properties/input",
        json!({"description": "The execution input; {} when absent or null"}),
    );
    api.refine("StopExecution/description", json!(optional));
    api.refine("Decision/description", json!(optional));
    api.refine("Execution/properties/status", status());
    api.refine("Execution/properties/input", any());
    api.refine("Execution/properties/output", any());
    api.refine("ExecutionHistory/properties/status", status());
    api.refine(
        "ExecutionHistory/properties/events",
        json!({"type": "array", "items": {
            "type": "object",
            "description": "A history event: id, type, timestamp_millis and the type's fields",
        }}),
    );
    api.refine(
        "Approval/properties/status",
        json!({"enum": ["Pending", "Approved", "Rejected", "Expired"]}),
    );
    api.refine(
        "TaskAnswer/properties/output",
        json!({"description": "send-success: the task's output ({} when absent)"}),
    );
    api.refine("TaskAccepted/properties/accepted", json!({"const": true}));
    api.refine("Deleted/properties/deleted", json!({"const": true}));
    workflows(api);
    executions(api);
    approvals(api);
    tasks(api);
}

fn workflows(api: &mut Api) {
    const TAG: &str = "workflows";
    api.op(Op::post(
        "/v1/workflows",
        TAG,
        "Create a workflow (ASL state machine), version 1",
    )
    .body::<CreateWorkflow>()
    .example(json!({"name": "deploy", "definition": example_definition()}))
    .may(&[409])
    .ok::<WorkflowVersion>());
    api.op(Op::get("/v1/workflows", TAG, "List workflows").ok_list::<WorkflowSummary>());
    api.op(Op::get(
        "/v1/workflows/{name}",
        TAG,
        "Describe a workflow and its latest definition",
    )
    .ok::<Workflow>());
    api.op(Op::put(
        "/v1/workflows/{name}",
        TAG,
        "Add a version to a workflow (running executions keep theirs)",
    )
    .body::<UpdateWorkflow>()
    .example(json!({"definition": example_definition()}))
    .ok::<WorkflowVersion>());
    api.op(Op::delete(
        "/v1/workflows/{name}",
        TAG,
        "Delete a workflow (refused while executions run)",
    )
    .may(&[409])
    .ok::<WorkflowDeleted>());
    api.op(Op::post(
        "/v1/workflows/{name}/executions",
        TAG,
        "Start an execution; the name is an idempotency key",
    )
    .body::<StartExecution>()
    .example(json!({"input": {"version": "1.2.3"}, "name": "deploy-1-2-3"}))
    .may(&[409, 503])
    .ok::<Execution>());
}

fn executions(api: &mut Api) {
    const TAG: &str = "executions";
    let int = || json!({"type": "integer", "format": "int64"});
    api.op(
        Op::get("/v1/executions", TAG, "List executions, newest first")
            .query(
                "status",
                json!({"type": "string", "enum": EXECUTION_STATUSES}),
                "Case-insensitive; 400 for another value",
            )
            .query(
                "workflow",
                json!({"type": "string"}),
                "Only executions of this workflow",
            )
            .query(
                "limit",
                int(),
                "Newest first; clamped to 1..10000, default 100",
            )
            .ok_list::<Execution>(),
    );
    api.op(Op::get("/v1/executions/{id}", TAG, "Describe an execution").ok::<Execution>());
    api.op(Op::get(
        "/v1/executions/{id}/history",
        TAG,
        "History events of an execution (after a sequence number)",
    )
    .query("after", int(), "Only events after this event id")
    .query("limit", int(), "Clamped to 1..10000, default 1000")
    .ok::<ExecutionHistory>());
    api.op(Op::post(
        "/v1/executions/{id}/stop",
        TAG,
        "Stop (abort) a running execution",
    )
    .optional_body::<StopExecution>(OPTIONAL_BODY)
    .example(json!({"error": "Operator.Abort", "cause": "wrong version"}))
    .may(&[409, 503])
    .ok::<Execution>());
    api.op(Op::post(
        "/v1/executions/{id}/redrive",
        TAG,
        "Restart a failed, timed-out or aborted execution from the state that failed",
    )
    .may(&[409, 503])
    .ok::<Execution>());
}

fn approvals(api: &mut Api) {
    const TAG: &str = "approvals";
    api.op(Op::get("/v1/approvals", TAG, "List approvals")
        .query(
            "status",
            json!({"type": "string"}),
            "Pending, Approved, Rejected or Expired",
        )
        .query(
            "limit",
            json!({"type": "integer", "format": "int64"}),
            "Clamped to 1..10000, default 100",
        )
        .ok_list::<Approval>());
    api.op(Op::get("/v1/approvals/{id}", TAG, "Describe an approval").ok::<Approval>());
    for (path, summary, comment) in [
        (
            "/v1/approvals/{id}/approve",
            "Approve: the execution continues; who approved is recorded",
            "looks good",
        ),
        (
            "/v1/approvals/{id}/reject",
            "Reject: the task fails with Operon.ApprovalRejected",
            "not today",
        ),
    ] {
        api.op(Op::post(path, TAG, summary)
            .optional_body::<Decision>(OPTIONAL_BODY)
            .example(json!({"comment": comment}))
            .may(&[409, 503])
            .ok::<Approval>());
    }
}

fn tasks(api: &mut Api) {
    const TAG: &str = "tasks";
    const TOKEN: &str = "x-0000000000000000.000000000000000000000000-00000001";
    for (path, summary, example) in [
        (
            "/v1/tasks/send-success",
            "Complete a task waiting for its token",
            json!({"taskToken": TOKEN, "output": {"ok": true}}),
        ),
        (
            "/v1/tasks/send-failure",
            "Fail a task waiting for its token",
            json!({"taskToken": TOKEN, "error": "Deploy.Failed", "cause": "disk full"}),
        ),
        (
            "/v1/tasks/send-heartbeat",
            "Heartbeat for a task with HeartbeatSeconds",
            json!({"taskToken": TOKEN}),
        ),
    ] {
        api.op(Op::post(path, TAG, summary)
            .body::<TaskAnswer>()
            .example(example)
            .may(&[409, 503])
            .ok::<TaskAccepted>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_keep_step_functions_casing_and_nulls() {
        let e = Execution {
            execution_id: "x-1".into(),
            workflow: "deploy".into(),
            version: 1,
            name: "n".into(),
            status: "RUNNING".into(),
            input: json!({}),
            output: None,
            error: None,
            cause: None,
            started_by: "admin".into(),
            started_at: 5,
            stopped_at: None,
            redrive_count: 0,
            parent_task_token: None,
            already_existed: None,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"executionId":"x-1","workflow":"deploy","version":1,"name":"n","status":"RUNNING","input":{},"output":null,"error":null,"cause":null,"startedBy":"admin","startedAt":5,"stoppedAt":null,"redriveCount":0,"parentTaskToken":null}"#
        );
        let again = Execution {
            already_existed: Some(true),
            ..e
        };
        assert!(
            serde_json::to_string(&again)
                .unwrap()
                .ends_with(r#""parentTaskToken":null,"alreadyExisted":true}"#)
        );
    }

    #[test]
    fn the_document_describes_every_operation() {
        let doc = crate::openapi::document();
        let paths = &doc["paths"];
        for (path, method) in [
            ("/v1/workflows", "post"),
            ("/v1/workflows/{name}", "delete"),
            ("/v1/executions/{id}/stop", "post"),
            ("/v1/approvals/{id}/reject", "post"),
            ("/v1/tasks/send-heartbeat", "post"),
        ] {
            assert!(paths[path].get(method).is_some(), "{method} {path}");
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["TaskAccepted"]["properties"]["accepted"]["const"],
            true
        );
        assert_eq!(schemas["Deleted"]["properties"]["deleted"]["const"], true);
    }
}
