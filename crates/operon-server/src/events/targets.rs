//! Rule targets: their stored shape (EventBridge's Target, with a `Kind`
//! instead of an ARN), validation, and the retry policy.
//!
//! A target is checked once, when its rule is put, and compiled: its input
//! (Input / InputPath / InputTransformer) by `operon-pattern`, its secret
//! sealed. Deliveries then only apply the compiled form.

use std::collections::BTreeMap;
use std::time::Duration;

use operon_pattern::{DeliveryContext, TargetInput};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::signing::SealKey;

/// EventBridge's defaults: 185 retries within 24 hours.
pub const DEFAULT_MAX_RETRIES: u32 = 185;
pub const DEFAULT_MAX_AGE_SECS: u64 = 86_400;
/// First retry delay; each retry doubles it, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A target as stored and as given to `PUT /v1/rules/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetSpec {
    pub id: String,
    /// `webhook`, `workflow`, `run-command`, `bus` or `log`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook signing secret, given in clear; stored sealed.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sealed: Option<String>,
    /// Shown instead of the sealed secret; accepted back only with the
    /// `Secret` itself, so a described rule put back keeps signing.
    #[serde(default, skip_serializing)]
    pub has_secret: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
    /// `tag:KEY=VALUE` filters or `all`, as for `operon run --targets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_transformer: Option<InputTransformerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicySpec>,
    /// The role the target acts as (`NAME`, `role/NAME` or an ARN ending in
    /// `:role/NAME`); without one it acts as the rule's author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InputTransformerSpec {
    #[serde(default)]
    pub input_paths_map: BTreeMap<String, String>,
    pub input_template: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetryPolicySpec {
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_in_seconds: Option<u64>,
}

/// What a target does.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetKind {
    Webhook { url: String, secret: Option<String> },
    Workflow { workflow: String },
    RunCommand(RunCommandTarget),
    Bus { bus: String },
    Log,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunCommandTarget {
    pub document: Option<String>,
    pub node_ids: Vec<String>,
    pub targets: Vec<String>,
    pub parameters: Map<String, Value>,
}

