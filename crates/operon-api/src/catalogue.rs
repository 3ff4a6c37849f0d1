//! The action catalogue as data: every authenticated route, the action it
//! performs and how it is authorized.
//!
//! - [`Access::Path`]: the resource is known from the path alone, so the
//!   server's route layer authorizes `action` on it and the handler does not;
//! - [`Access::Handler`]: the resource depends on the body, a query or the
//!   target's tags (commands per node, a user named in the body), so the
//!   handler or its service authorizes `action` itself;
//! - [`Access::SelfService`]: any authenticated caller (who am I, log in).
//!
//! The server's route layer (`operon_server::catalogue::authorize_route`)
//! reads this table; its tests check that it equals the OpenAPI document and
//! the router's methods.

use std::collections::HashMap;

/// How a route is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `action` on this resource template (`{param}` filled from the path).
    Path(&'static str),
    /// The handler or its service authorizes `action`.
    Handler,
    /// Any authenticated caller.
    SelfService,
}

/// One authenticated operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// The route as axum matches it (`/v1/commands/{id}`).
    pub path: &'static str,
    /// The policy action (`commands:Get`); empty for self-service routes.
    pub action: &'static str,
    pub access: Access,
    /// A read that reveals something sensitive (event payloads, execution
    /// inputs and outputs): audited like a change, with who read what.
    pub audited_read: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    action: &'static str,
    access: Access,
) -> Route {
    Route {
        method,
        path,
        action,
        access,
        audited_read: false,
    }
}

impl Route {
    pub const fn audited(mut self) -> Route {
        self.audited_read = true;
        self
    }
}

use Access::{Handler, Path as P, SelfService};

