//! Identity and audit: `/v1/whoami`, `/v1/login`, `/v1/users`,
//! `/v1/tokens`, `/v1/admin-token/rotate`, `/v1/policies`, `/v1/roles`,
//! `/v1/audit`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::openapi::{Api, Op};

/// What a user, token, role or policy may be named.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9_.@-]{1,64}$";

// ----- Requests ----------------------------------------------------------------------

/// `POST /v1/users`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 of letters, digits, '_', '-', '.', '@'
    #[schema(pattern = r"^[A-Za-z0-9_.@-]{1,64}$")]
    pub name: String,
    /// `user` (the default) or `service`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Existing role names (400 for an unknown one)
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `POST /v1/users/{name}/roles`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// Existing role names (400 for an unknown one)
    #[serde(default)]
    pub grant: Vec<String>,
    #[serde(default)]
    pub revoke: Vec<String>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Owner; defaults to the caller (the admin token must name one)
    #[serde(default)]
    pub user: Option<String>,
    /// 1 to 64 of letters, digits, '_', '-', '.', '@'
    #[schema(pattern = r"^[A-Za-z0-9_.@-]{1,64}$")]
    pub name: String,
    /// Action patterns the token is limited to (nodes:*); absent or null for
    /// all the owner may do
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 315360000)]
    pub expires_in_secs: Option<i64>,
}

/// `POST /v1/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    /// 1 to 64 of letters, digits, '_', '-', '.', '@'
    #[schema(pattern = r"^[A-Za-z0-9_.@-]{1,64}$")]
    pub name: String,
    /// An IAM-shaped policy document (400 if it does not parse).
    #[schema(value_type = PolicyDocument)]
    pub document: Value,
}

/// An IAM-shaped policy document (400 if it does not parse). Its schema is
/// written out in [`describe`]; the server parses it with `operon-policy`.
#[derive(Debug, Clone, ToSchema)]
pub struct PolicyDocument {}

/// One statement of a policy document (schema written out in [`describe`]).
#[derive(Debug, Clone, ToSchema)]
pub struct PolicyStatement {}

/// `POST /v1/policies/simulate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    pub user: String,
    /// service:Action, e.g. nodes:List
    pub action: String,
    /// e.g. node/web-1; may be empty when node is given
    pub resource: String,
    /// Extra condition keys, e.g. {"operon:NodeTag/env": "staging"}; values
    /// are a string or a list of strings
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// Use this node's tags as operon:NodeTag/... keys (and node/NAME as the
    /// resource when resource is empty)
    #[serde(default)]
    pub node: Option<String>,
}

/// `POST /v1/roles`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// 1 to 64 of letters, digits, '_', '-', '.', '@'
    #[schema(pattern = r"^[A-Za-z0-9_.@-]{1,64}$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Existing policy names (400 for an unknown one)
    #[serde(default)]
    pub policies: Vec<String>,
}

/// `POST /v1/roles/{name}/policies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Existing policy names (400 for an unknown one)
    #[serde(default)]
    pub attach: Vec<String>,
    #[serde(default)]
    pub detach: Vec<String>,
}

// ----- Answers -----------------------------------------------------------------------

/// Who a caller is, as `whoami` and `login` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Identity {
    pub name: String,
    #[serde(default)]
    #[schema(required = true)]
    pub user_id: Option<String>,
    pub token_id: String,
    /// The admin token.
    pub admin: bool,
    #[serde(default)]
    #[schema(required = true)]
    pub scopes: Option<Vec<String>>,
    /// The names of the caller's policies.
    pub policies: Vec<String>,
}

/// A user or service account with its roles and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    #[serde(default)]
    #[schema(required = true)]
    pub disabled_at: Option<i64>,
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
}

/// An API token (never its secret)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    /// The owner's name; (admin) for the admin token
    pub user: String,
    #[serde(default)]
    #[schema(required = true)]
    pub scopes: Option<Vec<String>>,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    #[serde(default)]
    #[schema(required = true)]
    pub expires_at: Option<i64>,
    /// Unix time in milliseconds
    #[serde(default)]
    #[schema(required = true)]
    pub revoked_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