/// A validated target, ready for deliveries.
#[derive(Debug, Clone)]
pub struct CompiledTarget {
    pub id: String,
    pub kind: TargetKind,
    pub input: TargetInput,
    pub retry: RetryPolicy,
    /// The role's name, when the target names one.
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub max_age: Duration,
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): exponential with
    /// "equal jitter" (between half and all of the exponential delay), so
    /// retries of many deliveries do not arrive in lockstep.
    pub fn backoff(attempt: u32) -> Duration {
        let exp = BASE_BACKOFF.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(MAX_BACKOFF);
        let half = capped / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Check a target, sealing a clear secret. The returned spec is what is
/// stored (no clear secret in it).
pub fn prepare(
    mut spec: TargetSpec,
    key: &SealKey,
) -> Result<(TargetSpec, CompiledTarget), String> {
    // A sealed secret is write-only: accepting one back would let a rule
    // author sign with a secret they were never given.
    if spec.secret_sealed.is_some() {
        return Err(format!(
            "target {}: SecretSealed cannot be given; give the signing Secret in clear (it is stored sealed and never shown)",
            spec.id
        ));
    }
    if spec.has_secret == Some(true) && spec.secret.is_none() {
        return Err(format!(
            "target {}: HasSecret is true but no Secret is given; give the signing Secret again (it is never shown)",
            spec.id
        ));
    }
    if let Some(secret) = spec.secret.take() {
        if secret.is_empty() {
            return Err(format!("target {}: Secret must not be empty", spec.id));
        }
        spec.secret_sealed = Some(key.seal(&secret));
    }
    let compiled = compile(&spec, key)?;
    Ok((spec, compiled))
}

/// Compile a stored (or prepared) target.
pub fn compile(spec: &TargetSpec, key: &SealKey) -> Result<CompiledTarget, String> {
    let id = &spec.id;
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "target Id {id:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
        ));
    }
    let need = |field: &str, value: &Option<String>| -> Result<String, String> {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("target {id}: a {} target needs {field}", spec.kind))
    };
    let kind = match spec.kind.as_str() {
        "webhook" => {
            let url = need("Url", &spec.url)?;
            if !url.starts_with("http://") {
                return Err(format!(
                    "target {id}: Url must be an http:// URL (this build has no TLS client), got {url:?}"
                ));
            }
            let secret = match &spec.secret_sealed {
                None => None,
                Some(sealed) => Some(key.open(sealed).ok_or_else(|| {
                    format!("target {id}: the stored secret cannot be opened with events.key")
                })?),
            };
            TargetKind::Webhook { url, secret }
        }
        "workflow" => TargetKind::Workflow {
            workflow: need("Workflow", &spec.workflow)?,
        },
        "bus" => TargetKind::Bus {
            bus: need("Bus", &spec.bus)?,
        },
        "log" => TargetKind::Log,
        "run-command" => TargetKind::RunCommand(RunCommandTarget {
            document: spec.document.clone(),
            node_ids: spec.node_ids.clone(),
            targets: spec.targets.clone(),
            parameters: spec.parameters.clone(),
        }),
        other => {
            return Err(format!(
                "target {id}: unknown Kind {other:?}; use webhook, workflow, run-command, bus or log"
            ));
        }
    };
    let paths: Option<Vec<(String, String)>> = spec.input_transformer.as_ref().map(|t| {
        t.input_paths_map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let transformer = spec
        .input_transformer
        .as_ref()
        .zip(paths.as_ref())
        .map(|(t, p)| (p.as_slice(), t.input_template.as_str()));
    let input = TargetInput::new(
        id,
        spec.input.as_deref(),
        spec.input_path.as_deref(),
        transformer,
    )
    .map_err(|e| e.message)?;
    let policy = spec.retry_policy.clone().unwrap_or_default();
    let max_age = policy
        .maximum_event_age_in_seconds
        .unwrap_or(DEFAULT_MAX_AGE_SECS);
    if !(60..=86_400).contains(&max_age) {
        return Err(format!(
            "target {id}: MaximumEventAgeInSeconds must be between 60 and 86400, got {max_age}"
        ));
    }
    let max_retries = policy.maximum_retry_attempts.unwrap_or(DEFAULT_MAX_RETRIES);
    if max_retries > 185 {
        return Err(format!(
            "target {id}: MaximumRetryAttempts must be between 0 and 185, got {max_retries}"
        ));
    }
    let role = spec
        .role_arn
        .as_deref()
        .map(crate::runas::role_name)
        .transpose()
        .map_err(|e| format!("target {id}: RoleArn: {e}"))?;
    Ok(CompiledTarget {
        id: id.clone(),
        kind,
        role,
        input,
        retry: RetryPolicy {
            max_retries,
            max_age: Duration::from_secs(max_age),
        },
    })
}

impl CompiledTarget {
    /// The payload for this target, or None when the transformer yields
    /// nothing deliverable (EventBridge then delivers nothing).
    pub fn payload(&self, event: &Value, context: &DeliveryContext) -> Option<String> {
        self.input.apply(event, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealKey {
        SealKey::from_bytes([1; 32])
    }

    fn spec(kind: &str) -> TargetSpec {
        TargetSpec {
            id: "t1".into(),
            kind: kind.into(),
            ..TargetSpec::default()
        }
    }

    #[test]
    fn validation_names_the_target_and_field() {
        assert!(
            compile(&spec("webhook"), &key())
                .unwrap_err()
                .contains("needs Url")
        );
        assert!(
            compile(&spec("nope"), &key())
                .unwrap_err()
                .contains("unknown Kind")
        );
        let mut both = spec("log");
        both.input = Some("{}".into());
        both.input_path = Some("$.detail".into());
        assert!(compile(&both, &key()).unwrap_err().contains("Only one of"));
        let mut age = spec("log");
        age.retry_policy = Some(RetryPolicySpec {
            maximum_retry_attempts: Some(1),
            maximum_event_age_in_seconds: Some(5),
        });
        assert!(
            compile(&age, &key())
                .unwrap_err()
                .contains("MaximumEventAge")
        );
        let mut bad_id = spec("log");
        bad_id.id = "a b".into();
        assert!(compile(&bad_id, &key()).is_err());
    }

    #[test]
    fn secrets_are_sealed_and_transformers_applied() {
        let mut hook = spec("webhook");
        hook.url = Some("http://127.0.0.1:1/x".into());
        hook.secret = Some("s3cret".into());
        hook.input_transformer = Some(InputTransformerSpec {
            input_paths_map: BTreeMap::from([("host".into(), "$.detail.host".into())]),
            input_template: r#"{"restart": <host>}"#.into(),
        });
        let (stored, compiled) = prepare(hook, &key()).unwrap();
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            matches!(&compiled.kind, TargetKind::Webhook { secret: Some(s), .. } if s == "s3cret")
        );
        let again = compile(&serde_json::from_str(&text).unwrap(), &key()).unwrap();
        let copied = prepare(serde_json::from_str(&text).unwrap(), &key()).unwrap_err();
        assert!(copied.contains("SecretSealed cannot be given"), "{copied}");
        assert!(matches!(
            again.kind,
            TargetKind::Webhook {
                secret: Some(_),
                ..
            }
        ));
        let event = serde_json::json!({"detail": {"host": "web-1"}});
        assert_eq!(
            compiled
                .payload(&event, &DeliveryContext::default())
                .unwrap(),
            r#"{"restart": "web-1"}"#
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        for attempt in 1..=12u32 {
            let d = RetryPolicy::backoff(attempt);
            let full = (BASE_BACKOFF * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