/// Every authenticated route. Public routes (health, the OpenAPI document,
/// the agent endpoints, inbound webhooks) are not here: they take no API
/// token.
pub const ROUTES: &[Route] = &[
    // Fleet
    route("GET", "/metrics", "metrics:Get", P("metrics")),
    route(
        "POST",
        "/v1/enroll-tokens",
        "enrollTokens:Create",
        P("enroll-token/*"),
    ),
    route(
        "GET",
        "/v1/enroll-tokens",
        "enrollTokens:List",
        P("enroll-token/*"),
    ),
    route(
        "POST",
        "/v1/enroll-tokens/{id}/revoke",
        "enrollTokens:Revoke",
        P("enroll-token/{id}"),
    ),
    route("GET", "/v1/nodes", "nodes:List", P("node/*")),
    route("GET", "/v1/nodes/{key}", "nodes:Get", Handler),
    route("GET", "/v1/nodes/{key}/inventory", "inventory:Get", Handler),
    route("GET", "/v1/inventory", "inventory:Query", Handler),
    // Metrics
    route("GET", "/v1/metrics/query", "metrics:Get", Handler),
    route("GET", "/v1/metrics/names", "metrics:Get", Handler),
    // Logs
    route("GET", "/v1/logs", "logs:Get", Handler),
    route("POST", "/v1/nodes/{key}/tags", "nodes:Tag", Handler),
    route("POST", "/v1/nodes/{key}/revoke", "nodes:Revoke", Handler),
    route(
        "POST",
        "/v1/nodes/{key}/rotate-credential",
        "nodes:RotateCredential",
        Handler,
    ),
    // Documents
    route("POST", "/v1/documents", "documents:Create", Handler),
    route("GET", "/v1/documents", "documents:List", P("document/*")),
    route(
        "GET",
        "/v1/documents/{name}",
        "documents:Get",
        P("document/{name}"),
    ),
    route(
        "POST",
        "/v1/documents/{name}/default-version",
        "documents:UpdateDefaultVersion",
        P("document/{name}"),
    ),
    // Commands
    route("POST", "/v1/commands", "commands:Run", Handler),
    route("GET", "/v1/commands", "commands:List", P("command/*")),
    route(
        "GET",
        "/v1/commands/{id}",
        "commands:Get",
        P("command/{id}"),
    ),
    route(
        "POST",
        "/v1/commands/{id}/cancel",
        "commands:Cancel",
        P("command/{id}"),
    ),
    route(
        "GET",
        "/v1/commands/{id}/stream",
        "commands:Get",
        P("command/{id}"),
    ),
    // Identity and audit
    route("GET", "/v1/whoami", "", SelfService),
    route("POST", "/v1/login", "", SelfService),
    route("POST", "/v1/users", "users:Create", Handler),
    route("GET", "/v1/users", "users:List", P("user/*")),
    route("GET", "/v1/users/{name}", "users:Get", P("user/{name}")),
    route(
        "POST",
        "/v1/users/{name}/disable",
        "users:Disable",
        P("user/{name}"),
    ),
    route(
        "POST",
        "/v1/users/{name}/roles",
        "users:ChangeRoles",
        P("user/{name}"),
    ),
    route("POST", "/v1/tokens", "tokens:Create", Handler),
    route("GET", "/v1/tokens", "tokens:List", Handler),
    route("POST", "/v1/tokens/{id}/revoke", "tokens:Revoke", Handler),
    route(
        "POST",
        "/v1/admin-token/rotate",
        "tokens:RotateAdmin",
        Handler,
    ),
    route("POST", "/v1/policies", "policies:Put", Handler),
    route("GET", "/v1/policies", "policies:List", P("policy/*")),
    route(
        "POST",
        "/v1/policies/simulate",
        "policies:Simulate",
        Handler,
    ),
    route(
        "GET",
        "/v1/policies/{name}",
        "policies:Get",
        P("policy/{name}"),
    ),
    route(
        "DELETE",
        "/v1/policies/{name}",
        "policies:Delete",
        P("policy/{name}"),
    ),
    route("POST", "/v1/roles", "roles:Create", Handler),
    route("GET", "/v1/roles", "roles:List", P("role/*")),
    route("GET", "/v1/roles/{name}", "roles:Get", P("role/{name}")),
    route(
        "DELETE",
        "/v1/roles/{name}",
        "roles:Delete",
        P("role/{name}"),
    ),
    route(
        "POST",
        "/v1/roles/{name}/policies",
        "roles:ChangePolicies",
        P("role/{name}"),
    ),
    route("GET", "/v1/audit", "audit:List", P("audit/*")),
    route("POST", "/v1/audit/verify", "audit:Verify", P("audit/*")),
    // Runbooks
    route("POST", "/v1/workflows", "workflows:Create", Handler),
    route("GET", "/v1/workflows", "workflows:List", P("workflow/*")),
    route(
        "GET",
        "/v1/workflows/{name}",
        "workflows:Describe",
        P("workflow/{name}"),
    ),
    route("PUT", "/v1/workflows/{name}", "workflows:Update", Handler),
    route(
        "DELETE",
        "/v1/workflows/{name}",
        "workflows:Delete",
        P("workflow/{name}"),
    ),
    route(
        "POST",
        "/v1/workflows/{name}/executions",
        "workflows:Start",
        P("workflow/{name}"),
    ),
    route("GET", "/v1/executions", "executions:List", P("execution/*")),
    route(
        "GET",
        "/v1/executions/{id}",
        "executions:Describe",
        P("execution/{id}"),
    ),
    route(
        "GET",
        "/v1/executions/{id}/history",
        "executions:GetHistory",
        P("execution/{id}"),
    )
    .audited(),
    route(
        "POST",
        "/v1/executions/{id}/stop",
        "executions:Stop",
        P("execution/{id}"),
    ),
    route(
        "POST",
        "/v1/executions/{id}/redrive",
        "executions:Redrive",
        P("execution/{id}"),
    ),
    route("GET", "/v1/approvals", "approvals:List", P("approval/*")),
    route(
        "GET",
        "/v1/approvals/{id}",
        "approvals:Describe",
        P("approval/{id}"),
    ),
    route(
        "POST",
        "/v1/approvals/{id}/approve",
        "approvals:Approve",
        Handler,
    ),
    route(
        "POST",
        "/v1/approvals/{id}/reject",
        "approvals:Approve",
        Handler,
    ),
    route(
        "POST",
        "/v1/tasks/send-success",
        "tasks:SendSuccess",
        Handler,
    ),
    route(
        "POST",
        "/v1/tasks/send-failure",
        "tasks:SendFailure",
        Handler,
    ),
    route(
        "POST",
        "/v1/tasks/send-heartbeat",
        "tasks:SendHeartbeat",
        Handler,
    ),
    // Event bus
    route("POST", "/v1/events", "events:Put", Handler),
    route("GET", "/v1/buses", "buses:List", P("bus/*")),
    route("POST", "/v1/buses", "buses:Create", Handler),
    route(
        "GET",
        "/v1/buses/{name}/tail",
        "events:Tail",
        P("bus/{name}"),
    ),
    route(
        "DELETE",
        "/v1/buses/{name}",
        "buses:Delete",
        P("bus/{name}"),
    ),
    route("GET", "/v1/rules", "rules:List", P("rule/*")),
    route(
        "GET",
        "/v1/rules/{name}",
        "rules:Describe",
        P("rule/{name}"),
    ),
    route("PUT", "/v1/rules/{name}", "rules:Put", Handler),
    route(
        "DELETE",
        "/v1/rules/{name}",
        "rules:Delete",
        P("rule/{name}"),
    ),
    route(
        "POST",
        "/v1/rules/{name}/enable",
        "rules:Enable",
        P("rule/{name}"),
    ),
    route(
        "POST",
        "/v1/rules/{name}/disable",
        "rules:Disable",
        P("rule/{name}"),
    ),
    route(
        "POST",
        "/v1/rules/{name}/test",
        "rules:Test",
        P("rule/{name}"),
    ),
    route("GET", "/v1/dlq", "dlq:List", P("dlq/*")),
    route("POST", "/v1/dlq/redrive", "dlq:Redrive", P("dlq/*")),
    route("GET", "/v1/dlq/{id}", "dlq:Show", P("dlq/{id}")).audited(),
    route("GET", "/v1/webhooks", "webhooks:List", P("webhook/*")),
    route("POST", "/v1/webhooks", "webhooks:Create", Handler),
    route(
        "DELETE",
        "/v1/webhooks/{name}",
        "webhooks:Delete",
        P("webhook/{name}"),
    ),
    route("GET", "/v1/archives", "archives:List", P("archive/*")),
    route("POST", "/v1/archives", "archives:Create", Handler),
    route(
        "DELETE",
        "/v1/archives/{name}",
        "archives:Delete",
        P("archive/{name}"),
    ),
    route("GET", "/v1/replays", "replays:List", P("replay/*")),
    route("POST", "/v1/replays", "replays:Start", Handler),
    route(
        "GET",
        "/v1/replays/{name}",
        "replays:Describe",
        P("replay/{name}"),
    ),
    // Parameter Store: the resource (`param/<name>`) is derived from the
    // name, so the service authorizes; keys by the route.
    route("PUT", "/v1/parameters/{name}", "params:Put", Handler),
    route("GET", "/v1/parameters/{name}", "params:Get", Handler),
    route("DELETE", "/v1/parameters/{name}", "params:Delete", Handler),
    route("GET", "/v1/parameters", "params:List", Handler),
    route("GET", "/v1/parameters-by-path", "params:Get", Handler),
    route(
        "GET",
        "/v1/parameters/{name}/history",
        "params:GetHistory",
        Handler,
    ),
    route(
        "POST",
        "/v1/parameters/{name}/labels",
        "params:Label",
        Handler,
    ),
    route(
        "POST",
        "/v1/parameters/{name}/unlabel",
        "params:Unlabel",
        Handler,
    ),
    route(
        "GET",
        "/v1/parameters/{name}/tags",
        "params:ListTags",
        Handler,
    ),
    route("POST", "/v1/parameters/{name}/tags", "params:Tag", Handler),
    route(
        "PUT",
        "/v1/param-syncs/{name}",
        "paramSyncs:Create",
        Handler,
    ),
    route("GET", "/v1/param-syncs", "paramSyncs:Get", Handler),
    route("GET", "/v1/param-syncs/{name}", "paramSyncs:Get", Handler),
    route(
        "DELETE",
        "/v1/param-syncs/{name}",
        "paramSyncs:Delete",
        Handler,
    ),
    route("POST", "/v1/associations", "associations:Create", Handler),
    route("GET", "/v1/associations", "associations:Get", Handler),
    route(
        "GET",
        "/v1/associations/{name}",
        "associations:Get",
        Handler,
    ),
    route(
        "PUT",
        "/v1/associations/{name}",
        "associations:Update",
        Handler,
    ),
    route(
        "DELETE",
        "/v1/associations/{name}",
        "associations:Delete",
        Handler,
    ),
    route(
        "POST",
        "/v1/associations/{name}/run",
        "associations:Run",
        Handler,
    ),
    route("GET", "/v1/compliance", "compliance:Get", Handler),
    route("GET", "/v1/compliance/summary", "compliance:Get", Handler),
    route("PUT", "/v1/alarms/{name}", "alarms:Put", Handler),
    route("GET", "/v1/alarms", "alarms:Get", Handler),
    route("GET", "/v1/alarms/{name}", "alarms:Get", Handler),
    route("GET", "/v1/alarms/{name}/history", "alarms:Get", Handler),
    route("DELETE", "/v1/alarms/{name}", "alarms:Delete", Handler),
    route(
        "POST",
        "/v1/alarms/{name}/state",
        "alarms:SetState",
        Handler,
    ),
    route("PUT", "/v1/heals/{name}", "heals:Put", Handler),
    route("GET", "/v1/heals", "heals:Get", Handler),
    route("GET", "/v1/heals/{name}", "heals:Get", Handler),
    route("DELETE", "/v1/heals/{name}", "heals:Delete", Handler),
    route("GET", "/v1/incidents", "incidents:Get", Handler),
    route("GET", "/v1/incidents/{id}", "incidents:Get", Handler),
    route(
        "POST",
        "/v1/incidents/{id}/ack",
        "incidents:Acknowledge",
        Handler,
    ),
    route(
        "POST",
        "/v1/incidents/{id}/resolve",
        "incidents:Resolve",
        Handler,
    ),
    route("PUT", "/v1/monitors/{name}", "monitors:Put", Handler),
    route("GET", "/v1/monitors", "monitors:List", Handler),
    route("GET", "/v1/monitors/{name}", "monitors:Get", Handler),
    route("DELETE", "/v1/monitors/{name}", "monitors:Delete", Handler),
    route("GET", "/v1/sessions/connect", "sessions:Start", Handler),
    route("GET", "/v1/sessions", "sessions:Get", Handler),
    route("GET", "/v1/sessions/{id}", "sessions:Get", Handler),
    route(
        "POST",
        "/v1/sessions/{id}/terminate",
        "sessions:Terminate",
        Handler,
    ),
    route(
        "GET",
        "/v1/sessions/{id}/recording",
        "sessions:GetRecording",
        Handler,
    )
    .audited(),
    route("GET", "/v1/keys", "keys:List", P("key/*")),
    route("POST", "/v1/keys/rotate", "keys:Rotate", P("key/*")),
    route("POST", "/v1/keys/rewrap", "keys:Rewrap", P("key/*")),
    route("POST", "/v1/access-keys", "accessKeys:Create", Handler),
    route("GET", "/v1/access-keys", "accessKeys:List", Handler),
    route(
        "DELETE",
        "/v1/access-keys/{id}",
        "accessKeys:Delete",
        Handler,
    ),
];

