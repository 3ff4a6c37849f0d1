//! HealService (heals) and IncidentService (incidents): the only code that
//! writes heals and acknowledges or resolves incidents.

use std::collections::HashMap;

use operon_api::heal::{Heal, HealRunView, HealSpec, Incident, IncidentDetail, TimelineEntry};
use operon_store::{HealRecord, HealRun, IncidentFilter};

use crate::access::{Principal, check_action};
use crate::coordination::Topic;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

pub fn resource(name: &str) -> String {
    format!("heal/{name}")
}

/// The actor a heal's attempts act as.
pub fn actor_name(name: &str) -> String {
    format!("heal/{name}")
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("InvalidHeal", message)
}

/// The spec as stored, typed again.
pub fn spec_of(record: &HealRecord) -> ServiceResult<HealSpec> {
    serde_json::from_value(record.spec.clone()).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            "InternalError",
            format!(
                "heal {:?} is stored in a shape this server cannot read: {e}",
                record.name
            ),
        )
    })
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Settings with their defaults.
pub struct Limits {
    pub confirm_within_ms: i64,
    pub max_runs: i64,
    pub window_ms: i64,
    pub cooldown_ms: i64,
}

pub fn limits(spec: &HealSpec) -> Limits {
    Limits {
        confirm_within_ms: spec.confirm_within.unwrap_or(300) as i64 * 1000,
        max_runs: i64::from(spec.max_runs.unwrap_or(3)),
        window_ms: spec.max_runs_window.unwrap_or(3600) as i64 * 1000,
        cooldown_ms: spec.cooldown.unwrap_or(0) as i64 * 1000,
    }
}

fn validate(spec: &HealSpec) -> ServiceResult<()> {
    let alarm_ok = !spec.alarm.is_empty()
        && spec.alarm.len() <= 64
        && spec
            .alarm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@*".contains(c));
    if !alarm_ok {
        return Err(invalid(format!(
            "alarm {:?}: an alarm name, or a pattern with * (app-errors-*)",
            spec.alarm
        )));
    }
    if let Some(secs) = spec.confirm_within
        && !(1..=86_400).contains(&secs)
    {
        return Err(invalid(format!(
            "confirm_within {secs}: seconds between 1 and a day"
        )));
    }
    if let Some(n) = spec.max_runs
        && !(1..=100).contains(&n)
    {
        return Err(invalid(format!("max_runs {n}: between 1 and 100")));
    }
    if let Some(secs) = spec.max_runs_window
        && !(60..=7 * 86_400).contains(&secs)
    {
        return Err(invalid(format!(
            "max_runs_window {secs}: seconds between 60 and a week"
        )));
    }
    if let Some(secs) = spec.cooldown
        && secs > 86_400
    {
        return Err(invalid(format!("cooldown {secs}: at most a day")));
    }
    if let Some(url) = &spec.escalate_webhook {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| invalid(format!("escalate_webhook {url:?}: {e}")))?;
        if !["http", "https"].contains(&parsed.scheme()) {
            return Err(invalid(format!("escalate_webhook {url:?}: an http(s) URL")));
        }
    }
    if let Some(input) = &spec.input
        && !input.is_object()
    {
        return Err(invalid("input: a JSON object"));
    }
    Ok(())
}

pub struct HealService<'a> {
    pub(crate) state: &'a AppState,
}

