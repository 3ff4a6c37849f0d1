//! `{{ssm:NAME}}` and `{{ssm-secure:NAME}}` references in what a command
//! runs (its rendered steps: the document's text and the parameters given),
//! with `:VERSION` or `:LABEL` after the name as in Parameter Store.
//!
//! The stored command keeps the references; they are replaced by values
//! only in the `Run` message a node is sent, read at that moment with the
//! authority of whoever asked for the command (a user, with the scopes of
//! the token used, or a rule's or runbook's actor with what it acts as):
//! `params:Get` for `ssm:`, `params:GetDecrypted` for `ssm-secure:` (each
//! decrypted read audited). A reference that can no longer be read fails
//! that dispatch with a clear detail; it is never sent unresolved.
//!
//! Finding and replacing references is pure; checking and reading them
//! goes through the params service.

use std::collections::BTreeMap;

use operon_proto::Step;
use operon_store::{Command, ParameterAuthority};

use crate::AppState;
use crate::access::Principal;
use crate::runas::RunAs;
use crate::service::{ServiceError, ServiceResult};

/// One reference as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// `ssm-secure:` (a SecureString, decrypted) rather than `ssm:`.
    pub secure: bool,
    /// The name with its optional `:VERSION` or `:LABEL`.
    pub selector: String,
}

impl Reference {
    /// How it is written, for messages (`{{ssm:/a/b}}`).
    pub fn text(&self) -> String {
        let kind = if self.secure { "ssm-secure" } else { "ssm" };
        format!("{{{{{kind}:{}}}}}", self.selector)
    }
}

/// The reference inside `{{ ... }}`, if the braces hold one.
fn parse_inside(inside: &str) -> Option<Reference> {
    let inside = inside.trim();
    let (secure, selector) = if let Some(rest) = inside.strip_prefix("ssm-secure:") {
        (true, rest)
    } else {
        (false, inside.strip_prefix("ssm:")?)
    };
    let selector = selector.trim();
    (!selector.is_empty()).then(|| Reference {
        secure,
        selector: selector.to_string(),
    })
}

/// Every reference in `text`, in order (repeats included).
pub fn references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        match parse_inside(&after[..end]) {
            Some(reference) => {
                found.push(reference);
                rest = &after[end + 2..];
            }
            None => rest = after,
        }
    }
    found
}

/// `text` with each reference replaced by its value in `values`
/// (references without a value are left as written).
pub fn substitute(text: &str, values: &BTreeMap<Reference, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after
            .find("}}")
            .and_then(|end| Some((end, values.get(&parse_inside(&after[..end])?)?)));
        match value {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A state step with the references in its document's strings replaced
/// (in the parsed JSON, so a value is escaped as JSON wants).
fn resolve_state(
    state: &operon_proto::StateStep,
    values: &BTreeMap<Reference, String>,
) -> operon_proto::StateStep {
    fn walk(value: &mut serde_json::Value, values: &BTreeMap<Reference, String>) {
        match value {
            serde_json::Value::String(text) => *text = substitute(text, values),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, values)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, values)),
            _ => {}
        }
    }
    let mut resolved = state.clone();
    // The document was produced by the server as JSON; if it somehow is
    // not, it is sent as it is and the agent refuses it.
    if let Ok(mut document) = serde_json::from_str::<serde_json::Value>(state.document.expose()) {
        walk(&mut document, values);
        resolved.document = operon_proto::Secret(document.to_string());
    }
    resolved
}

