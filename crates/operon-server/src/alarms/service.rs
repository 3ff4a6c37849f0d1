//! AlarmService: the only code that writes alarms, sets their state by
//! hand, and reads them; [`transition`] is the one way a state changes.

use std::collections::HashMap;

use operon_api::alarms::{Alarm, AlarmHistoryItem, AlarmInstance, AlarmSpec, SetAlarmState};
use operon_store::{AlarmRecord, AlarmStateRow, Node};

use super::definition::{self, Definition, Kind, Scope};
use crate::access::{Principal, check_action};
use crate::commands::targets::TargetSpec;
use crate::coordination::Topic;
use crate::service::{ErrorKind, ServiceError, ServiceResult};
use crate::{AppState, now_millis};

pub const OK: &str = "OK";
pub const ALARM: &str = "ALARM";
pub const INSUFFICIENT_DATA: &str = "INSUFFICIENT_DATA";

pub fn resource(name: &str) -> String {
    format!("alarm/{name}")
}

/// The actor an alarm's evaluation acts as.
pub fn actor_name(name: &str) -> String {
    format!("alarm/{name}")
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("InvalidAlarm", message)
}

fn unknown(name: &str) -> ServiceError {
    ServiceError::not_found("UnknownAlarm", format!("no alarm named {name:?}"))
}

/// The spec as stored, typed again.
pub fn spec_of(record: &AlarmRecord) -> ServiceResult<AlarmSpec> {
    serde_json::from_value(record.spec.clone()).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            "InternalError",
            format!(
                "alarm {:?} is stored in a shape this server cannot read: {e}",
                record.name
            ),
        )
    })
}

/// The spec as stored, checked.
pub fn definition_of(record: &AlarmRecord) -> ServiceResult<Definition> {
    definition::parse(&spec_of(record)?).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            "InternalError",
            format!("alarm {:?} no longer checks: {e}", record.name),
        )
    })
}

/// One state for an alarm from its instances: ALARM if any is, OK if all
/// are (and there is one), INSUFFICIENT_DATA otherwise.
pub fn aggregate_state<'a>(states: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut any = false;
    let mut all_ok = true;
    for state in states {
        any = true;
        if state == ALARM {
            return ALARM;
        }
        all_ok &= state == OK;
    }
    if any && all_ok { OK } else { INSUFFICIENT_DATA }
}

pub struct AlarmService<'a> {
    pub(crate) state: &'a AppState,
}

