//! The OpenAPI document, generated from this crate's types.
//!
//! Each feature module lists its operations with [`Op`] (method, path,
//! summary, the request and answer types, query parameters); [`document`]
//! gathers them, adds the error answers every operation can give, and
//! collects the schema of every type named (and of the types those name)
//! into `components/schemas` through utoipa's `ToSchema`.
//!
//! What is systematic is derived, not written per operation:
//!
//! - path parameters, from the `{name}` segments of the path;
//! - the error answers (all the `Error` body): 400, 401, 403, 404 and 429 for
//!   every authenticated operation; 413, 415 and 422 where a JSON body is
//!   read (too large, wrong content type, missing or mistyped field, which
//!   the framework answers before a handler runs); more with [`Op::may`];
//! - `security: []` for the public operations ([`Op::public`]), which list
//!   their errors themselves.
//!
//! The server serves this document at `/v1/openapi.json`; nothing in it is
//! kept by hand. A new feature adds its module's `describe` to [`api`].

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use crate::{
    alarms, associations, commands, documents, error, events, fleet, heal, identity, inventory,
    logs, metrics, monitors, params, sessions, workflows,
};

/// The standard errors of an authenticated operation.
const AUTHENTICATED_ERRORS: &[u16] = &[400, 401, 403, 404, 429];
/// Errors the framework answers when it reads a JSON body.
const BODY_ERRORS: &[u16] = &[413, 415, 422];

/// No fields: the body is not read (any body, or none); send {} or nothing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct Empty {}

/// A schema and the name it has under `components/schemas`.
type NamedSchema = (String, RefOr<Schema>);

/// One operation of the API.
#[derive(Clone)]
pub struct Op {
    method: &'static str,
    path: &'static str,
    operation: Map<String, Value>,
    errors: BTreeSet<u16>,
    schemas: Vec<NamedSchema>,
}