impl HealService<'_> {
    /// Create or replace a heal (`heals:Put`).
    pub async fn put(
        &self,
        principal: &Principal,
        name: &str,
        spec: HealSpec,
    ) -> ServiceResult<Heal> {
        crate::identity::service::valid_name("heal", name)?;
        check_action(&self.state.audit, principal, "heals:Put", &resource(name)).await?;
        validate(&spec)?;
        if self.state.store.workflow(&spec.workflow).await?.is_none() {
            return Err(invalid(format!(
                "workflow: no workflow named {:?}",
                spec.workflow
            )));
        }
        if let Some(role) = &spec.role {
            crate::runas::authorize_pass_role(
                &self.state.store,
                &self.state.audit,
                principal,
                role,
            )
            .await?;
        }
        let now = now_millis();
        let current = self.state.store.heal(name).await?;
        let record = HealRecord {
            name: name.to_string(),
            version: current.as_ref().map_or(1, |c| c.version + 1),
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            author: principal.name.clone(),
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        if !self
            .state
            .store
            .put_heal(&record, current.as_ref().map(|c| c.version))
            .await?
        {
            return Err(ServiceError::conflict(
                "ConcurrentModification",
                format!("heal {name:?} was changed at the same time; try again"),
            ));
        }
        self.state.coordination.notify(Topic::Heals);
        self.view(&record).await
    }

    pub async fn list(&self, principal: &Principal) -> ServiceResult<Vec<Heal>> {
        check_action(&self.state.audit, principal, "heals:Get", "heal/*").await?;
        let mut out = Vec::new();
        for record in self.state.store.list_heals().await? {
            if principal
                .decide(&principal.request("heals:Get", &resource(&record.name)))
                .is_ok()
            {
                out.push(self.view(&record).await?);
            }
        }
        Ok(out)
    }

    pub async fn get(&self, principal: &Principal, name: &str) -> ServiceResult<Heal> {
        let record = self.authorized(principal, "heals:Get", name).await?;
        self.view(&record).await
    }

    /// Delete a heal (`heals:Delete`): no new attempts; running ones finish.
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<Heal> {
        let record = self.authorized(principal, "heals:Delete", name).await?;
        let view = self.view(&record).await?;
        self.state.store.delete_heal(name).await?;
        self.state.coordination.notify(Topic::Heals);
        Ok(view)
    }

    async fn authorized(
        &self,
        principal: &Principal,
        action: &str,
        name: &str,
    ) -> ServiceResult<HealRecord> {
        check_action(&self.state.audit, principal, action, &resource(name)).await?;
        self.state.store.heal(name).await?.ok_or_else(|| {
            ServiceError::not_found("UnknownHeal", format!("no heal named {name:?}"))
        })
    }

    async fn view(&self, record: &HealRecord) -> ServiceResult<Heal> {
        let names = node_names(self.state).await?;
        let mut runs: Vec<HealRunView> = self
            .state
            .store
            .heal_runs(Some(&record.name), None)
            .await?
            .into_iter()
            .map(|r| run_view(r, &names))
            .collect();
        runs.reverse();
        runs.truncate(20);
        Ok(Heal {
            name: record.name.clone(),
            version: record.version,
            spec: spec_of(record)?,
            author: record.author.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            runs,
        })
    }
}

pub async fn node_names(state: &AppState) -> ServiceResult<HashMap<String, String>> {
    Ok(state
        .store
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect())
}

pub fn run_view(run: HealRun, names: &HashMap<String, String>) -> HealRunView {
    HealRunView {
        node_name: names.get(&run.node_id).cloned(),
        id: run.id,
        heal: run.heal,
        incident_id: run.incident_id,
        alarm: run.alarm,
        node_id: run.node_id,
        attempt: run.attempt,
        status: run.status,
        execution_id: run.execution_id,
        started_at: run.started_at,
        finished_at: run.finished_at,
        detail: run.detail,
    }
}

fn incident_view(incident: operon_store::Incident, names: &HashMap<String, String>) -> Incident {
    Incident {
        node_name: names.get(&incident.node_id).cloned(),
        id: incident.id,
        alarm: incident.alarm,
        node_id: incident.node_id,
        status: incident.status,
        reason: incident.reason,
        opened_at: incident.opened_at,
        recovered_at: incident.recovered_at,
        escalated_at: incident.escalated_at,
        acknowledged_by: incident.acknowledged_by,
        acknowledged_at: incident.acknowledged_at,
        resolved_by: incident.resolved_by,
        resolved_at: incident.resolved_at,
    }
}

/// Which incidents a caller asks for.
#[derive(Debug, Default)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub alarm: Option<String>,
    pub node: Option<String>,
    pub since: Option<i64>,
    pub limit: Option<i64>,
}

pub struct IncidentService<'a> {
    pub(crate) state: &'a AppState,
}

