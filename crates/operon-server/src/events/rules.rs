//! The rules service: the only code that puts, deletes, enables, disables
//! and tests rules, and creates and deletes buses. Typed in and out,
//! [`ServiceError`] on failure; the HTTP edge is `events/http.rs`.
//!
//! A rule is checked whole before anything is written: its name, `rules:Put`
//! on `rule/NAME`, its bus, a pattern *or* a schedule (with an optional time
//! zone), at most [`MAX_TARGETS`] targets with distinct ids, each target
//! authorized ([`RuleService::authorize_target`]) and prepared (its secret
//! sealed; a sealed secret is never accepted back). The rule records its
//! author, whose authority (or its targets' roles) its effects use later.

use std::sync::Arc;

use operon_pattern::{Matcher, Pattern};
use operon_store::{Rule, Store};
use serde_json::{Value, json};

use super::targets::{self, TargetSpec};
use super::{CompiledRule, EventBus, check_name, envelope};
use crate::access::{Principal, check_action};
use crate::audit::AuditLog;
use crate::coordination::{Coordination, Topic};
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// Most targets of one rule (EventBridge's limit).
pub const MAX_TARGETS: usize = 5;

/// A rule as given to [`RuleService::put`].
#[derive(Debug, Clone)]
pub struct PutRule {
    pub name: String,
    /// `default` when absent.
    pub bus: Option<String>,
    pub description: Option<String>,
    /// An event pattern as JSON text.
    pub pattern: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub enabled: bool,
    pub targets: Vec<TargetSpec>,
}

/// What [`RuleService::test`] finds: whether the rule matches the event and
/// what each target would receive.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub matches: bool,
    pub targets: Vec<TargetTrial>,
}

#[derive(Debug, Clone)]
pub struct TargetTrial {
    pub id: String,
    /// The target's input for this event; `None` when its InputPath finds nothing.
    pub input: Option<String>,
    /// Whether the event would be delivered to it.
    pub delivered: bool,
}

/// The rules and buses of the event bus.
pub struct RuleService<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditLog,
    pub(crate) events: &'a EventBus,
    /// Rule and bus changes are announced on `Topic::Rules` (the scheduler
    /// looks again; other processes reload their cache).
    pub(crate) coordination: &'a Coordination,
}