/// A created token: the token's fields and its secret, returned once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: Token,
    /// The secret; returned once
    pub token: String,
}

/// The new admin token, shown this once, and the file it was written to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenRotated {
    pub id: String,
    /// The new admin token; returned once
    pub token: String,
    /// Where it was also written
    pub file: String,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub name: String,
    #[schema(value_type = Object)]
    pub document: Value,
    /// Unix time in milliseconds
    pub created_at: i64,
    /// Unix time in milliseconds
    pub updated_at: i64,
}

/// Which statement decided: the policy's name, the statement's index in the
/// policy's `Statement` list (from 0) and its `Sid` if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementRef {
    pub policy: String,
    pub statement: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sid: Option<String>,
}

/// How a user's policies decide a request, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Simulation {
    pub user: String,
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
    /// `allowed`, `explicit_deny` or `implicit_deny`.
    pub decision: String,
    /// The deciding statement, if any
    #[serde(default)]
    #[schema(required = true)]
    pub statement: Option<StatementRef>,
    pub explanation: String,
    pub policies: Vec<String>,
}

/// A role with the policies attached to it and the users granted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Role {
    pub name: String,
    pub description: String,
    /// Unix time in milliseconds
    pub created_at: i64,
    pub policies: Vec<String>,
    pub users: Vec<String>,
}

/// A deleted policy, role or workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
}

/// One record of the hash-chained audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    /// Unix time in milliseconds
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The result of checking the audit trail's hash chain and its head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub records: usize,
    #[serde(default)]
    #[schema(required = true)]
    pub head_seq: Option<i64>,
    pub ok: bool,
    pub problems: Vec<String>,
}

// ----- The document ------------------------------------------------------------------

/// A string or a list of strings, as IAM's fields take them.
fn string_or_list() -> Value {
    json!({"anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
    ]})
}

fn policy_document() -> Value {
    json!({
        "type": "object",
        "description": "An IAM-shaped policy document (400 if it does not parse)",
        "required": ["Statement"],
        "properties": {
            "Version": {"enum": ["2012-10-17", "2008-10-17"]},
            "Id": {"type": "string"},
            "Statement": {"oneOf": [
                {"type": "array", "minItems": 1,
                 "items": {"$ref": "#/components/schemas/PolicyStatement"}},
                {"$ref": "#/components/schemas/PolicyStatement"},
            ]},
        },
        "additionalProperties": false,
    })
}

fn policy_statement() -> Value {
    json!({
        "type": "object",
        "description": "Exactly one of Action and NotAction, and one of Resource and NotResource",
        "required": ["Effect"],
        "properties": {
            "Sid": {"type": "string", "description": "Unique within the policy"},
            "Effect": {"enum": ["Allow", "Deny"]},
            "Action": string_or_list(),
            "NotAction": string_or_list(),
            "Resource": string_or_list(),
            "NotResource": string_or_list(),
            "Condition": {
                "type": "object",
                "description": "Operator -> key -> value(s), as IAM's (StringEquals, StringLike, ...)",
            },
        },
        "additionalProperties": false,
        "allOf": [
            {"oneOf": [{"required": ["Action"]}, {"required": ["NotAction"]}]},
            {"oneOf": [{"required": ["Resource"]}, {"required": ["NotResource"]}]},
        ],
    })
}

pub(crate) fn describe(api: &mut Api) {
    refine(api);
    identity_ops(api);
    policy_ops(api);
    audit_ops(api);
}

