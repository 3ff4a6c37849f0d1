//! The event bus: PutEvents, buses and their live tail, rules (with
//! `test`), dead letters, inbound webhooks, archives and replays.
//!
//! EventBridge-shaped bodies (PutEvents, its result, rule targets) keep
//! AWS's PascalCase; Operon's own resources are snake_case.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op, reference};

/// The pattern of bus, rule, archive, replay and webhook names.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,64}$";

// ----- PutEvents ---------------------------------------------------------------

/// `POST /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PutEvents {
    /// 1 to 100 entries (400 otherwise)
    pub entries: Vec<PutEventsEntry>,
}

/// One entry; Source, DetailType and Detail are required per entry but a
/// missing one is answered in that entry (ErrorCode), not by failing the call
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_type: Option<String>,
    /// The detail object as JSON text
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RFC 3339; the ingestion time when absent
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// default when absent or empty
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_bus_name: Option<String>,
}

/// The answer to PutEvents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsResult {
    pub failed_entry_count: u64,
    /// One answer per entry, in order
    pub entries: Vec<PutEventsResultEntry>,
}

/// The answer for one entry: its event id, or why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PutEventsResultEntry {
    #[serde(rename_all = "PascalCase")]
    Accepted { event_id: String },
    #[serde(rename_all = "PascalCase")]
    Failed {
        error_code: String,
        error_message: String,
    },
}

// ----- Buses -------------------------------------------------------------------

/// `POST /v1/buses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateBus {
    /// 1 to 64 of letters, digits, '-', '_', '.'
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
}

/// An event bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bus {
    pub name: String,
    /// Unix time in milliseconds
    pub created_at: i64,
}

/// A created bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BusCreated {
    pub name: String,
}

/// What a delete of a named resource answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeletedName {
    /// The name deleted
    pub deleted: String,
}

/// One server-sent event of a live tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TailEvent {
    /// not set (message) for an event; lagged when events were skipped
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub event: Option<String>,
    /// The event envelope as JSON; for lagged, how many events were skipped
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry: Option<i64>,
}

// ----- Rules -------------------------------------------------------------------

/// `PUT /v1/rules/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRule {
    /// An existing bus; default when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An EventBridge event pattern, as an object or as its JSON text
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pattern: Option<Value>,
    /// rate(N unit), cron(...) or at(...): give a pattern or a schedule, not
    /// both
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA zone of a cron or at schedule
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default = "enabled_by_default")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Each a [`RuleTarget`]; read one by one by the server, which names the
    /// index of one it cannot read.
    #[serde(default)]
    #[schema(value_type = Vec<RuleTarget>)]
    pub targets: Vec<Value>,
}

fn enabled_by_default() -> bool {
    true
}

/// EventBridge's Target shape, with a Kind instead of an ARN
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RuleTarget {
    /// Unique within the rule; 1 to 64 of letters, digits, '-', '_', '.'
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook signing secret (write-only; stored sealed)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
    /// tag:KEY=VALUE filters or all
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_transformer: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retry_policy: Option<Value>,
    /// In answers: the target has a signing secret (never shown; a sealed
    /// secret cannot be given back)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, nullable = false)]
    pub has_secret: Option<bool>,
    /// The role the target acts as (NAME, role/NAME or an ARN ending in
    /// :role/NAME); needs roles:Pass on it. Without one it acts as the rule's
    /// author. Every effect is authorized as it, when it happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// A rule as shown: the pattern as JSON, its targets as stored (sealed
/// secrets replaced by `HasSecret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rule {
    pub name: String,
    pub bus: String,
    #[schema(required = true)]
    pub description: Option<String>,
    /// The event pattern
    #[schema(value_type = Option<Object>, required = true)]
    pub pattern: Option<Value>,
    #[schema(required = true)]
    pub schedule: Option<String>,
    #[schema(required = true)]
    pub timezone: Option<String>,
    pub enabled: bool,
    /// The targets as stored (secrets sealed, shown as HasSecret)
    #[schema(value_type = Vec<Object>)]
    pub targets: Vec<Value>,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    pub updated_at: i64,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub last_fired_at: Option<i64>,
    /// Who put the rule last; targets without a role act as this principal
    #[serde(default)]
    #[schema(required = true)]
    pub author: Option<String>,
}

/// `POST /v1/rules/{name}/test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestRule {
    /// An event envelope (version, id, detail-type, source, account, time,
    /// region, resources, detail)
    #[schema(value_type = Object)]
    pub event: Value,
}

/// Whether a rule matches an event, and what each target would receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleTestResult {
    pub rule: String,
    pub matches: bool,
    pub targets: Vec<RuleTestTarget>,
}