impl AlarmService<'_> {
    /// Create or replace an alarm (`alarms:Put`). Its instances keep their
    /// states; the next evaluation decides again.
    pub async fn put(
        &self,
        principal: &Principal,
        name: &str,
        spec: AlarmSpec,
    ) -> ServiceResult<Alarm> {
        crate::identity::service::valid_name("alarm", name)?;
        check_action(&self.state.audit, principal, "alarms:Put", &resource(name)).await?;
        let definition = definition::parse(&spec).map_err(invalid)?;
        self.validate(principal, name, &spec, &definition).await?;
        let now = now_millis();
        let current = self.state.store.alarm(name).await?;
        let record = AlarmRecord {
            name: name.to_string(),
            version: current.as_ref().map_or(1, |c| c.version + 1),
            spec: serde_json::to_value(&spec).unwrap_or_default(),
            author: principal.name.clone(),
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        let expected = current.as_ref().map(|c| c.version);
        if !self.state.store.put_alarm(&record, expected).await? {
            return Err(ServiceError::conflict(
                "ConcurrentModification",
                format!("alarm {name:?} was changed at the same time; try again"),
            ));
        }
        self.state.coordination.notify(Topic::Alarms);
        self.view(&record).await
    }

    async fn validate(
        &self,
        principal: &Principal,
        name: &str,
        spec: &AlarmSpec,
        definition: &Definition,
    ) -> ServiceResult<()> {
        match &definition.scope {
            Scope::Node(node) => {
                self.find_node(node).await?;
            }
            Scope::Targets(targets) => {
                TargetSpec::from_strings(&[], targets).map_err(|e| {
                    invalid(format!(
                        "targets: {}",
                        crate::commands::service::target_error(e).message
                    ))
                })?;
            }
            Scope::None => {}
        }
        if let Kind::Composite(rule) = &definition.kind {
            // A composite reveals the states it reads: its author must be
            // allowed to read each of them (asked first: a refusal tells
            // nothing about whether the alarm exists).
            for reference in rule.names() {
                let alarm = alarm_part(reference);
                check_action(&self.state.audit, principal, "alarms:Get", &resource(alarm)).await?;
            }
            self.check_rule(name, rule).await?;
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
        Ok(())
    }

    /// Every alarm a composite rule names exists, and no chain of composite
    /// alarms leads back to `name`.
    async fn check_rule(&self, name: &str, rule: &operon_alarms::Rule) -> ServiceResult<()> {
        let alarms: HashMap<String, AlarmRecord> = self
            .state
            .store
            .list_alarms()
            .await?
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        let mut pending: Vec<String> = rule
            .names()
            .iter()
            .map(|n| alarm_part(n).to_string())
            .collect();
        let mut seen = Vec::new();
        while let Some(next) = pending.pop() {
            if next == name {
                return Err(invalid(format!(
                    "rule: alarm {name:?} would depend on itself"
                )));
            }
            if seen.contains(&next) {
                continue;
            }
            let Some(record) = alarms.get(&next) else {
                return Err(invalid(format!("rule: no alarm named {next:?}")));
            };
            if let Ok(Definition {
                kind: Kind::Composite(inner),
                ..
            }) = definition_of(record)
            {
                pending.extend(inner.names().iter().map(|n| alarm_part(n).to_string()));
            }
            seen.push(next);
        }
        Ok(())
    }

    async fn find_node(&self, key: &str) -> ServiceResult<Node> {
        let nodes = self.state.store.list_nodes().await?;
        nodes
            .into_iter()
            .find(|n| n.id == key || n.name == key)
            .ok_or_else(|| invalid(format!("node: no node named {key:?}")))
    }

    /// List alarms (those `alarms:Get` allows), optionally in one state or
    /// under a name prefix.
    pub async fn list(
        &self,
        principal: &Principal,
        state: Option<&str>,
        prefix: Option<&str>,
    ) -> ServiceResult<Vec<Alarm>> {
        check_action(&self.state.audit, principal, "alarms:Get", "alarm/*").await?;
        if let Some(s) = state
            && ![OK, ALARM, INSUFFICIENT_DATA].contains(&s)
        {
            return Err(invalid(format!(
                "state {s:?}: OK, ALARM or INSUFFICIENT_DATA"
            )));
        }
        // States and node names read once for the whole list.
        let mut states: HashMap<String, Vec<AlarmStateRow>> = HashMap::new();
        for row in self.state.store.alarm_states(None).await? {
            states.entry(row.alarm.clone()).or_default().push(row);
        }
        let names = self.node_names().await?;
        let mut out = Vec::new();
        for record in self.state.store.list_alarms().await? {
            if prefix.is_some_and(|p| !record.name.starts_with(p)) {
                continue;
            }
            let allowed = principal
                .decide(&principal.request("alarms:Get", &resource(&record.name)))
                .is_ok();
            if !allowed {
                continue;
            }
            let rows = states.remove(&record.name).unwrap_or_default();
            let alarm = assemble(&record, rows, &names)?;
            if state.is_none_or(|s| alarm.state == s) {
                out.push(alarm);
            }
        }
        Ok(out)
    }

    pub async fn get(&self, principal: &Principal, name: &str) -> ServiceResult<Alarm> {
        let record = self.authorized(principal, "alarms:Get", name).await?;
        self.view(&record).await
    }

    /// State changes, newest first (of one node of a templated alarm if given).
    pub async fn history(
        &self,
        principal: &Principal,
        name: &str,
        node: Option<&str>,
        limit: Option<i64>,
    ) -> ServiceResult<Vec<AlarmHistoryItem>> {
        // A deleted alarm's history stays readable.
        check_action(&self.state.audit, principal, "alarms:Get", &resource(name)).await?;
        let node_id = match node {
            Some(key) => Some(self.find_node(key).await?.id),
            None => None,
        };
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let rows = self
            .state
            .store
            .alarm_history(name, node_id.as_deref(), limit)
            .await?;
        if rows.is_empty() && self.state.store.alarm(name).await?.is_none() {
            return Err(unknown(name));
        }
        let names = self.node_names().await?;
        Ok(rows
            .into_iter()
            .map(|row| AlarmHistoryItem {
                node_name: names.get(&row.node_id).cloned(),
                alarm: row.alarm,
                node_id: row.node_id,
                at: row.at,
                previous_state: row.previous.map(|p| p.state),
                state: row.state,
                reason: row.reason,
                reason_data: row.reason_data,
            })
            .collect())
    }

    /// Delete an alarm (`alarms:Delete`); its history stays.
    pub async fn delete(&self, principal: &Principal, name: &str) -> ServiceResult<Alarm> {
        let record = self.authorized(principal, "alarms:Delete", name).await?;
        let view = self.view(&record).await?;
        if !self.state.store.delete_alarm(name).await? {
            return Err(unknown(name));
        }
        self.state.coordination.notify(Topic::Alarms);
        Ok(view)
    }

    /// Set an instance's state by hand (`alarms:SetState`) until the next
    /// evaluation decides again; the change puts its event like any other.
    pub async fn set_state(
        &self,
        principal: &Principal,
        name: &str,
        request: SetAlarmState,
    ) -> ServiceResult<Alarm> {
        let record = self.authorized(principal, "alarms:SetState", name).await?;
        if ![OK, ALARM, INSUFFICIENT_DATA].contains(&request.state.as_str()) {
            return Err(invalid(format!(
                "state {:?}: OK, ALARM or INSUFFICIENT_DATA",
                request.state
            )));
        }
        if request.reason.trim().is_empty() || request.reason.len() > 1024 {
            return Err(invalid("reason: 1 to 1024 characters saying why"));
        }
        let definition = definition_of(&record)?;
        let node_id = match (&definition.scope, &request.node) {
            (Scope::Targets(_), None) => {
                return Err(invalid(
                    "node: this alarm has one state per node; name the node",
                ));
            }
            (Scope::Targets(_) | Scope::Node(_), Some(key)) => self.find_node(key).await?.id,
            (Scope::Node(key), None) => self.find_node(key).await?.id,
            (Scope::None, Some(_)) => {
                return Err(invalid("node: a composite alarm has no nodes"));
            }
            (Scope::None, None) => String::new(),
        };
        let row = AlarmStateRow {
            alarm: name.to_string(),
            node_id,
            state: request.state,
            reason: request.reason,
            reason_data: Some(serde_json::json!({"setBy": principal.name})),
            updated_at: now_millis(),
        };
        transition(self.state, &row).await?;
        self.view(&record).await
    }

    async fn authorized(
        &self,
        principal: &Principal,
        action: &str,
        name: &str,
    ) -> ServiceResult<AlarmRecord> {
        check_action(&self.state.audit, principal, action, &resource(name)).await?;
        self.state
            .store
            .alarm(name)
            .await?
            .ok_or_else(|| unknown(name))
    }

    async fn node_names(&self) -> ServiceResult<HashMap<String, String>> {
        Ok(self
            .state
            .store
            .list_nodes()
            .await?
            .into_iter()
            .map(|n| (n.id, n.name))
            .collect())
    }

    pub(crate) async fn view(&self, record: &AlarmRecord) -> ServiceResult<Alarm> {
        let rows = self.state.store.alarm_states(Some(&record.name)).await?;
        let names = if rows.iter().any(|r| !r.node_id.is_empty()) {
            self.node_names().await?
        } else {
            HashMap::new()
        };
        assemble(record, rows, &names)
    }
}

/// An alarm's view from its record, its states and the nodes' names.
fn assemble(
    record: &AlarmRecord,
    rows: Vec<AlarmStateRow>,
    names: &HashMap<String, String>,
) -> ServiceResult<Alarm> {
    let spec = spec_of(record)?;
    let state = aggregate_state(rows.iter().map(|r| r.state.as_str())).to_string();
    let instances = rows
        .into_iter()
        .map(|row| AlarmInstance {
            node_name: names.get(&row.node_id).cloned(),
            node_id: row.node_id,
            state: row.state,
            reason: row.reason,
            reason_data: row.reason_data,
            updated_at: row.updated_at,
        })
        .collect();
    Ok(Alarm {
        name: record.name.clone(),
        version: record.version,
        spec,
        author: record.author.clone(),
        created_at: record.created_at,
        updated_at: record.updated_at,
        state,
        instances,
    })
}

/// The alarm an `ALARM("name/node")` reference reads.
pub fn alarm_part(reference: &str) -> &str {
    reference
        .split_once('/')
        .map_or(reference, |(alarm, _)| alarm)
}

/// Move an instance to a new state: stored with its history row first, then
/// its event put (see [`super::events::publish_pending`]). Answers whether
/// the state changed.
pub async fn transition(state: &AppState, row: &AlarmStateRow) -> ServiceResult<bool> {
    let changed = record_transition(state, row).await?;
    if changed {
        super::events::publish_pending(state).await;
    }
    Ok(changed)
}

/// [`transition`] without putting the event yet: the evaluation loop puts
/// the events of a whole pass at once, after it.
pub async fn record_transition(state: &AppState, row: &AlarmStateRow) -> ServiceResult<bool> {
    let changed = state.store.transition_alarm(row).await?.is_some();
    if changed {
        tracing::info!(alarm = %row.alarm, node_id = %row.node_id, state = %row.state, reason = %row.reason, "alarm state changed");
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_in_alarm_if_any_node_is_and_ok_only_if_all_are() {
        assert_eq!(aggregate_state([OK, ALARM, INSUFFICIENT_DATA]), ALARM);
        assert_eq!(aggregate_state([OK, OK]), OK);
        assert_eq!(aggregate_state([OK, INSUFFICIENT_DATA]), INSUFFICIENT_DATA);
        assert_eq!(aggregate_state([]), INSUFFICIENT_DATA);
        assert_eq!(alarm_part("cpu/web-1"), "cpu");
        assert_eq!(alarm_part("cpu"), "cpu");
    }
}
