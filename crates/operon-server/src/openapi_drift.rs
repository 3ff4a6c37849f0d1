//! The hand-kept OpenAPI document against the schemas `operon-api`
//! generates from the types the server answers with.
//!
//! The document stays the one served (schemathesis reads it too): it holds
//! what the types cannot say (patterns, limits, defaults, `oneOf`s) and the
//! features whose types are not in `operon-api` yet. What both can say must
//! agree: for every generated schema, the document's schema of the same name
//! has the same properties, the same required ones, and the same types and
//! enum values where both state them, nested objects included.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Generated schemas referenced by others but inlined in the document.
const INLINED: &[&str] = &["ErrorDetail", "InvocationStatus", "NodeStatus"];

/// A schema with `$ref`s followed and `allOf`s merged.
#[derive(Debug, Default)]
struct Shape {
    types: Option<BTreeSet<String>>,
    enumeration: Option<BTreeSet<String>>,
    properties: BTreeMap<String, Value>,
    required: BTreeSet<String>,
    items: Option<Value>,
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            let target = schemas
                .get(name)
                .unwrap_or_else(|| panic!("{r}: no such schema"));
            resolve(target, schemas)
        }
        None => schema,
    }
}

fn shape(schema: &Value, schemas: &Value) -> Shape {
    let schema = resolve(schema, schemas);
    let mut out = Shape::default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let inner = shape(part, schemas);
        out.properties.extend(inner.properties);
        out.required.extend(inner.required);
        out.types = out.types.or(inner.types);
    }
    out.types = match &schema["type"] {
        Value::String(t) => Some([t.clone()].into()),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => out.types,
    };
    if let Some(values) = schema["enum"].as_array() {
        out.enumeration = Some(values.iter().map(Value::to_string).collect());
    }
    if let Some(props) = schema["properties"].as_object() {
        out.properties
            .extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out.required.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(String::from)),
    );
    out.items = schema.get("items").cloned();
    out
}

/// Differences between a generated schema and the document's, by path.
fn compare(
    at: &str,
    generated: &Value,
    gen_schemas: &Value,
    documented: &Value,
    doc_schemas: &Value,
    drift: &mut Vec<String>,
) {
    let (g, d) = (
        shape(generated, gen_schemas),
        shape(documented, doc_schemas),
    );
    if let (Some(gt), Some(dt)) = (&g.types, &d.types)
        && gt != dt
    {
        drift.push(format!("{at}: type {gt:?} generated, {dt:?} documented"));
    }
    if let (Some(ge), Some(de)) = (&g.enumeration, &d.enumeration)
        && ge != de
    {
        drift.push(format!("{at}: enum {ge:?} generated, {de:?} documented"));
    }
    // A free-form object generated (`serde_json::Value`) may be refined by
    // the document.
    if g.properties.is_empty() {
        if let (Some(gi), Some(di)) = (&g.items, &d.items) {
            compare(&format!("{at}[]"), gi, gen_schemas, di, doc_schemas, drift);
        }
        return;
    }
    let gp: BTreeSet<&String> = g.properties.keys().collect();
    let dp: BTreeSet<&String> = d.properties.keys().collect();
    if gp != dp {
        drift.push(format!(
            "{at}: properties {gp:?} generated, {dp:?} documented"
        ));
    }
    if g.required != d.required {
        drift.push(format!(
            "{at}: required {:?} generated, {:?} documented",
            g.required, d.required
        ));
    }
    for (name, schema) in &g.properties {
        if let Some(documented) = d.properties.get(name) {
            let at = format!("{at}.{name}");
            compare(&at, schema, gen_schemas, documented, doc_schemas, drift);
        }
    }
}

#[test]
fn the_documented_schemas_match_the_api_types() {
    let doc = crate::openapi::document();
    let doc_schemas = &doc["components"]["schemas"];
    let generated = serde_json::to_value(operon_api::openapi::components()).unwrap();
    let gen_schemas = &generated["schemas"];
    let mut drift = Vec::new();
    let mut compared = 0;
    for (name, schema) in gen_schemas.as_object().unwrap() {
        match doc_schemas.get(name) {
            Some(documented) => {
                compare(
                    name,
                    schema,
                    gen_schemas,
                    documented,
                    doc_schemas,
                    &mut drift,
                );
                compared += 1;
            }
            None if INLINED.contains(&name.as_str()) => {}
            None => drift.push(format!("{name}: generated, not in the document")),
        }
    }
    assert!(
        drift.is_empty(),
        "the OpenAPI document drifted:\n{}",
        drift.join("\n")
    );
    assert!(compared >= 11, "{compared} schemas compared");
}

/// The comparison notices what it is meant to.
#[test]
fn drift_is_noticed() {
    let generated = serde_json::json!({
        "A": {"type": "object", "required": ["x"], "properties": {
            "x": {"type": "integer"}, "s": {"$ref": "#/components/schemas/S"}}},
        "S": {"type": "string", "enum": ["on", "off"]}
    });
    let documented = serde_json::json!({
        "A": {"type": "object", "properties": {
            "x": {"type": "string"}, "s": {"enum": ["on"]}, "y": {}}}
    });
    let mut drift = Vec::new();
    compare(
        "A",
        &generated["A"],
        &generated,
        &documented["A"],
        &documented,
        &mut drift,
    );
    let text = drift.join("\n");
    assert!(text.contains("A: properties"), "{text}");
    assert!(text.contains("A: required"), "{text}");
    assert!(text.contains("A.x: type"), "{text}");
    assert!(text.contains("A.s: enum"), "{text}");
}