/// The distinct references of a command's steps.
pub fn step_references(steps: &[Step]) -> Vec<Reference> {
    let mut all: Vec<Reference> = steps
        .iter()
        .flat_map(|s| {
            let mut refs = references(&s.script);
            if let Some(dir) = &s.working_directory {
                refs.extend(references(dir));
            }
            if let Some(state) = &s.state {
                refs.extend(references(state.document.expose()));
            }
            refs
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Steps with their references replaced.
pub fn resolve_steps(steps: &[Step], values: &BTreeMap<Reference, String>) -> Vec<Step> {
    steps
        .iter()
        .map(|s| Step {
            script: substitute(&s.script, values),
            working_directory: s
                .working_directory
                .as_deref()
                .map(|d| substitute(d, values)),
            state: s.state.as_ref().map(|state| resolve_state(state, values)),
            ..s.clone()
        })
        .collect()
}

fn unusable(reference: &Reference, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid("InvalidParameters", format!("{}: {why}", reference.text()))
}

/// Read every reference as `principal`: the values by reference, or the
/// first that cannot be read (not found, not allowed, the wrong type: an
/// `ssm:` reference to a SecureString would send its value unaudited, so it
/// must be written `ssm-secure:`).
pub async fn read_all(
    state: &AppState,
    principal: &Principal,
    references: &[Reference],
) -> ServiceResult<BTreeMap<Reference, String>> {
    let mut values = BTreeMap::new();
    for reference in references {
        let view = state
            .params()
            .get(principal, &reference.selector, reference.secure)
            .await
            .map_err(|e| unusable(reference, e.message))?;
        match (view.is_secure(), reference.secure) {
            (true, false) => {
                return Err(unusable(
                    reference,
                    "is a SecureString: write {{ssm-secure:...}} to send its value",
                ));
            }
            (false, true) => {
                return Err(unusable(
                    reference,
                    format!(
                        "is a {}, not a SecureString: write {{{{ssm:...}}}}",
                        view.param_type
                    ),
                ));
            }
            _ => {}
        }
        values.insert(reference.clone(), view.value.unwrap_or_default());
    }
    Ok(values)
}

/// Check, when a command is created, that `principal` may read every
/// reference now and that each names a parameter of the right type: a
/// command that could never be sent is refused at once, naming the
/// reference. (They are read again, and authorized again, when sent.)
pub async fn check_all(
    store: &operon_store::Store,
    audit: &crate::audit::AuditLog,
    principal: &Principal,
    references: &[Reference],
) -> ServiceResult<()> {
    for reference in references {
        let (name, selection) = operon_params::names::parse_selector(&reference.selector)
            .map_err(|e| unusable(reference, e))?;
        operon_params::names::validate_name(name).map_err(|e| unusable(reference, e))?;
        let action = if reference.secure {
            "params:GetDecrypted"
        } else {
            "params:Get"
        };
        crate::access::check_action(audit, principal, action, &super::service::resource(name))
            .await
            .map_err(|e| unusable(reference, e.message))?;
        let found = match &selection {
            operon_params::names::Selector::Latest => store.parameter(name).await?,
            operon_params::names::Selector::Version(v) => {
                store
                    .parameter_version(name, i64::try_from(*v).unwrap_or(i64::MAX))
                    .await?
            }
            operon_params::names::Selector::Label(label) => {
                store.parameter_by_label(name, label).await?
            }
        };
        let found = found.ok_or_else(|| unusable(reference, "no such parameter or version"))?;
        let secure = found.fields.param_type == "SecureString";
        if secure != reference.secure {
            let fix = if secure {
                "{{ssm-secure:...}}"
            } else {
                "{{ssm:...}}"
            };
            return Err(unusable(
                reference,
                format!("is a {}: write {fix}", found.fields.param_type),
            ));
        }
    }
    Ok(())
}

/// The authority to record in a new command whose steps hold references.
pub fn authority_of(principal: &Principal) -> ParameterAuthority {
    match &principal.acting_as {
        Some(acting_as) => ParameterAuthority {
            name: principal.name.clone(),
            token_id: None,
            scopes: None,
            acting_as: Some(acting_as.clone()),
        },
        None => ParameterAuthority {
            name: principal.name.clone(),
            token_id: Some(principal.token_id.clone()),
            scopes: principal.scopes.clone(),
            acting_as: None,
        },
    }
}

/// The principal a command's references are read as now: the user's
/// current policies (limited by the token's scopes), or the actor's.
pub async fn principal_of(
    state: &AppState,
    authority: &ParameterAuthority,
) -> ServiceResult<Principal> {
    if let Some(acting_as) = &authority.acting_as {
        let run_as = match acting_as.split_once('/') {
            Some(("role", role)) => RunAs::Role(role.to_string()),
            Some(("user", user)) => RunAs::Author(Some(user.to_string())),
            _ if acting_as == crate::runas::ADMIN => {
                RunAs::Author(Some(crate::runas::ADMIN.to_string()))
            }
            _ => RunAs::Author(None),
        };
        return Ok(state
            .actor(&authority.name, &run_as)
            .await?
            .with_fresh_trail());
    }
    if authority.name == crate::runas::ADMIN {
        return Ok(Principal::new(
            authority.name.clone(),
            None,
            authority.token_id.clone().unwrap_or_default(),
            None,
            vec![],
        ));
    }
    let refused = |why: &str| ServiceError::forbidden(format!("{}: {why}", authority.name));
    let user = state
        .store
        .user_by_name(&authority.name)
        .await?
        .ok_or_else(|| refused("the user no longer exists"))?;
    if user.disabled_at.is_some() {
        return Err(refused("the user is disabled"));
    }
    crate::api::user_principal(
        state,
        user,
        authority.token_id.clone().unwrap_or_default(),
        authority.scopes.clone(),
    )
    .await
    .map_err(ServiceError::from)
}

/// The steps of `command` as a node must receive them now: unchanged
/// without references, else resolved with the requester's authority.
pub async fn steps_to_send(state: &AppState, command: &Command) -> ServiceResult<Vec<Step>> {
    let template = &command.run_template;
    let Some(authority) = &template.parameters_as else {
        return Ok(template.steps.clone());
    };
    let references = step_references(&template.steps);
    if references.is_empty() {
        return Ok(template.steps.clone());
    }
    let principal = principal_of(state, authority).await?;
    principal.note("command_id", command.id.clone());
    let values = read_all(state, &principal, &references).await?;
    Ok(resolve_steps(&template.steps, &values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(secure: bool, selector: &str) -> Reference {
        Reference {
            secure,
            selector: selector.into(),
        }
    }

    #[test]
    fn references_are_found_in_order_with_selectors_and_spaces() {
        let text = "a {{ssm:/app/url}} b {{ ssm-secure:/app/pw:3 }} {{ name }} {{ssm:x:live}} {{ssm:}} {{ssm:/app/url}}";
        assert_eq!(
            references(text),
            [
                r(false, "/app/url"),
                r(true, "/app/pw:3"),
                r(false, "x:live"),
                r(false, "/app/url")
            ]
        );
        assert!(references("{{ssm:/open").is_empty());
        assert!(references("no braces, {{ plain }}").is_empty());
    }

    #[test]
    fn substitution_replaces_known_references_and_keeps_the_rest() {
        let values = BTreeMap::from([
            (r(false, "/a"), "A".to_string()),
            (r(true, "/s"), "S}}{{".to_string()),
        ]);
        assert_eq!(
            substitute(
                "x={{ssm:/a}} y={{ ssm-secure:/s }} z={{ssm:/b}} {{p}} {{",
                &values
            ),
            "x=A y=S}}{{ z={{ssm:/b}} {{p}} {{"
        );
        // A value holding braces is not read again as a reference.
        assert_eq!(substitute("{{ssm-secure:/s}}{{ssm:/a}}", &values), "S}}{{A");
    }

    #[test]
    fn steps_resolve_scripts_and_directories_and_list_each_reference_once() {
        let steps = vec![Step {
            name: "s".into(),
            script: "echo {{ssm:/a}} {{ssm:/a}}".into(),
            working_directory: Some("/srv/{{ssm:/d}}".into()),
            timeout_secs: None,
            state: None,
        }];
        assert_eq!(step_references(&steps), [r(false, "/a"), r(false, "/d")]);
        let values = BTreeMap::from([
            (r(false, "/a"), "1".to_string()),
            (r(false, "/d"), "app".to_string()),
        ]);
        let resolved = resolve_steps(&steps, &values);
        assert_eq!(resolved[0].script, "echo 1 1");
        assert_eq!(resolved[0].working_directory.as_deref(), Some("/srv/app"));
    }
}
