//! The one target grammar of commands, and target selection: pure functions.
//!
//! Whoever starts a command (a user, a rule, a runbook) names its nodes the
//! same way:
//!
//! - **node keys**: ids or names of nodes (`--node`, `node_ids`,
//!   `InstanceIds`). Each must exist and must not be revoked: naming a revoked
//!   node is an error, never silently skipped.
//! - **filters**, all of which must hold (as SSM's `Targets`):
//!   - `all` (alone): every node;
//!   - `tag:KEY=VALUE`, or SSM's `{"Key": "tag:KEY", "Values": [V1, V2]}`
//!     (the values are alternatives);
//!   - `{"Key": "tag-key", "Values": [K1, K2]}`: the node has one of the tags;
//!   - `{"Key": "InstanceIds", "Values": [...]}`: the node's id or name is one
//!     of the values;
//!   - `inventory:KIND:FILTER` (`inventory:packages:name=openssl,version<3.0.7`):
//!     the node reported at least one item of that kind the filter accepts
//!     (see `crate::inventory::filter`). Which nodes those are is read from
//!     the store by the caller and handed to [`TargetSpec::select_with`];
//!     [`TargetSpec::select`] knows of none.
//!
//!   Filters never select revoked nodes.
//!
//! The selected nodes are the named ones plus those every filter accepts,
//! without duplicates, ordered by name. An empty selection is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use operon_store::Node;
use serde_json::Value;

/// One filter of a target list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every (non-revoked) node; cannot be combined with other filters.
    All,
    /// The node's tag `key` has one of `values`.
    Tag { key: String, values: Vec<String> },
    /// The node has one of these tag keys.
    TagKey(Vec<String>),
    /// The node's id or name is one of these.
    Nodes(Vec<String>),
    /// The node has an inventory item of `kind` that `filter` accepts
    /// (the filter's text, checked when parsed).
    Inventory { kind: String, filter: String },
}

/// For each inventory filter (kind, filter text), the ids of the nodes
/// having a matching item.
pub type InventoryMatches = BTreeMap<(String, String), BTreeSet<String>>;

/// What a command is aimed at, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSpec {
    /// Node ids or names, each required to exist.
    pub nodes: Vec<String>,
    /// Filters, all of which must hold.
    pub filters: Vec<Filter>,
}

/// Why targets were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Neither nodes nor filters were given.
    Empty,
    /// A filter is malformed; `at` says which (`targets[2]`, `Targets[0].Values`).
    BadFilter { at: String, message: String },
    /// `all` was combined with other filters.
    AllCombined,
    /// A named node does not exist.
    UnknownNode(String),
    /// A named node is revoked.
    RevokedNode(String),
    /// Nothing matched.
    NoMatch(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Empty => write!(
                f,
                "no targets: give node ids (--node) or --targets tag:KEY=VALUE|all"
            ),
            TargetError::BadFilter { at, message } => write!(f, "{at}: {message}"),
            TargetError::AllCombined => {
                write!(f, "--targets all cannot be combined with tag filters")
            }
            TargetError::UnknownNode(key) => write!(f, "no node with id or name {key:?}"),
            TargetError::RevokedNode(key) => write!(f, "node {key:?} is revoked"),
            TargetError::NoMatch(targets) => write!(f, "no nodes match the targets {targets}"),
        }
    }
}