/// One target of a tested rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleTestTarget {
    pub id: String,
    /// What the target would receive; null if nothing
    #[schema(value_type = Option<Object>, required = true)]
    pub input: Option<Value>,
    pub delivered: bool,
}

// ----- Dead letters --------------------------------------------------------------

/// A delivery that exhausted its retry policy, with its event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub rule: String,
    pub target_id: String,
    pub attempts: i64,
    pub last_error: String,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    pub failed_at: i64,
    pub event_id: String,
    /// any JSON value
    #[schema(value_type = Object)]
    pub event: Value,
}

/// `POST /v1/dlq/redrive`: ids, a rule, or all (400 when nothing is
/// selected)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveDeadLetters {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Every dead letter of this rule
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub all: bool,
}

/// Redriven dead letters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redriven {
    pub redriven: Vec<String>,
    pub not_found: Vec<String>,
}

// ----- Inbound webhooks ------------------------------------------------------------

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// 1 to 64 of letters, digits, '-', '_', '.'
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    /// An existing bus; default when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// At least 16 characters; generated when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 16)]
    pub secret: Option<String>,
}

/// An inbound webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub name: String,
    pub bus: String,
    /// Unix time in milliseconds
    pub created_at: i64,
    pub path: String,
}

/// A created inbound webhook, with its secret (shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    pub name: String,
    pub bus: String,
    pub path: String,
    /// Returned once
    pub secret: String,
    pub signature_header: String,
    pub timestamp_header: String,
}

/// An accepted inbound webhook request: the events it became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HookAccepted {
    pub event_ids: Vec<String>,
}

// ----- Archives and replays ----------------------------------------------------------

/// `POST /v1/archives`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArchive {
    /// 1 to 64 of letters, digits, '-', '_', '.'
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    /// An existing bus; default when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// An EventBridge event pattern, as an object or as its JSON text
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pattern: Option<Value>,
    /// Kept forever when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: Option<i64>,
}

/// An archive: the stored events of its bus that match its pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Archive {
    pub name: String,
    pub bus: String,
    #[schema(value_type = Option<Object>, required = true)]
    pub pattern: Option<Value>,
    #[schema(required = true)]
    pub retention_days: Option<i64>,
    /// Unix time in milliseconds
    pub created_at: i64,
}

/// `POST /v1/replays`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReplay {
    /// 1 to 64 of letters, digits, '-', '_', '.'
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    pub archive: String,
    /// RFC 3339 time or YYYY-MM-DD, not before 1970
    pub from: String,
    /// RFC 3339 time or YYYY-MM-DD, not before from
    pub to: String,
    /// Rules of the archive's bus to replay to; all when empty
    #[serde(default)]
    pub rules: Vec<String>,
}

/// A replay of an archive's time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    pub name: String,
    pub archive: String,
    /// Unix time in milliseconds
    pub from_ms: i64,
    /// Unix time in milliseconds
    pub to_ms: i64,
    pub rules: Vec<String>,
    /// running, completed or failed
    pub state: String,
    pub events_replayed: i64,
    /// Unix time in milliseconds
    pub started_at: i64,
    /// Unix time in milliseconds
    #[schema(required = true)]
    pub finished_at: Option<i64>,
    #[schema(required = true)]
    pub error: Option<String>,
}

// ----- The operations ------------------------------------------------------------------

/// An event pattern given as an object or as its JSON text.
fn pattern_input() -> Value {
    json!({
        "type": ["object", "string", "null"],
        "description": "An EventBridge event pattern, as an object or as its JSON text",
    })
}