impl RuleService<'_> {
    async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
    ) -> ServiceResult<()> {
        check_action(self.audit, principal, action, resource).await
    }

    /// Check that `principal` may put a rule named `name` (the name's
    /// grammar, then `rules:Put`): what [`RuleService::put`] checks first.
    pub async fn authorize_put(&self, principal: &Principal, name: &str) -> ServiceResult<()> {
        check_name("rule", name)?;
        self.authorize(principal, "rules:Put", &format!("rule/{name}"))
            .await
    }

    /// Create or replace a rule, authored by `principal`, and make it live.
    pub async fn put(
        &self,
        principal: &Principal,
        put: PutRule,
    ) -> ServiceResult<Arc<CompiledRule>> {
        let name = put.name;
        self.authorize_put(principal, &name).await?;
        let bus = put.bus.unwrap_or_else(|| envelope::DEFAULT_BUS.to_string());
        if !self.events.bus_exists(&bus) {
            return Err(ServiceError::invalid(
                "NoSuchBus",
                format!("bus {bus} does not exist"),
            ));
        }
        match (&put.pattern, &put.schedule) {
            (None, None) => {
                return Err(ServiceError::invalid(
                    "NoPatternOrSchedule",
                    "a rule needs an event pattern or a schedule expression",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ServiceError::invalid(
                    "PatternAndSchedule",
                    "give an event pattern or a schedule expression, not both",
                ));
            }
            _ => {}
        }
        if let Some(text) = &put.pattern {
            Pattern::parse(text)
                .map_err(|e| ServiceError::invalid("InvalidPattern", e.to_string()))?;
        }
        if let Some(expr) = &put.schedule {
            super::schedule::check(expr, put.timezone.as_deref())
                .map_err(|e| ServiceError::invalid("InvalidSchedule", e))?;
        } else if put.timezone.is_some() {
            return Err(ServiceError::invalid(
                "TimezoneWithoutSchedule",
                "a time zone applies only to a schedule",
            ));
        }
        if put.targets.len() > MAX_TARGETS {
            return Err(ServiceError::invalid(
                "TooManyTargets",
                format!(
                    "a rule has at most {MAX_TARGETS} targets, got {}",
                    put.targets.len()
                ),
            ));
        }
        let mut stored_targets: Vec<TargetSpec> = Vec::new();
        for (i, spec) in put.targets.into_iter().enumerate() {
            if stored_targets.iter().any(|t| t.id == spec.id) {
                return Err(ServiceError::invalid(
                    "DuplicateTargetId",
                    format!("Targets[{i}]: duplicate Id {}", spec.id),
                ));
            }
            self.authorize_target(principal, &spec).await?;
            let (stored, _) = targets::prepare(spec, &self.events.key).map_err(|e| {
                ServiceError::invalid("InvalidTarget", format!("Targets[{i}]: {e}"))
            })?;
            stored_targets.push(stored);
        }
        let now = now_millis();
        let existing = self.store.rule(&name).await?;
        let rule = Rule {
            name,
            bus,
            description: put.description,
            pattern: put.pattern,
            schedule: put.schedule,
            timezone: put.timezone,
            enabled: put.enabled,
            targets: json!(stored_targets),
            created_at: existing.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
            last_fired_at: existing.as_ref().and_then(|r| r.last_fired_at),
            author: Some(principal.name.clone()),
        };
        let compiled = self
            .events
            .compile_rule(rule.clone())
            .map_err(|e| ServiceError::invalid("InvalidTarget", e))?;
        self.store.put_rule(&rule).await?;
        let installed = self.events.install(compiled);
        self.coordination.notify(Topic::Rules);
        Ok(installed)
    }

    /// A rule's targets act later, as a role or as the rule's author, and
    /// each effect is authorized when it happens (see [`crate::runas`]).
    /// When the rule is put, naming a role needs `roles:Pass` on it; a
    /// target without a role is checked now for what can be checked
    /// without the event (starting its workflow, putting on its bus), so
    /// mistakes show at once. Commands are checked per node at each
    /// delivery, with each node's tags.
    async fn authorize_target(
        &self,
        principal: &Principal,
        spec: &TargetSpec,
    ) -> ServiceResult<()> {
        if let Some(reference) = &spec.role_arn {
            let role = crate::runas::role_name(reference).map_err(|e| {
                ServiceError::invalid("InvalidRole", format!("target {}: RoleArn: {e}", spec.id))
            })?;
            return crate::runas::authorize_pass_role(self.store, self.audit, principal, &role)
                .await;
        }
        let named = |value: &Option<String>| value.clone().unwrap_or_default();
        match spec.kind.as_str() {
            "workflow" => {
                let resource = format!("workflow/{}", named(&spec.workflow));
                self.authorize(principal, "workflows:Start", &resource)
                    .await
            }
            "bus" => {
                let resource = format!("bus/{}", named(&spec.bus));
                self.authorize(principal, "events:Put", &resource).await
            }
            _ => Ok(()),
        }
    }

    /// The live rule of that name.
    pub fn get(&self, name: &str) -> ServiceResult<Arc<CompiledRule>> {
        self.events
            .rule(name)
            .ok_or_else(|| ServiceError::not_found("NoSuchRule", format!("no rule named {name}")))
    }

    /// Every rule, by name.
    pub fn list(&self) -> Vec<Arc<CompiledRule>> {
        let mut rules = self.events.rules();
        rules.sort_by(|a, b| a.rule.name.cmp(&b.rule.name));
        rules
    }

    /// Delete a rule (authorized by the catalogue: `rules:Delete` on `rule/NAME`).
    pub async fn delete(&self, name: &str) -> ServiceResult<()> {
        if !self.store.delete_rule(name).await? {
            return Err(ServiceError::not_found(
                "NoSuchRule",
                format!("no rule named {name}"),
            ));
        }
        self.events.uninstall(name);
        self.coordination.notify(Topic::Rules);
        Ok(())
    }

    /// Enable or disable a rule (authorized by the catalogue:
    /// `rules:Enable` / `rules:Disable` on `rule/NAME`).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> ServiceResult<Arc<CompiledRule>> {
        let current = self.get(name)?;
        self.store
            .set_rule_enabled(name, enabled, now_millis())
            .await?;
        let mut rule = current.rule.clone();
        rule.enabled = enabled;
        let compiled = self
            .events
            .compile_rule(rule)
            .map_err(|e| ServiceError::invalid("InvalidTarget", e))?;
        let installed = self.events.install(compiled);
        self.coordination.notify(Topic::Rules);
        Ok(installed)
    }

    /// Whether the rule matches `event`, and what each target would receive.
    pub fn test(&self, name: &str, event: &Value) -> ServiceResult<RuleTest> {
        let rule = self.get(name)?;
        let invalid_event = |e: String| ServiceError::invalid("InvalidEvent", e);
        let text = event.to_string();
        operon_pattern::validate_event_envelope(&text).map_err(|e| invalid_event(e.to_string()))?;
        let matches = match rule.rule.pattern.as_deref() {
            None => false,
            Some(pattern) => {
                let mut matcher = Matcher::new();
                matcher
                    .add_json(name.to_string(), pattern)
                    .map_err(|e| ServiceError::invalid("InvalidPattern", e.to_string()))?;
                !matcher
                    .matches(&text)
                    .map_err(|e| invalid_event(e.to_string()))?
                    .is_empty()
            }
        };
        let context = super::delivery::context(&rule, now_millis());
        let targets = rule
            .targets
            .iter()
            .map(|t| {
                let input = t.payload(event, &context);
                TargetTrial {
                    id: t.id.clone(),
                    delivered: matches && input.is_some(),
                    input,
                }
            })
            .collect();
        Ok(RuleTest { matches, targets })
    }

    /// Create a bus (`buses:Create` on `bus/NAME`).
    pub async fn create_bus(&self, principal: &Principal, name: &str) -> ServiceResult<()> {
        check_name("bus", name)?;
        self.authorize(principal, "buses:Create", &format!("bus/{name}"))
            .await?;
        if !self.store.create_bus(name, now_millis()).await? {
            return Err(ServiceError::conflict(
                "BusExists",
                format!("bus {name} already exists"),
            ));
        }
        self.events.add_bus(name);
        self.coordination.notify(Topic::Rules);
        Ok(())
    }

    /// Delete a bus without rules (authorized by the catalogue). The
    /// default bus stays.
    pub async fn delete_bus(&self, name: &str) -> ServiceResult<()> {
        if name == envelope::DEFAULT_BUS {
            return Err(ServiceError::invalid(
                "DefaultBus",
                "the default bus cannot be deleted",
            ));
        }
        match self.store.delete_bus(name).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ServiceError::not_found(
                    "NoSuchBus",
                    format!("no bus named {name}"),
                ));
            }
            Err(operon_store::StoreError::Conflict(message)) => {
                return Err(ServiceError::conflict("BusInUse", message));
            }
            Err(e) => return Err(e.into()),
        }
        self.events.remove_bus(name);
        self.coordination.notify(Topic::Rules);
        Ok(())
    }
}

/// A rule as shown: sealed secrets replaced by `HasSecret`, the pattern as JSON.
pub fn view(rule: &CompiledRule) -> operon_api::events::Rule {
    let stored = &rule.rule;
    let mut targets = match &stored.targets {
        Value::Array(targets) => targets.clone(),
        _ => Vec::new(),
    };
    // Sealed secrets are write-only: say that there is one, never show it.
    for target in targets.iter_mut().filter_map(Value::as_object_mut) {
        if target.remove("SecretSealed").is_some() {
            target.insert("HasSecret".into(), Value::Bool(true));
        }
    }
    operon_api::events::Rule {
        name: stored.name.clone(),
        bus: stored.bus.clone(),
        description: stored.description.clone(),
        pattern: stored
            .pattern
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
        schedule: stored.schedule.clone(),
        timezone: stored.timezone.clone(),
        enabled: stored.enabled,
        targets,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        last_fired_at: stored.last_fired_at,
        author: stored.author.clone(),
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
