//! The PutEvents and dead-letter services: the only code that accepts events
//! sent by callers and that lists, shows and redrives dead letters. Typed in
//! and out, [`ServiceError`] on failure; the HTTP edge is `events/http.rs`.
//!
//! PutEvents checks each entry on its own (a reserved source, its size and
//! fields, its bus existing: a refused entry is answered, not fatal), asks
//! `events:Put` once per bus (a refusal fails the whole call, audited), and
//! commits the call's audit record in the same transaction as the accepted
//! events.

use operon_store::{DeadLetter, Store};
use serde_json::json;

use super::EventBus;
use super::envelope::{self, PutEntry};
use crate::access::{Principal, check_action};
use crate::audit::AuditLog;
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// Most entries in one PutEvents request (AWS allows 10; a superset).
pub const MAX_ENTRIES: usize = 100;

/// Most dead letters listed or redriven by rule (or all) at once.
pub const MAX_DEAD_LETTERS: i64 = 100_000;

/// The answer to one PutEvents entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Accepted {
        event_id: String,
    },
    /// PutEvents' per-entry ErrorCode and ErrorMessage.
    Failed {
        code: &'static str,
        message: String,
    },
}

/// The answers to a PutEvents call, one per entry, in order.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub entries: Vec<EntryOutcome>,
}

impl PutOutcome {
    pub fn failed(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, EntryOutcome::Failed { .. }))
            .count()
    }
}

/// Events put by callers.
pub struct EventService<'a> {
    pub(crate) audit: &'a AuditLog,
    pub(crate) events: &'a EventBus,
    /// Wakes the delivery loop.
    pub(crate) coordination: &'a crate::coordination::Coordination,
}

impl EventService<'_> {
    /// Check, authorize and accept `entries` for `principal`. The call's audit
    /// record (`events:Put` on every bus authorized) commits with the events;
    /// the caller must not write another (`Principal::mark_recorded`).
    pub async fn put(
        &self,
        principal: &Principal,
        entries: &[PutEntry],
    ) -> ServiceResult<PutOutcome> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(ServiceError::invalid(
                "InvalidEntryCount",
                format!(
                    "Entries must hold 1 to {MAX_ENTRIES} entries, got {}",
                    entries.len()
                ),
            ));
        }
        let now = now_millis();
        let mut answers = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        let mut authorized: Vec<String> = Vec::new();
        for entry in entries {
            let env = match envelope::check_source_not_reserved(entry)
                .and_then(|()| envelope::envelope(entry, now))
            {
                Ok(env) => env,
                Err(e) => {
                    answers.push(EntryOutcome::Failed {
                        code: e.code,
                        message: e.message,
                    });
                    continue;
                }
            };
            if !self.events.bus_exists(&env.bus) {
                answers.push(EntryOutcome::Failed {
                    code: "ResourceNotFoundException",
                    message: format!("Event bus {} does not exist.", env.bus),
                });
                continue;
            }
            if !authorized.contains(&env.bus) {
                let bus = format!("bus/{}", env.bus);
                check_action(self.audit, principal, "events:Put", &bus).await?;
                authorized.push(env.bus.clone());
            }
            answers.push(EntryOutcome::Accepted {
                event_id: env.id.clone(),
            });
            accepted.push(env);
        }
        let outcome = PutOutcome { entries: answers };
        // The call's audit record commits with its events: one transaction.
        let record = operon_store::AuditEntry {
            actor: principal.name.clone(),
            action: "events:Put".into(),
            resource: authorized
                .iter()
                .map(|bus| format!("bus/{bus}"))
                .collect::<Vec<_>>()
                .join(","),
            outcome: "allowed".into(),
            detail: json!({"token": principal.token_id, "method": "POST", "path": "/v1/events",
                "status": 200, "entries": outcome.entries.len(), "failed": outcome.failed()}),
        };
        self.events
            .accept(self.coordination, accepted, None, Some(record))
            .await?;
        principal.mark_recorded();
        Ok(outcome)
    }
}

/// Which dead letters to redrive: the ids given, plus every one of `rule`,
/// or every one when `all`.
#[derive(Debug, Clone, Default)]
pub struct RedriveRequest {
    pub ids: Vec<String>,
    pub rule: Option<String>,
    pub all: bool,
}

/// What a redrive did: the ids moved back to the outbox and those not found.
#[derive(Debug, Clone)]
pub struct Redriven {
    pub redriven: Vec<String>,
    pub not_found: Vec<String>,
}

/// Deliveries that failed for good. Authorized by the catalogue
/// (`dlq:List`, `dlq:Show`, `dlq:Redrive` on `dlq/...`) at the edge.
pub struct DeadLetterService<'a> {
    pub(crate) store: &'a Store,
    /// Wakes the delivery loop after a redrive.
    pub(crate) coordination: &'a crate::coordination::Coordination,
}

impl DeadLetterService<'_> {
    /// Dead letters, of `rule` when given, at most `limit` (default 1000,
    /// clamped to 1..=[`MAX_DEAD_LETTERS`]).
    pub async fn list(
        &self,
        rule: Option<&str>,
        limit: Option<i64>,
    ) -> ServiceResult<Vec<DeadLetter>> {
        let limit = limit.unwrap_or(1000).clamp(1, MAX_DEAD_LETTERS);
        Ok(self.store.list_dead_letters(rule, limit).await?)
    }

    pub async fn get(&self, id: &str) -> ServiceResult<DeadLetter> {
        self.store.dead_letter(id).await?.ok_or_else(|| {
            ServiceError::not_found("NoSuchDeadLetter", format!("no dead letter {id}"))
        })
    }

    /// Move dead letters back to the outbox (same delivery ids, attempts
    /// reset) and wake the delivery workers.
    pub async fn redrive(&self, request: RedriveRequest) -> ServiceResult<Redriven> {
        let mut ids = request.ids;
        if request.all || request.rule.is_some() {
            let rule = if request.all {
                None
            } else {
                request.rule.as_deref()
            };
            ids.extend(
                self.store
                    .list_dead_letters(rule, MAX_DEAD_LETTERS)
                    .await?
                    .into_iter()
                    .map(|d| d.id),
            );
        }
        if ids.is_empty() {
            return Err(ServiceError::invalid(
                "NothingToRedrive",
                "nothing to redrive: give ids, a rule, or all",
            ));
        }
        let redriven = self.store.redrive_dead_letters(&ids, now_millis()).await?;
        let not_found = ids.into_iter().filter(|i| !redriven.contains(i)).collect();
        self.coordination
            .notify(crate::coordination::Topic::Deliveries);
        Ok(Redriven {
            redriven,
            not_found,
        })
    }
}

#[cfg(test)]
#[path = "put_events_tests.rs"]
mod tests;
