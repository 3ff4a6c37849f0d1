//! The workflow definitions service: the only code that creates, updates
//! and deletes workflows (state machines and their versions). Typed in and
//! out, [`ServiceError`] on failure; the HTTP edge is `workflows/api.rs`.
//!
//! A version records its author and the role it names, if any: its
//! executions' tasks act as that role or else as the author, authorized at
//! each effect (see [`crate::runas`]). Naming a role needs `roles:Pass`.

use operon_asl::StateMachine;
use operon_store::{Store, Workflow, WorkflowVersionInfo};
use serde_json::Value;

use crate::access::{Principal, check_action};
use crate::audit::AuditLog;
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// A new workflow, as given to [`WorkflowService::create`].
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub name: String,
    /// An Amazon States Language definition: a JSON object, or its JSON text.
    pub definition: Value,
    /// The role its executions act as (`NAME`, `role/NAME` or an ARN); without
    /// one they act as the version's author.
    pub role: Option<String>,
}

/// A new version of a workflow, as given to [`WorkflowService::update`].
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub name: String,
    pub definition: Value,
    /// A new role; `None` keeps the current version's, `""` removes it.
    pub role: Option<String>,
}

/// The version a create or an update made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub i64);

/// The workflows and their versions.
pub struct WorkflowService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
}

impl WorkflowService<'_> {
    async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        name: &str,
    ) -> ServiceResult<()> {
        check_action(self.audit, principal, action, &format!("workflow/{name}")).await
    }

    /// Create a workflow (version 1), authored by `principal`
    /// (`workflows:Create` on `workflow/NAME`).
    pub async fn create(&self, principal: &Principal, new: NewWorkflow) -> ServiceResult<Version> {
        super::validate_name("workflow", &new.name)?;
        self.authorize(principal, "workflows:Create", &new.name)
            .await?;
        let definition = parse_definition(new.definition)?;
        let role = self.authorize_role(principal, new.role.as_deref()).await?;
        let version = self
            .store
            .put_workflow(
                &new.name,
                &definition,
                role.as_deref(),
                &principal.name,
                now_millis(),
                true,
            )
            .await?
            .map_err(|message| ServiceError::conflict("WorkflowExists", message))?;
        Ok(Version(version))
    }

    /// Add a version to a workflow, authored by `principal`
    /// (`workflows:Update` on `workflow/NAME`).
    pub async fn update(&self, principal: &Principal, new: NewVersion) -> ServiceResult<Version> {
        self.authorize(principal, "workflows:Update", &new.name)
            .await?;
        let definition = parse_definition(new.definition)?;
        let role = match new.role {
            Some(role) => self.authorize_role(principal, Some(&role)).await?,
            None => self.store.workflow(&new.name).await?.and_then(|w| w.role),
        };
        let version = self
            .store
            .put_workflow(
                &new.name,
                &definition,
                role.as_deref(),
                &principal.name,
                now_millis(),
                false,
            )
            .await?
            .map_err(|message| ServiceError::not_found("NoSuchWorkflow", message))?;
        Ok(Version(version))
    }

    /// A runbook's tasks act later, as the version's role or its author, and
    /// each effect is authorized when it happens (see [`crate::runas`]).
    /// Naming a role needs `roles:Pass` on it. Returns the role's name.
    async fn authorize_role(
        &self,
        principal: &Principal,
        role: Option<&str>,
    ) -> ServiceResult<Option<String>> {
        let Some(reference) = role.filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let role = crate::runas::role_name(reference)
            .map_err(|e| ServiceError::invalid("InvalidRole", format!("role: {e}")))?;
        crate::runas::authorize_pass_role(self.store, self.audit, principal, &role).await?;
        Ok(Some(role))
    }

    /// The latest version of a live workflow.
    pub async fn get(&self, name: &str) -> ServiceResult<Workflow> {
        self.store.workflow(name).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchWorkflow", format!("no workflow named {name:?}"))
        })
    }

    /// The definition of one version, deleted workflows' included (an old
    /// execution is still shown against the version it ran).
    pub async fn definition_at(&self, name: &str, version: i64) -> ServiceResult<Value> {
        self.store
            .workflow_definition(name, version)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "NoSuchWorkflow",
                    format!("no version {version} of workflow {name:?}"),
                )
            })
    }

    /// Every version of a live workflow, newest first.
    pub async fn versions(&self, name: &str) -> ServiceResult<Vec<WorkflowVersionInfo>> {
        self.get(name).await?;
        Ok(self.store.workflow_versions(name).await?)
    }

    /// Every live workflow, at its latest version.
    pub async fn list(&self) -> ServiceResult<Vec<Workflow>> {
        Ok(self.store.list_workflows().await?)
    }

    /// Delete a workflow (authorized by the catalogue: `workflows:Delete`);
    /// refused while executions of it are running.
    pub async fn delete(&self, name: &str) -> ServiceResult<()> {
        match self.store.delete_workflow(name, now_millis()).await? {
            Ok(()) => Ok(()),
            Err(message) if message.starts_with("no workflow") => {
                Err(ServiceError::not_found("NoSuchWorkflow", message))
            }
            Err(message) => Err(ServiceError::conflict("WorkflowRunning", message)),
        }
    }
}

/// Definitions may come as a JSON object or as the JSON text of one.
fn parse_definition(definition: Value) -> ServiceResult<Value> {
    let definition = match definition {
        Value::String(text) => serde_json::from_str(&text).map_err(|e| {
            ServiceError::invalid("InvalidDefinition", format!("definition is not JSON: {e}"))
        })?,
        other => other,
    };
    StateMachine::from_value(&definition).map_err(|e| {
        ServiceError::invalid("InvalidDefinition", format!("invalid definition: {e}"))
    })?;
    Ok(definition)
}

#[cfg(test)]
#[path = "definitions_tests.rs"]
mod tests;
