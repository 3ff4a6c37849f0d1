//! The typed API of workflows, executions, approvals and task tokens
//! (`operon_api::workflows`), over the untyped calls of [`Client`].

use anyhow::Result;
use operon_api::workflows::{
    Approval, CreateWorkflow, Decision, Execution, ExecutionHistory, StartExecution, StopExecution,
    TaskAccepted, TaskAnswer, UpdateWorkflow, Workflow, WorkflowDeleted, WorkflowSummary,
    WorkflowVersion,
};

use super::client::{Answer, Client, to_json};

/// How a task token is answered: the path of `POST /v1/tasks/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVerb {
    Success,
    Failure,
    Heartbeat,
}

impl TaskVerb {
    fn path(self) -> &'static str {
        match self {
            TaskVerb::Success => "/v1/tasks/send-success",
            TaskVerb::Failure => "/v1/tasks/send-failure",
            TaskVerb::Heartbeat => "/v1/tasks/send-heartbeat",
        }
    }
}

impl Client {
    pub async fn create_workflow(&self, body: &CreateWorkflow) -> Result<Answer<WorkflowVersion>> {
        Answer::read(self.post("/v1/workflows", &to_json(body)?).await?)
    }

    pub async fn update_workflow(
        &self,
        name: &str,
        body: &UpdateWorkflow,
    ) -> Result<Answer<WorkflowVersion>> {
        let path = format!("/v1/workflows/{name}");
        Answer::read(self.put(&path, &to_json(body)?).await?)
    }

    pub async fn workflows(&self) -> Result<Answer<Vec<WorkflowSummary>>> {
        Answer::read(self.get("/v1/workflows").await?)
    }

    pub async fn workflow(&self, name: &str) -> Result<Answer<Workflow>> {
        Answer::read(self.get(&format!("/v1/workflows/{name}")).await?)
    }

    pub async fn delete_workflow(&self, name: &str) -> Result<Answer<WorkflowDeleted>> {
        Answer::read(self.delete(&format!("/v1/workflows/{name}")).await?)
    }

    pub async fn start_execution(
        &self,
        workflow: &str,
        body: &StartExecution,
    ) -> Result<Answer<Execution>> {
        let path = format!("/v1/workflows/{workflow}/executions");
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }

    /// Executions, newest first, at most `limit`, of `status` and of
    /// `workflow` when given.
    pub async fn executions(
        &self,
        status: Option<&str>,
        workflow: Option<&str>,
        limit: i64,
    ) -> Result<Answer<Vec<Execution>>> {
        let mut path = format!("/v1/executions?limit={limit}");
        if let Some(s) = status {
            path.push_str(&format!("&status={s}"));
        }
        if let Some(w) = workflow {
            path.push_str(&format!("&workflow={w}"));
        }
        Answer::read(self.get(&path).await?)
    }

    pub async fn execution(&self, id: &str) -> Result<Answer<Execution>> {
        Answer::read(self.get(&format!("/v1/executions/{id}")).await?)
    }

    /// An execution's history events, after event `after` when given.
    pub async fn execution_history(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<Answer<ExecutionHistory>> {
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        Answer::read(
            self.get(&format!("/v1/executions/{id}/history{query}"))
                .await?,
        )
    }

    pub async fn stop_execution(
        &self,
        id: &str,
        body: &StopExecution,
    ) -> Result<Answer<Execution>> {
        let path = format!("/v1/executions/{id}/stop");
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }

    pub async fn redrive_execution(&self, id: &str) -> Result<Answer<Execution>> {
        let path = format!("/v1/executions/{id}/redrive");
        Answer::read(self.post(&path, &serde_json::json!({})).await?)
    }

    /// Approvals of `status` (all when `None`).
    pub async fn approvals(&self, status: Option<&str>) -> Result<Answer<Vec<Approval>>> {
        let query = status.map(|s| format!("?status={s}")).unwrap_or_default();
        Answer::read(self.get(&format!("/v1/approvals{query}")).await?)
    }

    /// Approve (`approve`) or reject an approval.
    pub async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        body: &Decision,
    ) -> Result<Answer<Approval>> {
        let verb = if approve { "approve" } else { "reject" };
        let path = format!("/v1/approvals/{id}/{verb}");
        Answer::read(self.post(&path, &to_json(body)?).await?)
    }

    pub async fn answer_task(
        &self,
        verb: TaskVerb,
        body: &TaskAnswer,
    ) -> Result<Answer<TaskAccepted>> {
        Answer::read(self.post(verb.path(), &to_json(body)?).await?)
    }
}