pub(crate) fn describe(api: &mut Api) {
    refinements(api);
    const EVENTS: &str = "events";
    const RULES: &str = "rules";
    api.op(Op::post(
        "/v1/events",
        EVENTS,
        "PutEvents: put up to 100 entries (Source, DetailType, Detail, Resources, Time, \
         EventBusName); answers per entry with EventId or ErrorCode/ErrorMessage and \
         FailedEntryCount",
    )
    .body::<PutEvents>()
    .example(json!({"Entries": [{
        "Source": "my.app",
        "DetailType": "Deployment Finished",
        "Detail": "{\"version\": \"1.2.3\"}",
        "EventBusName": "default",
    }]}))
    .ok::<PutEventsResult>());

    api.op(Op::get("/v1/buses", EVENTS, "List buses").ok_list::<Bus>());
    api.op(Op::post("/v1/buses", EVENTS, "Create a bus")
        .body::<CreateBus>()
        .example(json!({"name": "ops"}))
        .may(&[409])
        .ok::<BusCreated>());
    api.op(Op::delete(
        "/v1/buses/{name}",
        EVENTS,
        "Delete a bus that no rule, archive or webhook uses",
    )
    .describe(
        "The default bus cannot be deleted (400); a bus a rule, archive or webhook uses is a 409",
    )
    .may(&[409])
    .ok::<DeletedName>());
    api.op(Op::get(
        "/v1/buses/{name}/tail",
        EVENTS,
        "Stream accepted events of the bus live (server-sent events; data is the envelope)",
    )
    .query(
        "pattern",
        json!({"type": "string", "minLength": 1}),
        "An event pattern, as JSON text (400 if invalid)",
    )
    .collect::<TailEvent>()
    .answers(200, "OK", "text/event-stream", reference::<TailEvent>()));

    api.op(Op::get("/v1/rules", RULES, "List rules").ok_list::<Rule>());
    api.op(Op::get("/v1/rules/{name}", RULES, "Describe a rule").ok::<Rule>());
    api.op(Op::put(
        "/v1/rules/{name}",
        RULES,
        "Create or replace a rule: bus, pattern or schedule (+ timezone), enabled, targets \
         (EventBridge Target shape with Kind)",
    )
    .body::<PutRule>()
    .example(json!({
        "bus": "default",
        "description": "Log deployments",
        "pattern": {"source": ["my.app"], "detail-type": ["Deployment Finished"]},
        "enabled": true,
        "targets": [{"Id": "log", "Kind": "log"}],
    }))
    .ok::<Rule>());
    api.op(Op::delete("/v1/rules/{name}", RULES, "Delete a rule").ok::<DeletedName>());
    api.op(Op::post("/v1/rules/{name}/enable", RULES, "Enable a rule").ok::<Rule>());
    api.op(Op::post("/v1/rules/{name}/disable", RULES, "Disable a rule").ok::<Rule>());
    api.op(Op::post(
        "/v1/rules/{name}/test",
        RULES,
        "Whether the rule matches an event and the input each target would receive",
    )
    .body::<TestRule>()
    .example(json!({"event": {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Deployment Finished",
        "source": "my.app",
        "account": "000000000000",
        "time": "2024-01-01T00:00:00Z",
        "region": "local",
        "resources": [],
        "detail": {"version": "1.2.3"},
    }}))
    .ok::<RuleTestResult>());

    api.op(Op::get("/v1/dlq", RULES, "List dead letters")
        .query(
            "rule",
            json!({"type": "string"}),
            "Only this rule's dead letters",
        )
        .query(
            "limit",
            json!({"type": "integer", "format": "int64"}),
            "Clamped to 1..100000, default 1000",
        )
        .ok_list::<DeadLetter>());
    api.op(Op::get("/v1/dlq/{id}", RULES, "Show a dead letter with its event").ok::<DeadLetter>());
    api.op(Op::post(
        "/v1/dlq/redrive",
        RULES,
        "Redrive dead letters (same delivery ids)",
    )
    .body::<RedriveDeadLetters>()
    .example(json!({"ids": ["dl-0000000000000000"]}))
    .ok::<Redriven>());

    api.op(Op::get("/v1/webhooks", EVENTS, "List inbound webhooks").ok_list::<Webhook>());
    api.op(Op::post(
        "/v1/webhooks",
        EVENTS,
        "Create an inbound webhook; the secret is returned once",
    )
    .body::<CreateWebhook>()
    .example(json!({"name": "alertmanager", "bus": "default"}))
    .may(&[409])
    .ok::<CreatedWebhook>());
    api.op(
        Op::delete("/v1/webhooks/{name}", EVENTS, "Delete an inbound webhook").ok::<DeletedName>(),
    );
    api.op(Op::post(
        "/v1/hooks/{name}",
        EVENTS,
        "Inbound webhook (no bearer token): x-operon-timestamp and x-operon-signature \
         (sha256=HMAC-SHA256(secret, timestamp.body)); Alertmanager payloads become one \
         event per alert",
    )
    .describe("An unknown webhook and a bad signature get the same 401.")
    .header(
        "x-operon-timestamp",
        "Unix time in seconds; within 5 minutes of the server's clock",
    )
    .header(
        "x-operon-signature",
        "sha256=hex(HMAC-SHA256(secret, timestamp + '.' + body))",
    )
    .body_schema(
        json!({"description": "Any JSON; Alertmanager payloads become one event per alert"}),
    )
    .example(json!({
        "receiver": "operon",
        "groupKey": "{}:{}",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "web-1"}}],
    }))
    // 429: an address past its rate of refusals (the refusal limiter).
    .public(&[400, 401, 404, 413, 429])
    .ok::<HookAccepted>());

    api.op(Op::get("/v1/archives", EVENTS, "List archives").ok_list::<Archive>());
    api.op(Op::post("/v1/archives", EVENTS, "Create an archive")
        .body::<CreateArchive>()
        .example(json!({"name": "all-events", "bus": "default", "retention_days": 30}))
        .may(&[409])
        .ok::<Archive>());
    api.op(Op::delete("/v1/archives/{name}", EVENTS, "Delete an archive").ok::<DeletedName>());
    api.op(Op::get("/v1/replays", EVENTS, "List replays").ok_list::<Replay>());
    api.op(Op::post(
        "/v1/replays",
        EVENTS,
        "Start a replay of an archive's time window (replays:Start on replay/NAME, and \
         events:Put on the archive's bus, where the replayed events go)",
    )
    .body::<StartReplay>()
    .example(json!({
        "name": "replay-1",
        "archive": "all-events",
        "from": "2024-01-01",
        "to": "2024-01-02T00:00:00Z",
        "rules": [],
    }))
    .may(&[409])
    .ok::<Replay>());
    api.op(Op::get("/v1/replays/{name}", EVENTS, "Describe a replay").ok::<Replay>());
}