impl TargetSpec {
    /// From the command API's fields: node keys, and a list whose entries
    /// are `all`, `tag:KEY=VALUE` or SSM `{"Key", "Values"}` objects. `field`
    /// names the list in errors.
    pub fn parse(nodes: &[String], targets: &[Value], field: &str) -> Result<Self, TargetError> {
        let filters = targets
            .iter()
            .enumerate()
            .map(|(i, entry)| parse_entry(entry, &format!("{field}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = TargetSpec {
            nodes: nodes.to_vec(),
            filters,
        };
        spec.check()?;
        Ok(spec)
    }

    /// From text filters only (`all`, `tag:KEY=VALUE`).
    pub fn from_strings(nodes: &[String], targets: &[String]) -> Result<Self, TargetError> {
        let values: Vec<Value> = targets.iter().cloned().map(Value::String).collect();
        Self::parse(nodes, &values, "targets")
    }

    fn check(&self) -> Result<(), TargetError> {
        if self.nodes.is_empty() && self.filters.is_empty() {
            return Err(TargetError::Empty);
        }
        if self.filters.len() > 1 && self.filters.contains(&Filter::All) {
            return Err(TargetError::AllCombined);
        }
        Ok(())
    }

    /// The filters as people write them, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.nodes.clone();
        parts.extend(self.filters.iter().map(|f| match f {
            Filter::All => "all".to_string(),
            Filter::Tag { key, values } => format!("tag:{key}={}", values.join("|")),
            Filter::TagKey(keys) => format!("tag-key={}", keys.join("|")),
            Filter::Nodes(keys) => format!("InstanceIds={}", keys.join("|")),
            Filter::Inventory { kind, filter } => format!("inventory:{kind}:{filter}"),
        }));
        parts.join(" ")
    }

    /// The inventory filters (kind, filter text), for the caller to resolve.
    pub fn inventory_filters(&self) -> Vec<(String, String)> {
        self.filters
            .iter()
            .filter_map(|f| match f {
                Filter::Inventory { kind, filter } => Some((kind.clone(), filter.clone())),
                _ => None,
            })
            .collect()
    }

    /// The nodes these targets select among `nodes` (every enrolled node),
    /// inventory filters selecting nothing.
    pub fn select(&self, nodes: &[Node]) -> Result<Vec<Node>, TargetError> {
        self.select_with(nodes, &InventoryMatches::new())
    }

    /// [`select`](Self::select), with the nodes each inventory filter matches.
    pub fn select_with(
        &self,
        nodes: &[Node],
        inventory: &InventoryMatches,
    ) -> Result<Vec<Node>, TargetError> {
        self.check()?;
        let mut chosen: Vec<&Node> = Vec::new();
        for key in &self.nodes {
            let node = nodes
                .iter()
                .find(|n| &n.id == key || &n.name == key)
                .ok_or_else(|| TargetError::UnknownNode(key.clone()))?;
            if node.revoked_at.is_some() {
                return Err(TargetError::RevokedNode(key.clone()));
            }
            if !chosen.iter().any(|c| c.id == node.id) {
                chosen.push(node);
            }
        }
        if !self.filters.is_empty() {
            for node in nodes.iter().filter(|n| n.revoked_at.is_none()) {
                if self.filters.iter().all(|f| f.accepts(node, inventory))
                    && !chosen.iter().any(|c| c.id == node.id)
                {
                    chosen.push(node);
                }
            }
        }
        if chosen.is_empty() {
            return Err(TargetError::NoMatch(self.describe()));
        }
        let mut chosen: Vec<Node> = chosen.into_iter().cloned().collect();
        chosen.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(chosen)
    }
}

/// Narrow `bound` (a rule target's own targets) to what an event `asked`
/// for: the nodes the event selects, each of which must also be selected by
/// the bound. An event can aim a rule at fewer nodes, never at others, so
/// whoever may put events cannot widen a rule's reach. Returns the chosen
/// nodes as an id-only spec, or why the event was refused.
pub fn narrow(
    bound: &TargetSpec,
    asked: &TargetSpec,
    nodes: &[Node],
) -> Result<TargetSpec, String> {
    if bound.nodes.is_empty() && bound.filters.is_empty() {
        return Err(
            "the event names nodes, but the target has no NodeIds or Targets of its own to bound them"
                .into(),
        );
    }
    let within = bound.select(nodes).map_err(|e| e.to_string())?;
    let chosen = asked.select(nodes).map_err(|e| e.to_string())?;
    let outside: Vec<&str> = chosen
        .iter()
        .filter(|n| !within.iter().any(|w| w.id == n.id))
        .map(|n| n.name.as_str())
        .collect();
    if !outside.is_empty() {
        return Err(format!(
            "the event asks for nodes outside the target's own targets ({}): {}",
            bound.describe(),
            outside.join(", ")
        ));
    }
    Ok(TargetSpec {
        nodes: chosen.into_iter().map(|n| n.id).collect(),
        filters: Vec::new(),
    })
}

impl Filter {
    fn accepts(&self, node: &Node, inventory: &InventoryMatches) -> bool {
        match self {
            Filter::Inventory { kind, filter } => inventory
                .get(&(kind.clone(), filter.clone()))
                .is_some_and(|ids| ids.contains(&node.id)),
            Filter::All => true,
            Filter::Tag { key, values } => node.tags.get(key).is_some_and(|v| values.contains(v)),
            Filter::TagKey(keys) => keys.iter().any(|k| node.tags.contains_key(k)),
            Filter::Nodes(keys) => keys.iter().any(|k| k == &node.id || k == &node.name),
        }
    }
}

fn parse_entry(entry: &Value, at: &str) -> Result<Filter, TargetError> {
    let bad = |message: String| TargetError::BadFilter {
        at: at.to_string(),
        message,
    };
    match entry {
        Value::String(text) if text.starts_with("inventory:") => parse_inventory(text).map_err(bad),
        Value::String(text) => parse_text(text).ok_or_else(|| {
            bad(format!(
                "invalid target {text:?}: expected tag:KEY=VALUE, inventory:KIND:FILTER or all"
            ))
        }),
        Value::Object(map) => {
            let key = map
                .get("Key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Key must be a string".into()))?;
            let values: Vec<String> = map
                .get("Values")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
                .ok_or_else(|| bad("Values must be a list of strings".into()))?;
            if values.is_empty() {
                return Err(bad("Values must not be empty".into()));
            }
            if let Some(unknown) = map.keys().find(|k| *k != "Key" && *k != "Values") {
                return Err(bad(format!("unknown field {unknown:?}")));
            }
            match key {
                "InstanceIds" => Ok(Filter::Nodes(values)),
                "tag-key" => Ok(Filter::TagKey(values)),
                tag => match tag.strip_prefix("tag:") {
                    Some(name) if !name.is_empty() => Ok(Filter::Tag {
                        key: name.to_string(),
                        values,
                    }),
                    _ => Err(bad(format!(
                        "Key {key:?}: expected tag:NAME, tag-key or InstanceIds"
                    ))),
                },
            }
        }
        other => Err(bad(format!(
            "expected \"tag:KEY=VALUE\", \"all\" or {{\"Key\", \"Values\"}}, got {other}"
        ))),
    }
}