fn refine(api: &mut Api) {
    api.refine(
        "CreateUser/properties/kind",
        json!({"enum": ["user", "service", null], "default": "user"}),
    );
    api.refine(
        "CreateToken/properties/scopes",
        json!({
            "type": ["array", "null"], "items": {"type": "string"}, "minItems": 1,
            "description": "Action patterns the token is limited to (nodes:*); absent or null for all the owner may do",
        }),
    );
    api.refine("PolicyDocument", policy_document());
    api.refine("PolicyStatement", policy_statement());
    api.refine(
        "SimulateRequest/properties/context",
        json!({
            "type": "object",
            "additionalProperties": string_or_list(),
            "description": "Extra condition keys, e.g. {\"operon:NodeTag/env\": \"staging\"}; values are a string or a list of strings",
        }),
    );
    api.refine("User/properties/kind", json!({"enum": ["user", "service"]}));
    api.refine(
        "User/properties/status",
        json!({"enum": ["active", "disabled"]}),
    );
    let token_status = json!({"enum": ["active", "expired", "revoked"]});
    // CreatedToken flattens Token, so this refines both.
    api.refine("Token/properties/status", token_status);
    api.refine(
        "Simulation/properties/decision",
        json!({"enum": ["allowed", "explicit_deny", "implicit_deny"]}),
    );
    api.refine("Deleted/properties/deleted", json!({"const": true}));
    api.refine("Policy/properties/document", json!({"type": "object"}));
    api.refine(
        "AuditRecord/properties/detail",
        json!({"description": "any JSON value"}),
    );
}

fn identity_ops(api: &mut Api) {
    const TAG: &str = "identity";
    api.op(Op::get(
        "/v1/whoami",
        TAG,
        "The caller's identity, roles' policies and token scopes",
    )
    .ok::<Identity>());
    api.op(Op::post(
        "/v1/login",
        TAG,
        "Check a token and record the login in the audit trail",
    )
    .unread_body()
    .ok::<Identity>());
    api.op(Op::get("/v1/users", TAG, "List users").ok_list::<User>());
    api.op(
        Op::post("/v1/users", TAG, "Create a user or service account")
            .body::<CreateUser>()
            .example(json!({"name": "alice", "kind": "user", "roles": ["operators"]}))
            .may(&[409])
            .ok::<User>(),
    );
    api.op(Op::get("/v1/users/{name}", TAG, "Show a user").ok::<User>());
    api.op(Op::post(
        "/v1/users/{name}/disable",
        TAG,
        "Disable a user; its tokens stop working",
    )
    .unread_body()
    .ok::<User>());
    api.op(
        Op::post("/v1/users/{name}/roles", TAG, "Grant or take back roles")
            .body::<RoleChange>()
            .example(json!({"grant": ["operators"], "revoke": []}))
            .ok::<User>(),
    );
    api.op(Op::get(
        "/v1/tokens",
        TAG,
        "List API tokens (never secrets); ?user=NAME",
    )
    .query(
        "user",
        json!({"type": "string"}),
        "The owner; the caller when absent (the admin token then lists every token)",
    )
    .ok_list::<Token>());
    api.op(Op::post(
        "/v1/tokens",
        TAG,
        "Create an API token; the secret is returned once",
    )
    .body::<CreateToken>()
    .example(json!({
        "name": "ci", "user": "alice", "scopes": ["commands:*"], "expires_in_secs": 86400,
    }))
    .may(&[409])
    .ok::<CreatedToken>());
    api.op(
        Op::post("/v1/tokens/{id}/revoke", TAG, "Revoke an API token")
            .unread_body()
            .ok::<Token>(),
    );
    api.op(Op::post(
        "/v1/admin-token/rotate",
        TAG,
        "Replace the admin token (admin token only)",
    )
    .unread_body()
    .ok::<AdminTokenRotated>());
}