/// What the derive cannot say, copied from the hand-kept schemas.
fn refinements(api: &mut Api) {
    api.refine(
        "PutEvents/properties/Entries",
        json!({
            "type": "array", "minItems": 1, "maxItems": 100,
            "items": {"$ref": "#/components/schemas/PutEventsEntry"},
        }),
    );
    api.refine(
        "PutEventsResult/properties/FailedEntryCount",
        json!({"type": "integer", "minimum": 0}),
    );
    api.refine(
        "PutEventsResultEntry",
        json!({"oneOf": [
            {"type": "object", "required": ["EventId"],
             "properties": {"EventId": {"type": "string"}}, "additionalProperties": false},
            {"type": "object", "required": ["ErrorCode", "ErrorMessage"],
             "properties": {"ErrorCode": {"type": "string"}, "ErrorMessage": {"type": "string"}},
             "additionalProperties": false},
        ]}),
    );
    api.refine("PutRule/properties/pattern", pattern_input());
    api.refine("CreateArchive/properties/pattern", pattern_input());
    api.refine(
        "PutRule/properties/targets",
        json!({
            "type": "array", "maxItems": 5,
            "items": {"$ref": "#/components/schemas/RuleTarget"},
        }),
    );
    api.refine(
        "RuleTarget/properties/Kind",
        json!({"enum": ["webhook", "workflow", "run-command", "bus", "log"]}),
    );
    api.refine(
        "RuleTarget/properties/InputTransformer",
        json!({"anyOf": [
            {"type": "object", "required": ["InputTemplate"], "properties": {
                "InputPathsMap": {"type": "object", "additionalProperties": {"type": "string"}},
                "InputTemplate": {"type": "string"},
            }, "additionalProperties": false},
            {"type": "null"},
        ]}),
    );
    api.refine(
        "RuleTarget/properties/RetryPolicy",
        json!({"anyOf": [
            {"type": "object", "properties": {
                "MaximumRetryAttempts": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295_u64},
                "MaximumEventAgeInSeconds": {"type": ["integer", "null"], "minimum": 0},
            }, "additionalProperties": false},
            {"type": "null"},
        ]}),
    );
    api.refine(
        "RuleTarget/properties/HasSecret",
        json!({"type": "boolean", "readOnly": true}),
    );
    api.refine(
        "TestRule/properties/event",
        json!({
            "type": "object",
            "required": ["id", "account", "source", "time", "region", "detail-type"],
        }),
    );
    api.refine("DeadLetter/properties/event", json!({}));
    api.refine("RuleTestTarget/properties/input", json!({}));
    api.refine(
        "RedriveDeadLetters",
        json!({
            "type": "object",
            "description": "ids, a rule, or all (400 when nothing is selected)",
            "properties": {
                "ids": {"type": "array", "items": {"type": "string"}},
                "rule": {"type": ["string", "null"], "description": "Every dead letter of this rule"},
                "all": {"type": "boolean", "default": false},
            },
            "additionalProperties": false,
            "anyOf": [
                {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
                {"required": ["rule"], "properties": {"rule": {"type": "string"}}},
                {"required": ["all"], "properties": {"all": {"const": true}}},
            ],
        }),
    );
    api.refine(
        "Replay/properties/state",
        json!({"enum": ["running", "completed", "failed"]}),
    );
}