impl IncidentService<'_> {
    pub async fn list(
        &self,
        principal: &Principal,
        query: IncidentQuery,
    ) -> ServiceResult<Vec<Incident>> {
        check_action(&self.state.audit, principal, "incidents:Get", "incident/*").await?;
        if let Some(s) = &query.status
            && !["open", "recovered", "resolved"].contains(&s.as_str())
        {
            return Err(ServiceError::invalid(
                "InvalidQuery",
                format!("status {s:?}: open, recovered or resolved"),
            ));
        }
        let names = node_names(self.state).await?;
        let node_id = match &query.node {
            Some(key) => Some(
                names
                    .iter()
                    .find(|(id, name)| *id == key || *name == key)
                    .map(|(id, _)| id.clone())
                    .ok_or_else(|| {
                        ServiceError::not_found("UnknownNode", format!("no node named {key:?}"))
                    })?,
            ),
            None => None,
        };
        let filter = IncidentFilter {
            status: query.status,
            alarm: query.alarm,
            node_id,
            since: query.since,
            limit: query.limit.unwrap_or(100).clamp(1, 1000),
        };
        let incidents = self.state.store.incidents(&filter).await?;
        Ok(incidents
            .into_iter()
            .filter(|i| {
                principal
                    .decide(&principal.request("incidents:Get", &format!("incident/{}", i.id)))
                    .is_ok()
            })
            .map(|i| incident_view(i, &names))
            .collect())
    }

    pub async fn get(&self, principal: &Principal, id: &str) -> ServiceResult<IncidentDetail> {
        check_action(
            &self.state.audit,
            principal,
            "incidents:Get",
            &format!("incident/{id}"),
        )
        .await?;
        self.detail(id).await
    }

    /// Acknowledge (`incidents:Acknowledge`): the first person is kept.
    pub async fn acknowledge(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ServiceResult<IncidentDetail> {
        check_action(
            &self.state.audit,
            principal,
            "incidents:Acknowledge",
            &format!("incident/{id}"),
        )
        .await?;
        self.state
            .store
            .acknowledge_incident(id, &principal.name, now_millis())
            .await?
            .ok_or_else(|| unknown_incident(id))?;
        let detail = self.detail(id).await?;
        super::runner::put_event(
            self.state,
            "Incident Acknowledged",
            &detail.incident,
            serde_json::json!({"by": principal.name}),
        )
        .await;
        Ok(detail)
    }

    /// Resolve (`incidents:Resolve`), with an optional note.
    pub async fn resolve(
        &self,
        principal: &Principal,
        id: &str,
        note: Option<&str>,
    ) -> ServiceResult<IncidentDetail> {
        check_action(
            &self.state.audit,
            principal,
            "incidents:Resolve",
            &format!("incident/{id}"),
        )
        .await?;
        if note.is_some_and(|n| n.len() > 4096) {
            return Err(ServiceError::invalid(
                "InvalidNote",
                "note: at most 4096 characters",
            ));
        }
        self.state
            .store
            .resolve_incident(id, &principal.name, note, now_millis())
            .await?
            .ok_or_else(|| unknown_incident(id))?;
        let detail = self.detail(id).await?;
        super::runner::put_event(
            self.state,
            "Incident Resolved",
            &detail.incident,
            serde_json::json!({"by": principal.name, "note": note}),
        )
        .await;
        Ok(detail)
    }

    async fn detail(&self, id: &str) -> ServiceResult<IncidentDetail> {
        let incident = self
            .state
            .store
            .incident(id)
            .await?
            .ok_or_else(|| unknown_incident(id))?;
        let names = node_names(self.state).await?;
        let timeline = self
            .state
            .store
            .incident_events(id)
            .await?
            .into_iter()
            .map(|e| TimelineEntry {
                at: e.at,
                kind: e.kind,
                message: e.message,
                data: e.data,
            })
            .collect();
        let heal_runs = self
            .state
            .store
            .heal_runs(None, Some(id))
            .await?
            .into_iter()
            .map(|r| run_view(r, &names))
            .collect();
        Ok(IncidentDetail {
            incident: incident_view(incident, &names),
            timeline,
            heal_runs,
        })
    }
}

fn unknown_incident(id: &str) -> ServiceError {
    ServiceError::not_found("UnknownIncident", format!("no incident {id:?}"))
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn alarm_patterns() {
        let cases = [
            ("app-errors-*", "app-errors-web", true),
            ("app-errors-*", "app-errors-", true),
            ("app-errors-*", "app-error", false),
            ("*-errors", "app-errors", true),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXcYYb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a", "a", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_matches(pattern, name), expected, "{pattern} {name}");
        }
    }
}