fn policy_ops(api: &mut Api) {
    const TAG: &str = "identity";
    api.op(Op::get("/v1/policies", TAG, "List policies").ok_list::<Policy>());
    api.op(Op::post(
        "/v1/policies",
        TAG,
        "Create or replace an IAM-shaped policy",
    )
    .body::<PutPolicy>()
    .example(json!({
        "name": "read-only",
        "document": {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["nodes:List", "nodes:Get"],
                "Resource": "*",
            }],
        },
    }))
    .collect::<PolicyDocument>()
    .collect::<PolicyStatement>()
    .ok::<Policy>());
    api.op(Op::post(
        "/v1/policies/simulate",
        TAG,
        "Explain how a user's policies decide a request",
    )
    .body::<SimulateRequest>()
    .example(json!({
        "user": "alice", "action": "nodes:List", "resource": "node/*", "context": {},
    }))
    .ok::<Simulation>());
    api.op(Op::get("/v1/policies/{name}", TAG, "Show a policy").ok::<Policy>());
    api.op(
        Op::delete("/v1/policies/{name}", TAG, "Delete a policy no role uses")
            .may(&[409])
            .ok::<Deleted>(),
    );
    api.op(Op::get("/v1/roles", TAG, "List roles").ok_list::<Role>());
    api.op(Op::post("/v1/roles", TAG, "Create a role")
        .body::<CreateRole>()
        .example(json!({
            "name": "operators", "description": "Read the fleet", "policies": ["read-only"],
        }))
        .may(&[409])
        .ok::<Role>());
    api.op(Op::get("/v1/roles/{name}", TAG, "Show a role").ok::<Role>());
    api.op(Op::delete("/v1/roles/{name}", TAG, "Delete a role").ok::<Deleted>());
    api.op(Op::post(
        "/v1/roles/{name}/policies",
        TAG,
        "Attach or detach policies",
    )
    .body::<PolicyChange>()
    .example(json!({"attach": ["read-only"], "detach": []}))
    .ok::<Role>());
}

fn audit_ops(api: &mut Api) {
    const TAG: &str = "audit";
    let int64 = json!({"type": "integer", "format": "int64"});
    api.op(Op::get(
        "/v1/audit",
        TAG,
        "List audit records; ?actor=&action=&since=&limit=",
    )
    .query(
        "actor",
        json!({"type": "string"}),
        "Only this actor's records (a user, admin, rule/NAME, ...)",
    )
    .query(
        "action",
        json!({"type": "string"}),
        "An exact action, or a prefix ending in * (commands:*)",
    )
    .query(
        "since",
        int64.clone(),
        "Only records at or after this Unix time in milliseconds",
    )
    .query(
        "limit",
        int64,
        "The most recent records (oldest first); clamped to 1..10000, default 100",
    )
    .ok_list::<AuditRecord>());
    api.op(
        Op::post("/v1/audit/verify", TAG, "Verify the audit hash chain")
            .unread_body()
            .ok::<AuditVerification>(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_their_wire_shape() {
        let token = CreatedToken {
            view: Token {
                id: "tok-1".into(),
                name: "ci".into(),
                user: "alice".into(),
                scopes: None,
                created_at: 1,
                expires_at: None,
                revoked_at: None,
                status: "active".into(),
            },
            token: "secret".into(),
        };
        let text = serde_json::to_string(&token).unwrap();
        assert_eq!(
            text,
            r#"{"id":"tok-1","name":"ci","user":"alice","scopes":null,"created_at":1,"expires_at":null,"revoked_at":null,"status":"active","token":"secret"}"#
        );
        let simulation = Simulation {
            user: "alice".into(),
            action: "nodes:List".into(),
            resource: "node/a".into(),
            context: BTreeMap::new(),
            decision: "implicit_deny".into(),
            statement: None,
            explanation: "no statement allows".into(),
            policies: vec![],
        };
        assert_eq!(
            serde_json::to_value(&simulation).unwrap()["statement"],
            Value::Null
        );
        let statement = StatementRef {
            policy: "p".into(),
            statement: 0,
            sid: None,
        };
        assert_eq!(
            serde_json::to_value(&statement).unwrap(),
            json!({"policy": "p", "statement": 0})
        );
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        assert!(serde_json::from_value::<CreateUser>(json!({"name": "a", "x": 1})).is_err());
        let token: CreateToken =
            serde_json::from_value(json!({"name": "ci", "user": null, "scopes": null})).unwrap();
        assert_eq!(token.user, None);
    }
}