impl Op {
    fn new(method: &'static str, path: &'static str, tag: &str, summary: &str) -> Op {
        let mut operation = Map::new();
        operation.insert("summary".into(), summary.into());
        operation.insert("tags".into(), json!([tag]));
        let parameters: Vec<Value> = path_parameters(path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        Op {
            method,
            path,
            operation,
            errors: AUTHENTICATED_ERRORS.iter().copied().collect(),
            schemas: Vec::new(),
        }
    }

    pub fn get(path: &'static str, tag: &str, summary: &str) -> Op {
        Op::new("get", path, tag, summary)
    }

    pub fn post(path: &'static str, tag: &str, summary: &str) -> Op {
        Op::new("post", path, tag, summary)
    }

    pub fn put(path: &'static str, tag: &str, summary: &str) -> Op {
        Op::new("put", path, tag, summary)
    }

    pub fn delete(path: &'static str, tag: &str, summary: &str) -> Op {
        Op::new("delete", path, tag, summary)
    }

    /// The method, lower case, and the path as axum routes it.
    pub fn route(&self) -> (&'static str, &'static str) {
        (self.method, self.path)
    }

    /// A longer description than the summary.
    pub fn describe(mut self, text: &str) -> Op {
        self.operation.insert("description".into(), text.into());
        self
    }

    /// A public operation (no API token) answering exactly these errors.
    pub fn public(mut self, errors: &[u16]) -> Op {
        self.operation.insert("security".into(), json!([]));
        self.errors = errors.iter().copied().collect();
        self
    }

    /// More error answers than the standard ones (409 Conflict, 503, ...).
    pub fn may(mut self, errors: &[u16]) -> Op {
        self.errors.extend(errors);
        self
    }

    /// A required JSON body of type `T`.
    pub fn body<T: ToSchema>(self) -> Op {
        self.collect::<T>().body_schema(reference::<T>())
    }

    /// A required JSON body described by `schema` (for a body that is
    /// not one type, such as a free-form JSON input).
    pub fn body_schema(mut self, schema: Value) -> Op {
        self.operation.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
        self.errors.extend(BODY_ERRORS);
        self
    }

    /// An optional JSON body of type `T`: when sent it must be JSON of that
    /// type (so 413, 415 and 422 can answer), and none is fine too.
    pub fn optional_body<T: ToSchema>(mut self, description: &str) -> Op {
        self = self.collect::<T>();
        self.operation.insert(
            "requestBody".into(),
            json!({
                "required": false,
                "description": description,
                "content": {"application/json": {"schema": reference::<T>()}},
            }),
        );
        self.errors.extend(BODY_ERRORS);
        self
    }

    /// A body the server does not read: any, or none.
    pub fn unread_body(mut self) -> Op {
        self = self.collect::<Empty>();
        self.operation.insert(
            "requestBody".into(),
            json!({
                "required": false,
                "description": "Not read: any body, or none",
                "content": {"application/json": {"schema": reference::<Empty>(), "example": {}}},
            }),
        );
        self
    }

    /// A required header (a webhook's signature).
    pub fn header(mut self, name: &str, description: &str) -> Op {
        let parameter = json!({
            "name": name, "in": "header", "required": true,
            "description": description, "schema": {"type": "string"},
        });
        self.operation
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters is an array")
            .push(parameter);
        self
    }

    /// An example of the request body.
    pub fn example(mut self, example: Value) -> Op {
        if let Some(content) = self
            .operation
            .get_mut("requestBody")
            .and_then(|b| b.pointer_mut("/content/application~1json"))
        {
            content["example"] = example;
        }
        self
    }

    /// A query parameter (never required: the server has a default).
    pub fn query(mut self, name: &str, schema: Value, description: &str) -> Op {
        let parameter = json!({
            "name": name, "in": "query", "required": false,
            "schema": schema, "description": description,
        });
        self.operation
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters is an array")
            .push(parameter);
        self
    }

    /// Answers 200 with a JSON `T`.
    pub fn ok<T: ToSchema>(self) -> Op {
        self.collect::<T>()
            .answers(200, "OK", "application/json", reference::<T>())
    }

    /// Answers 200 with a JSON array of `T`.
    pub fn ok_list<T: ToSchema>(self) -> Op {
        let schema = json!({"type": "array", "items": reference::<T>()});
        self.collect::<T>()
            .answers(200, "OK", "application/json", schema)
    }

    /// Answers `status` with `schema` in `content_type` (a stream, text).
    pub fn answers(
        mut self,
        status: u16,
        description: &str,
        content_type: &str,
        schema: Value,
    ) -> Op {
        let responses = self
            .operation
            .entry("responses")
            .or_insert_with(|| json!({}));
        responses[status.to_string()] = json!({
            "description": description,
            "content": {content_type: {"schema": schema}},
        });
        self
    }

    /// Answers `status` with no body described (a protocol switch).
    pub fn answers_without_body(mut self, status: u16, description: &str) -> Op {
        let responses = self
            .operation
            .entry("responses")
            .or_insert_with(|| json!({}));
        responses[status.to_string()] = json!({"description": description});
        self
    }

    /// Records `T`'s schema, and those of the types it names, for the
    /// document's components.
    pub fn collect<T: ToSchema>(mut self) -> Op {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
        self
    }

    /// The operation as the document holds it, with its error answers.
    fn into_parts(mut self) -> (Map<String, Value>, Vec<NamedSchema>) {
        let responses = self
            .operation
            .entry("responses")
            .or_insert_with(|| json!({}));
        for status in &self.errors {
            responses[status.to_string()] = json!({"$ref": "#/components/responses/Error"});
        }
        (self.operation, self.schemas)
    }
}

/// A `$ref` to `T`'s schema in the document's components.
pub fn reference<T: ToSchema>() -> Value {
    json!({"$ref": format!("#/components/schemas/{}", T::name())})
}

/// The `{name}` segments of a path.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// What a feature module adds to the document: its operations, and
/// refinements of its schemas for what the derive cannot say (`const`,
/// `propertyNames`, a `oneOf` of shapes).
#[derive(Default)]
pub struct Api {
    ops: Vec<Op>,
    refinements: Vec<(&'static str, Value)>,
}

impl Api {
    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Replaces the schema at `at` (`Schema/properties/field`, under
    /// `components/schemas`) with `schema`, keeping the generated
    /// description when `schema` has none. The document cannot be built
    /// with a refinement that names nothing, so a renamed field is noticed.
    pub fn refine(&mut self, at: &'static str, schema: Value) {
        self.refinements.push((at, schema));
    }
}

/// Everything the feature modules describe.
fn api() -> Api {
    let mut api = Api::default();
    documents::describe(&mut api);
    fleet::describe(&mut api);
    commands::describe(&mut api);
    events::describe(&mut api);
    identity::describe(&mut api);
    workflows::describe(&mut api);
    params::describe(&mut api);
    associations::describe(&mut api);
    alarms::describe(&mut api);
    heal::describe(&mut api);
    inventory::describe(&mut api);
    metrics::describe(&mut api);
    logs::describe(&mut api);
    monitors::describe(&mut api);
    sessions::describe(&mut api);
    api
}

/// Every operation this crate describes, as (method, path).
pub fn operations() -> Vec<(&'static str, &'static str)> {
    api().ops.iter().map(Op::route).collect()
}

/// The document: info, security, the error answer and every operation with
/// the schemas they name.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    // Two types of one name would silently share one schema: refused.
    let mut add = |name: String, schema: RefOr<Schema>| {
        let value = serde_json::to_value(schema).expect("a schema serialises");
        if let Some(before) = schemas.insert(name.clone(), value.clone()) {
            assert!(
                before == value,
                "two different types are both named {name} in the API document"
            );
        }
    };
    add(
        error::ErrorBody::name().into_owned(),
        error::ErrorBody::schema(),
    );
    let mut nested = Vec::new();
    error::ErrorBody::schemas(&mut nested);
    let Api { ops, refinements } = api();
    for op in ops {
        let (method, path) = op.route();
        let (operation, named) = op.into_parts();
        nested.extend(named);
        paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(method.into(), Value::Object(operation));
    }
    for (name, schema) in nested {
        add(name, schema);
    }
    for (at, refined) in refinements {
        refine(&mut schemas, at, refined);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Operon API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "servers": [{"url": "http://127.0.0.1:7780"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {
                "description": "An error: what was wrong",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }},
            "schemas": schemas,
        },
    })
}

fn refine(schemas: &mut Map<String, Value>, at: &str, mut refined: Value) {
    let (name, rest) = at.split_once('/').unwrap_or((at, ""));
    let target = schemas
        .get_mut(name)
        .and_then(|schema| match rest {
            "" => Some(schema),
            rest => schema.pointer_mut(&format!("/{rest}")),
        })
        .unwrap_or_else(|| panic!("the refinement of {at} names no generated schema"));
    if refined.get("description").is_none()
        && let Some(description) = target.get("description").cloned()
    {
        refined["description"] = description;
    }
    *target = refined;
}

const DESCRIPTION: &str = "Operon control plane. Every call needs Authorization: Bearer \
<API token> unless marked otherwise (security: []). Every error, whatever its status, is \
the JSON body {\"error\": {\"code\", \"message\"}} (the Error schema): also the framework's \
own refusals (400/422 for malformed JSON or a missing or mistyped field, 413 for a body \
over 2 MiB, 415 without content-type: application/json, 405 for a method a path does not \
serve, with Allow) and the 429 (with Retry-After) answered to an address past its rate of \
unauthenticated refusals. Times are Unix milliseconds unless named _secs.";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            assert!(doc.pointer(&r[1..]).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn operations_get_their_errors_and_path_parameters() {
        let doc = document();
        let op = &doc["paths"]["/v1/documents/{name}/default-version"]["post"];
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        for status in [
            "200", "400", "401", "403", "404", "409", "413", "415", "422", "429",
        ] {
            assert!(
                statuses.contains(&&status.to_string()),
                "{status} in {statuses:?}"
            );
        }
        assert_eq!(op["parameters"][0]["name"], "name");
        assert_eq!(op["parameters"][0]["in"], "path");
        let get = &doc["paths"]["/v1/documents"]["get"];
        assert!(get["responses"].get("415").is_none());
        assert!(get.get("security").is_none());
    }

    #[test]
    fn public_operations_list_their_own_errors() {
        let (op, _) = Op::get("/v1/health", "meta", "Health")
            .public(&[400])
            .ok::<error::ErrorBody>()
            .into_parts();
        assert_eq!(op["security"], json!([]));
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(statuses, ["200", "400"]);
    }

    #[test]
    fn optional_unread_bodies_and_headers_are_described() {
        let (op, named) = Op::post("/v1/x/{id}/stop", "t", "Stop")
            .optional_body::<error::ErrorBody>("Optional")
            .header("x-sig", "the signature")
            .ok::<Empty>()
            .into_parts();
        assert_eq!(op["requestBody"]["required"], false);
        assert!(op["responses"].get("415").is_some(), "a body that is read");
        assert_eq!(op["parameters"][1]["in"], "header");
        assert_eq!(op["parameters"][1]["required"], true);
        assert!(named.iter().any(|(name, _)| name == "Error"));
        let (op, named) = Op::post("/v1/login", "t", "Login")
            .unread_body()
            .ok::<Empty>()
            .into_parts();
        assert_eq!(op["requestBody"]["required"], false);
        assert!(op["responses"].get("415").is_none(), "a body not read");
        assert!(named.iter().any(|(name, _)| name == "Empty"));
    }

    #[test]
    fn the_refinements_written_as_json_are_kept() {
        let doc = document();
        let content = &doc["components"]["schemas"]["CreateDocument"]["properties"]["content"];
        assert_eq!(content["properties"]["schemaVersion"]["const"], "2.2");
        let name = &doc["components"]["schemas"]["CreateDocument"]["properties"]["name"];
        assert_eq!(name["pattern"], "^[A-Za-z0-9_.-]{1,128}$");
        if std::env::var_os("OPERON_PRINT_OPENAPI").is_some() {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        }
    }
}