/// `inventory:KIND:FILTER`; KIND may itself be `custom:NAME`.
fn parse_inventory(text: &str) -> Result<Filter, String> {
    let rest = text.strip_prefix("inventory:").unwrap_or(text);
    let (kind, filter) = match rest.strip_prefix("custom:") {
        Some(custom) => {
            let (name, filter) = custom.split_once(':').unwrap_or((custom, ""));
            (format!("custom:{name}"), filter)
        }
        None => {
            let (kind, filter) = rest.split_once(':').unwrap_or((rest, ""));
            (kind.to_string(), filter)
        }
    };
    if !operon_proto::valid_inventory_kind(&kind) {
        return Err(format!(
            "invalid target {text:?}: unknown inventory type {kind:?} (one of {}, custom:NAME)",
            operon_proto::INVENTORY_KINDS.join(", ")
        ));
    }
    crate::inventory::filter::Filter::parse(filter)
        .map_err(|e| format!("invalid target {text:?}: {e}"))?;
    Ok(Filter::Inventory {
        kind,
        filter: filter.to_string(),
    })
}

fn parse_text(text: &str) -> Option<Filter> {
    if text == "all" {
        return Some(Filter::All);
    }
    let (key, value) = text.strip_prefix("tag:")?.split_once('=')?;
    (!key.is_empty()).then(|| Filter::Tag {
        key: key.to_string(),
        values: vec![value.to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn node(id: &str, name: &str, tags: &[(&str, &str)], revoked: bool) -> Node {
        Node {
            id: id.into(),
            name: name.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            inventory: Default::default(),
            enrolled_at: 0,
            last_seen: None,
            revoked_at: revoked.then_some(1),
        }
    }

    #[test]
    fn events_narrow_a_target_and_never_widen_it() {
        let fleet = fleet();
        let spec = |nodes: &[&str], targets: &[&str]| {
            let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
            let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
            TargetSpec::from_strings(&nodes, &targets).unwrap()
        };
        let prod = spec(&[], &["tag:env=prod"]);
        let ids = |s: TargetSpec| s.nodes;
        assert_eq!(
            ids(narrow(&prod, &spec(&["db-1"], &[]), &fleet).unwrap()),
            ["n-2"]
        );
        assert_eq!(
            ids(narrow(&prod, &spec(&[], &["tag:role=db"]), &fleet).unwrap()),
            ["n-2"]
        );
        let wider = narrow(&prod, &spec(&[], &["all"]), &fleet).unwrap_err();
        assert!(
            wider.contains("outside") && wider.contains("web-1"),
            "{wider}"
        );
        let other = narrow(&prod, &spec(&["web-1"], &[]), &fleet).unwrap_err();
        assert!(other.contains("web-1"), "{other}");
        let unbounded = TargetSpec::default();
        assert!(narrow(&unbounded, &spec(&["db-1"], &[]), &fleet).is_err());
        let everything = spec(&[], &["all"]);
        assert_eq!(
            ids(narrow(&everything, &spec(&["web-1", "db-1"], &[]), &fleet).unwrap()),
            ["n-2", "n-1"]
        );
        let revoked = narrow(&everything, &spec(&["old-1"], &[]), &fleet).unwrap_err();
        assert!(revoked.contains("old-1"), "{revoked}");
    }

    fn fleet() -> Vec<Node> {
        vec![
            node("n-3", "web-2", &[("env", "prod"), ("role", "web")], false),
            node(
                "n-1",
                "web-1",
                &[("env", "staging"), ("role", "web")],
                false,
            ),
            node("n-2", "db-1", &[("env", "prod"), ("role", "db")], false),
            node("n-4", "old-1", &[("env", "prod"), ("role", "web")], true),
            node("n-5", "bare", &[], false),
        ]
    }

    fn names(spec: &TargetSpec) -> Result<Vec<String>, TargetError> {
        spec.select(&fleet())
            .map(|nodes| nodes.into_iter().map(|n| n.name).collect())
    }

    fn spec(nodes: &[&str], targets: Value) -> Result<TargetSpec, TargetError> {
        let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        TargetSpec::parse(&nodes, targets.as_array().unwrap(), "targets")
    }

    #[test]
    fn text_and_ssm_forms_select_the_same_nodes() {
        let text = spec(&[], json!(["tag:env=prod", "tag:role=web"])).unwrap();
        let ssm = spec(
            &[],
            json!([{"Key": "tag:env", "Values": ["prod"]}, {"Key": "tag:role", "Values": ["web"]}]),
        )
        .unwrap();
        assert_eq!(text, ssm);
        assert_eq!(names(&text).unwrap(), ["web-2"]);
    }

    #[test]
    fn ssm_values_are_alternatives_and_entries_must_all_hold() {
        let s = spec(
            &[],
            json!([{"Key": "tag:env", "Values": ["prod", "staging"]}]),
        )
        .unwrap();
        assert_eq!(names(&s).unwrap(), ["db-1", "web-1", "web-2"]);
        let s = spec(
            &[],
            json!([{"Key": "tag:env", "Values": ["prod", "staging"]}, "tag:role=db"]),
        )
        .unwrap();
        assert_eq!(names(&s).unwrap(), ["db-1"]);
        let s = spec(&[], json!([{"Key": "tag-key", "Values": ["role"]}])).unwrap();
        assert_eq!(names(&s).unwrap(), ["db-1", "web-1", "web-2"]);
        let s = spec(
            &[],
            json!([{"Key": "InstanceIds", "Values": ["n-2", "web-1", "nope"]}]),
        )
        .unwrap();
        assert_eq!(names(&s).unwrap(), ["db-1", "web-1"]);
    }

    #[test]
    fn all_selects_every_node_that_is_not_revoked() {
        let s = spec(&[], json!(["all"])).unwrap();
        assert_eq!(names(&s).unwrap(), ["bare", "db-1", "web-1", "web-2"]);
    }

    #[test]
    fn all_cannot_be_combined() {
        assert_eq!(
            spec(&[], json!(["all", "tag:env=prod"])),
            Err(TargetError::AllCombined)
        );
    }

    #[test]
    fn named_nodes_by_id_or_name_are_added_to_filter_matches_once() {
        let s = spec(&["n-1", "web-2"], json!(["tag:role=web"])).unwrap();
        assert_eq!(names(&s).unwrap(), ["web-1", "web-2"]);
        let s = spec(&["db-1", "n-2"], json!([])).unwrap();
        assert_eq!(names(&s).unwrap(), ["db-1"]);
    }

    #[test]
    fn one_revoked_node_rule_named_is_an_error_filtered_is_skipped() {
        let s = spec(&["old-1"], json!([])).unwrap();
        assert_eq!(names(&s), Err(TargetError::RevokedNode("old-1".into())));
        let s = spec(&["n-4"], json!(["all"])).unwrap();
        assert_eq!(names(&s), Err(TargetError::RevokedNode("n-4".into())));
        let s = spec(&[], json!([{"Key": "InstanceIds", "Values": ["old-1"]}])).unwrap();
        assert!(matches!(names(&s), Err(TargetError::NoMatch(_))));
        let s = spec(&[], json!(["tag:env=prod", "tag:role=web"])).unwrap();
        assert_eq!(names(&s).unwrap(), ["web-2"]);
    }

    #[test]
    fn unknown_nodes_and_empty_selections_are_errors() {
        let s = spec(&["ghost"], json!([])).unwrap();
        assert_eq!(names(&s), Err(TargetError::UnknownNode("ghost".into())));
        let s = spec(&[], json!(["tag:env=dev"])).unwrap();
        assert_eq!(names(&s), Err(TargetError::NoMatch("tag:env=dev".into())));
        assert_eq!(spec(&[], json!([])), Err(TargetError::Empty));
    }

    #[test]
    fn malformed_entries_name_where_they_are() {
        let cases = [
            (
                json!(["env=prod"]),
                "targets[0]: invalid target \"env=prod\"",
            ),
            (
                json!(["all", "tag:=x"]),
                "targets[1]: invalid target \"tag:=x\"",
            ),
            (
                json!([{"Key": "tag:env"}]),
                "targets[0]: Values must be a list",
            ),
            (
                json!([{"Key": "tag:env", "Values": []}]),
                "targets[0]: Values must not be empty",
            ),
            (
                json!([{"Key": "tag:env", "Values": [1]}]),
                "targets[0]: Values must be a list",
            ),
            (
                json!([{"Values": ["x"]}]),
                "targets[0]: Key must be a string",
            ),
            (
                json!([{"Key": "color", "Values": ["x"]}]),
                "targets[0]: Key \"color\"",
            ),
            (
                json!([{"Key": "tag:", "Values": ["x"]}]),
                "targets[0]: Key \"tag:\"",
            ),
            (
                json!([{"Key": "tag:a", "Values": ["x"], "Extra": 1}]),
                "unknown field \"Extra\"",
            ),
            (json!(["tag:a=b", 7]), "targets[1]: expected"),
        ];
        for (targets, expected) in cases {
            let err = spec(&[], targets.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{targets}: {err}");
        }
    }

    #[test]
    fn tag_values_may_contain_equals_signs_and_be_empty() {
        let s = TargetSpec::from_strings(&[], &["tag:k=a=b".into()]).unwrap();
        assert_eq!(
            s.filters,
            [Filter::Tag {
                key: "k".into(),
                values: vec!["a=b".into()]
            }]
        );
        let s = TargetSpec::from_strings(&[], &["tag:k=".into()]).unwrap();
        assert_eq!(
            s.filters,
            [Filter::Tag {
                key: "k".into(),
                values: vec![String::new()]
            }]
        );
    }

    #[test]
    fn inventory_targets_select_the_nodes_with_a_matching_item() {
        let targets = |t: &[&str]| {
            let t: Vec<String> = t.iter().map(|s| s.to_string()).collect();
            TargetSpec::from_strings(&[], &t)
        };
        let spec = targets(&["inventory:packages:name=openssl,version<3.0.7"]).unwrap();
        assert_eq!(
            spec.filters,
            [Filter::Inventory {
                kind: "packages".into(),
                filter: "name=openssl,version<3.0.7".into()
            }]
        );
        assert_eq!(
            spec.inventory_filters(),
            [(
                "packages".to_string(),
                "name=openssl,version<3.0.7".to_string()
            )]
        );
        let custom = targets(&["inventory:custom:apps:name=billing"]).unwrap();
        assert_eq!(
            custom.filters,
            [Filter::Inventory {
                kind: "custom:apps".into(),
                filter: "name=billing".into()
            }]
        );
        // A kind alone: nodes with any item of it.
        let any = targets(&["inventory:ports"]).unwrap();
        assert_eq!(any.describe(), "inventory:ports:");

        // The matches come from the caller; revoked nodes never count, and
        // inventory filters combine with tags like any other filter.
        let matches = InventoryMatches::from([(
            (
                "packages".to_string(),
                "name=openssl,version<3.0.7".to_string(),
            ),
            ["n-1", "n-2", "n-4"]
                .map(String::from)
                .into_iter()
                .collect(),
        )]);
        let names = |spec: &TargetSpec| -> Vec<String> {
            spec.select_with(&fleet(), &matches)
                .unwrap()
                .into_iter()
                .map(|n| n.name)
                .collect()
        };
        assert_eq!(names(&spec), ["db-1", "web-1"]);
        let prod = targets(&[
            "inventory:packages:name=openssl,version<3.0.7",
            "tag:env=prod",
        ])
        .unwrap();
        assert_eq!(names(&prod), ["db-1"]);
        // Without matches (select), an inventory filter selects nothing.
        assert!(matches!(
            spec.select(&fleet()),
            Err(TargetError::NoMatch(_))
        ));

        for (bad, want) in [
            (
                "inventory:kernels:name=x",
                "unknown inventory type \"kernels\"",
            ),
            (
                "inventory:custom::name=x",
                "unknown inventory type \"custom:\"",
            ),
            ("inventory:packages:name~(", "bad regular expression"),
            ("inventory:packages:version", "has no operator"),
        ] {
            let err = targets(&[bad]).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
            assert!(err.starts_with("targets[0]"), "{err}");
        }
    }
}