/// The catalogue entry of a method and matched route (HEAD is GET's).
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// `template` with each `{name}` replaced by that path parameter.
pub fn resource(template: &str, params: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        out.push_str(params.get(name).map_or("", String::as_str));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::SelfService;
    use std::collections::BTreeSet;

    #[test]
    fn resources_are_filled_from_path_parameters() {
        let params: HashMap<String, String> = [("id".to_string(), "c-1".to_string())].into();
        assert_eq!(resource("command/{id}", &params), "command/c-1");
        assert_eq!(resource("command/*", &params), "command/*");
        assert_eq!(resource("a/{missing}/b", &params), "a//b");
    }

    #[test]
    fn every_entry_is_unique_and_well_formed() {
        let mut seen = BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(["GET", "POST", "PUT", "DELETE"].contains(&r.method));
            match r.access {
                SelfService => assert!(r.action.is_empty()),
                _ => assert!(
                    r.action
                        .split_once(':')
                        .is_some_and(|(s, a)| !s.is_empty() && !a.is_empty()),
                    "{}",
                    r.action
                ),
            }
            if let Access::Path(template) = r.access {
                // Every parameter of the template is one of the route's.
                for part in template.split('/').filter(|p| p.starts_with('{')) {
                    assert!(r.path.contains(part), "{} {}: {part}", r.method, r.path);
                }
            }
        }
        assert_eq!(find("HEAD", "/v1/nodes"), find("GET", "/v1/nodes"));
    }
}
