//! The fleet and command pages: each authorizes through the services (or
//! [`gate`](super::gate)) with the signed-in principal, then renders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use operon_api::fleet::NodeStatus;
use operon_proto::InvocationStatus;
use serde::Deserialize;

use super::session::{SignedIn, resolve};
use super::{Chrome, gate, render, service_error_page};
use crate::AppState;
use crate::fleet::service::NodeView;
use crate::service::ServiceError;

/// How many commands a node page lists.
const NODE_RECENT_COMMANDS: i64 = 20;
/// How many commands the history lists.
const HISTORY_LENGTH: i64 = 50;

/// `GET /`: the fleet when signed in, the sign-in form otherwise.
pub(super) async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match resolve(&state, &headers).await {
        Some(_) => Redirect::to("/nodes").into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

/// One node as a row of the fleet table.
struct NodeRow {
    name: String,
    status: &'static str,
    tags: Vec<String>,
    os: String,
    agent_version: String,
    last_seen: String,
}

impl NodeRow {
    fn new(view: NodeView) -> NodeRow {
        let node = view.node;
        NodeRow {
            status: status_name(view.status),
            tags: node.tags.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            os: os_text(&node.inventory),
            agent_version: node.inventory.agent_version.clone(),
            last_seen: node.last_seen.map_or_else(|| "never".into(), time_text),
            name: node.name,
        }
    }
}

fn status_name(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Online => "online",
        NodeStatus::Offline => "offline",
        NodeStatus::Revoked => "revoked",
    }
}

fn os_text(inventory: &operon_proto::Inventory) -> String {
    format!("{} {}", inventory.os_name, inventory.os_version)
        .trim()
        .to_string()
}

/// Milliseconds since the epoch as a UTC time people read.
pub(super) fn time_text(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Nodes per fleet page: a page of a large fleet stays small and fast.
const NODES_PER_PAGE: usize = 100;

/// Which slice of a filtered list a page shows.
#[derive(Debug, PartialEq)]
pub(crate) struct Pager {
    /// The page shown, from 1, clamped to the pages there are.
    pub page: usize,
    /// How many pages there are (at least 1).
    pub pages: usize,
    /// The first row shown, from 0.
    pub start: usize,
    /// One past the last row shown.
    pub end: usize,
}

impl Pager {
    /// Page `asked` (from 1; 0 reads as 1, past the end as the last page)
    /// of `total` rows, `per_page` a page.
    pub(crate) fn new(total: usize, asked: usize, per_page: usize) -> Pager {
        let per_page = per_page.max(1);
        let pages = total.div_ceil(per_page).max(1);
        let page = asked.clamp(1, pages);
        let start = ((page - 1) * per_page).min(total);
        Pager {
            page,
            pages,
            start,
            end: (start + per_page).min(total),
        }
    }

    pub(crate) fn previous(&self) -> Option<usize> {
        (self.page > 1).then(|| self.page - 1)
    }

    pub(crate) fn next(&self) -> Option<usize> {
        (self.page < self.pages).then(|| self.page + 1)
    }
}

/// The fleet page's filters, a GET form.
#[derive(Deserialize, Default)]
pub(super) struct NodeFilter {
    /// `KEY=VALUE`, or `KEY` for any value.
    #[serde(default)]
    tag: String,
    /// `online`, `offline`, `revoked`, or empty for all.
    #[serde(default)]
    status: String,
    /// The page of the matching nodes, from 1.
    #[serde(default)]
    page: usize,
}

impl NodeFilter {
    fn keeps(&self, row: &NodeRow) -> bool {
        let tag = self.tag.trim();
        let tag_ok = tag.is_empty()
            || row.tags.iter().any(|t| {
                t == tag || (!tag.contains('=') && t.split_once('=').is_some_and(|(k, _)| k == tag))
            });
        let status_ok = self.status.is_empty() || self.status == row.status;
        tag_ok && status_ok
    }
}

#[derive(askama::Template)]
#[template(path = "console/nodes.html")]
struct NodesPage {
    chrome: Chrome,
    rows: Vec<NodeRow>,
    /// Nodes in the fleet, and of those, matching the filters.
    total: usize,
    matching: usize,
    pager: Pager,
    tag: String,
    status: String,
    statuses: &'static [&'static str],
}

/// `GET /nodes`: the fleet, filtered by tag and status. Allowed as
/// `GET /v1/nodes` is (`nodes:List`).
pub(super) async fn nodes(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<NodeFilter>,
) -> Response {
    let chrome = signed_in.chrome("Fleet", "/nodes");
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/nodes",
            &HashMap::new(),
        )
        .await?;
        state.fleet().list().await
    };
    let views = match listed.await {
        Ok(views) => views,
        Err(e) => return service_error_page(chrome, e),
    };
    let total = views.len();
    let mut rows: Vec<NodeRow> = views
        .into_iter()
        .map(NodeRow::new)
        .filter(|row| filter.keeps(row))
        .collect();
    let matching = rows.len();
    let pager = Pager::new(matching, filter.page, NODES_PER_PAGE);
    rows.truncate(pager.end);
    rows.drain(..pager.start);
    render(&NodesPage {
        chrome,
        rows,
        total,
        matching,
        pager,
        tag: filter.tag,
        status: filter.status,
        statuses: &["online", "offline", "revoked"],
    })
}

/// One of a node's recent commands.
struct InvocationRow {
    command_id: String,
    status: &'static str,
    exit_code: String,
    finished: String,
}

#[derive(askama::Template)]
#[template(path = "console/node.html")]
struct NodePage {
    chrome: Chrome,
    row: NodeRow,
    id: String,
    facts: Vec<(&'static str, String)>,
    tags: BTreeMap<String, String>,
    /// `Err` holds why the commands are not shown (a refusal).
    commands: Result<Vec<InvocationRow>, String>,
    /// The node's compliance, or why it is not shown.
    compliance: Result<Vec<super::ops::ComplianceRow>, String>,
    /// The node's metrics charts, or why they are not shown.
    charts: Result<Vec<super::ops::ChartView>, String>,
}

/// `GET /nodes/{name}`: a node, its inventory summary, its recent
/// commands, compliance and metrics. Allowed as `GET /v1/nodes/{key}` is
/// (`nodes:Get` with the node's tags); its commands as `GET /v1/commands`
/// (`commands:List`), its compliance as `GET /v1/compliance` and its
/// metrics as `GET /v1/metrics/query`, each section "not permitted" alone.
pub(super) async fn node(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Node {name}"), "/nodes");
    let fleet = state.fleet();
    let node = match fleet
        .find_for(&signed_in.principal, "nodes:Get", &name)
        .await
    {
        Ok(node) => node,
        Err(e) => return service_error_page(chrome, e),
    };
    let commands = recent_commands(&state, &signed_in, &node.id).await;
    let compliance = super::ops::node_compliance(&state, &signed_in, &node.id).await;
    let charts = super::ops::node_charts(&state, &signed_in, &node.name).await;
    let inventory = &node.inventory;
    let facts = vec![
        ("Hostname", inventory.hostname.clone()),
        ("Operating system", os_text(inventory)),
        ("Kernel", inventory.kernel.clone()),
        ("Architecture", inventory.arch.clone()),
        ("CPUs", inventory.cpus.to_string()),
        ("Memory", memory_text(inventory.memory_bytes)),
        ("IP addresses", inventory.ip_addresses.join(", ")),
        ("Enrolled", time_text(node.enrolled_at)),
    ];
    let id = node.id.clone();
    let tags = node.tags.clone();
    render(&NodePage {
        chrome,
        row: NodeRow::new(fleet.view(node)),
        id,
        facts,
        tags,
        commands,
        compliance,
        charts,
    })
}

/// A node's recent commands, or why the user may not see them.
async fn recent_commands(
    state: &AppState,
    signed_in: &SignedIn,
    node_id: &str,
) -> Result<Vec<InvocationRow>, String> {
    let listed = async {
        gate(
            state,
            &signed_in.principal,
            "GET",
            "/v1/commands",
            &HashMap::new(),
        )
        .await?;
        state
            .commands()
            .recent_on_node(node_id, NODE_RECENT_COMMANDS)
            .await
    };
    let invocations = listed.await.map_err(|e: ServiceError| e.message)?;
    Ok(invocations
        .into_iter()
        .map(|i| InvocationRow {
            command_id: i.command_id,
            status: i.status.as_str(),
            exit_code: i.exit_code.map_or_else(String::new, |c| c.to_string()),
            finished: i.finished_at.map_or_else(String::new, time_text),
        })
        .collect())
}

fn memory_text(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// The history's filter, a GET form.
#[derive(Deserialize, Default)]
pub(super) struct CommandFilter {
    /// A command status (`Success`, `Failed`, ...), or empty for all.
    #[serde(default)]
    status: String,
}

/// One command of the history.
struct CommandRow {
    id: String,
    document: String,
    status: &'static str,
    targets: usize,
    completed: usize,
    errors: usize,
    requested_by: String,
    created: String,
}

#[derive(askama::Template)]
#[template(path = "console/commands.html")]
struct CommandsPage {
    chrome: Chrome,
    rows: Vec<CommandRow>,
    status: String,
    statuses: Vec<&'static str>,
}

/// `GET /commands`: the newest commands, by status. Allowed as
/// `GET /v1/commands` is (`commands:List`).
pub(super) async fn commands(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Query(filter): Query<CommandFilter>,
) -> Response {
    let chrome = signed_in.chrome("Commands", "/commands");
    let status = InvocationStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == filter.status);
    let listed = async {
        gate(
            &state,
            &signed_in.principal,
            "GET",
            "/v1/commands",
            &HashMap::new(),
        )
        .await?;
        state.commands().history(status, HISTORY_LENGTH).await
    };
    let views = match listed.await {
        Ok(views) => views,
        Err(e) => return service_error_page(chrome, e),
    };
    let rows = views
        .into_iter()
        .map(|v| CommandRow {
            document: format!(
                "{} v{}",
                v.command.document_name, v.command.document_version
            ),
            status: v.command.status.as_str(),
            targets: v.target_count,
            completed: v.completed_count,
            errors: v.error_count,
            requested_by: v.command.requested_by,
            created: time_text(v.command.created_at),
            id: v.command.id,
        })
        .collect();
    render(&CommandsPage {
        chrome,
        rows,
        status: status.map_or_else(String::new, |s| s.as_str().to_string()),
        statuses: InvocationStatus::ALL.iter().map(|s| s.as_str()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager(page: usize, pages: usize, start: usize, end: usize) -> Pager {
        Pager {
            page,
            pages,
            start,
            end,
        }
    }

    #[test]
    fn pages_are_slices_clamped_to_the_rows_there_are() {
        assert_eq!(Pager::new(0, 1, 100), pager(1, 1, 0, 0));
        assert_eq!(Pager::new(0, 7, 100), pager(1, 1, 0, 0));
        assert_eq!(Pager::new(3, 0, 100), pager(1, 1, 0, 3));
        assert_eq!(Pager::new(100, 1, 100), pager(1, 1, 0, 100));
        assert_eq!(Pager::new(101, 2, 100), pager(2, 2, 100, 101));
        assert_eq!(Pager::new(1000, 10, 100), pager(10, 10, 900, 1000));
        assert_eq!(Pager::new(1000, 11, 100), pager(10, 10, 900, 1000));
        assert_eq!(Pager::new(1000, usize::MAX, 100), pager(10, 10, 900, 1000));
        assert_eq!(
            Pager::new(5, 3, 0),
            pager(3, 5, 2, 3),
            "0 a page reads as 1"
        );
    }

    #[test]
    fn previous_and_next_exist_only_inside_the_pages() {
        let first = Pager::new(250, 1, 100);
        assert_eq!((first.previous(), first.next()), (None, Some(2)));
        let middle = Pager::new(250, 2, 100);
        assert_eq!((middle.previous(), middle.next()), (Some(1), Some(3)));
        let last = Pager::new(250, 3, 100);
        assert_eq!((last.previous(), last.next()), (Some(2), None));
        let only = Pager::new(10, 1, 100);
        assert_eq!((only.previous(), only.next()), (None, None));
    }

    fn row(status: &'static str, tags: &[&str]) -> NodeRow {
        NodeRow {
            name: "n".into(),
            status,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            os: String::new(),
            agent_version: String::new(),
            last_seen: String::new(),
        }
    }

    #[test]
    fn the_fleet_filter_matches_tags_by_pair_or_key_and_status_exactly() {
        let filter = |tag: &str, status: &str| NodeFilter {
            tag: tag.into(),
            status: status.into(),
            page: 1,
        };
        let prod = row("online", &["env=prod", "role=web"]);
        assert!(filter("", "").keeps(&prod));
        assert!(filter("env=prod", "").keeps(&prod));
        assert!(filter("env", "online").keeps(&prod));
        assert!(!filter("env=dev", "").keeps(&prod));
        assert!(!filter("en", "").keeps(&prod));
        assert!(!filter("", "offline").keeps(&prod));
    }
}
