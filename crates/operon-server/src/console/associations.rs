//! Desired state in the console: `/associations` (every association the
//! user may read: document, targets, schedule, mode, and how many nodes
//! comply), `/associations/{name}` (its settings, parameters, versions,
//! recent runs linked to their commands, and each node's compliance), and
//! **Apply now** / **Check now** (`POST /associations/{name}/run`).
//!
//! Why it is shaped this way: the associations service authorizes each call
//! itself (`associations:Get` per association, `associations:Run`,
//! `compliance:Get` per node), so the pages call the same principal-taking
//! methods as `/v1/associations`, and a refusal is the service's own,
//! audited there. The compliance section degrades to "not permitted" for a
//! user who may read the association but not its nodes' compliance.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use operon_api::associations::{Association, AssociationSpec};
use serde::Deserialize;

use super::ops::{ComplianceRow, section_refusal};
use super::pages::time_text;
use super::session::{SignedIn, check_csrf};
use super::{Chrome, audited, error_page, path_segment, render, service_error_page};
use crate::AppState;

const SECTION: &str = "/associations";

/// One association as a row of the list, and the head of its page.
struct AssociationRow {
    name: String,
    version: i64,
    document: String,
    targets: String,
    schedule: String,
    mode: String,
    severity: String,
    compliant: usize,
    non_compliant: usize,
    next_run: String,
}

impl AssociationRow {
    fn new(a: &Association) -> AssociationRow {
        let spec = &a.spec;
        AssociationRow {
            name: a.name.clone(),
            version: a.version,
            document: document_text(spec),
            targets: spec.targets.join(", "),
            schedule: spec.schedule.clone().unwrap_or_default(),
            mode: spec.mode.clone().unwrap_or_else(|| "apply".into()),
            severity: spec
                .compliance_severity
                .clone()
                .unwrap_or_else(|| "MEDIUM".into()),
            compliant: a.nodes.compliant,
            non_compliant: a.nodes.non_compliant,
            next_run: a.next_run_at.map(time_text).unwrap_or_default(),
        }
    }
}

/// The document's name, with the version when one is pinned (`$DEFAULT`
/// is followed when none is).
fn document_text(spec: &AssociationSpec) -> String {
    match &spec.document_version {
        Some(version) => format!("{} (version {version})", spec.document),
        None => spec.document.clone(),
    }
}

#[derive(askama::Template)]
#[template(path = "console/associations.html")]
struct AssociationsPage {
    chrome: Chrome,
    rows: Vec<AssociationRow>,
}

/// `GET /associations`: as `GET /v1/associations`.
pub(super) async fn list(State(state): State<Arc<AppState>>, signed_in: SignedIn) -> Response {
    let chrome = signed_in.chrome("Associations", SECTION);
    match state.associations().list(&signed_in.principal).await {
        Ok(list) => render(&AssociationsPage {
            chrome,
            rows: list.iter().map(AssociationRow::new).collect(),
        }),
        Err(e) => service_error_page(chrome, e),
    }
}

struct VersionRow {
    version: i64,
    document: String,
    author: String,
    created: String,
}

struct RunRow {
    command_id: String,
    version: i64,
    reason: String,
    mode: String,
    /// The node a run was for (a node joining), empty for all targets.
    node: String,
    created: String,
}

#[derive(askama::Template)]
#[template(path = "console/association.html")]
struct AssociationPage {
    chrome: Chrome,
    row: AssociationRow,
    author: String,
    updated: String,
    max_concurrency: String,
    max_errors: String,
    role: String,
    remediate_drift: bool,
    apply_only_at_cron_interval: bool,
    /// The document's parameters as indented JSON.
    parameters: String,
    versions: Vec<VersionRow>,
    runs: Vec<RunRow>,
    compliance: Result<Vec<ComplianceRow>, String>,
}

/// `GET /associations/{name}`: as `GET /v1/associations/{name}`, with its
/// nodes' compliance (`GET /v1/compliance?association=NAME`).
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let chrome = signed_in.chrome(&format!("Association {name}"), SECTION);
    let service = state.associations();
    let principal = &signed_in.principal;
    let detail = match service.get(principal, &name).await {
        Ok(detail) => detail,
        Err(e) => return service_error_page(chrome, e),
    };
    let compliance = service
        .list_compliance(principal, Some(&name), None, None)
        .await
        .map(|list| list.into_iter().map(ComplianceRow::new).collect())
        .map_err(section_refusal);
    let association = &detail.association;
    let spec = &association.spec;
    render(&AssociationPage {
        chrome,
        row: AssociationRow::new(association),
        author: association.author.clone(),
        updated: time_text(association.updated_at),
        max_concurrency: spec.max_concurrency.clone().unwrap_or_default(),
        max_errors: spec.max_errors.clone().unwrap_or_default(),
        role: spec.role.clone().unwrap_or_default(),
        remediate_drift: spec.remediate_drift,
        apply_only_at_cron_interval: spec.apply_only_at_cron_interval,
        parameters: serde_json::to_string_pretty(&spec.parameters).unwrap_or_default(),
        versions: detail
            .versions
            .iter()
            .rev()
            .map(|v| VersionRow {
                version: v.version,
                document: document_text(&v.spec),
                author: v.author.clone(),
                created: time_text(v.created_at),
            })
            .collect(),
        runs: detail
            .runs
            .into_iter()
            .map(|r| RunRow {
                command_id: r.command_id,
                version: r.version,
                reason: r.reason,
                mode: r.mode,
                node: r.node_id.unwrap_or_default(),
                created: time_text(r.created_at),
            })
            .collect(),
        compliance,
    })
}

/// The run form: the CSRF secret and which button was pressed.
#[derive(Deserialize)]
pub(super) struct RunForm {
    #[serde(default)]
    csrf: String,
    /// `apply` (Apply now, the default) or `check` (Check now).
    #[serde(default)]
    mode: String,
}

/// `POST /associations/{name}/run`: as `POST /v1/associations/{name}/run`,
/// then the command it started (or back to the association when no node
/// is targeted).
pub(super) async fn run(
    State(state): State<Arc<AppState>>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Response {
    let path = format!("/associations/{name}/run");
    if let Err(refused) = check_csrf(&state, &signed_in, &headers, &form.csrf, &path).await {
        return refused;
    }
    let check = match form.mode.as_str() {
        "" | "apply" => false,
        "check" => true,
        other => {
            return error_page(
                signed_in.chrome(&format!("Association {name}"), SECTION),
                StatusCode::BAD_REQUEST,
                "Nothing run",
                &format!("mode: '{other}' is not one of apply, check"),
            );
        }
    };
    let principal = &signed_in.principal;
    let done = state.associations().run(principal, &name, check).await;
    // The command it started, in the record, as the API's twin notes it.
    if let Ok(Some(id)) = done.as_ref().map(|started| &started.command_id) {
        principal.note("command_id", id.clone());
    }
    match audited(&state, principal, &path, done).await {
        Ok(started) => match started.command_id {
            Some(id) => Redirect::to(&format!("/commands/{}", path_segment(&id))).into_response(),
            None => Redirect::to(&format!("/associations/{}", path_segment(&name))).into_response(),
        },
        Err(e) => service_error_page(signed_in.chrome(&format!("Association {name}"), SECTION), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_reads_with_its_version_when_one_is_pinned() {
        let mut spec = AssociationSpec {
            document: "web-config".into(),
            ..AssociationSpec::default()
        };
        assert_eq!(document_text(&spec), "web-config");
        spec.document_version = Some("3".into());
        assert_eq!(document_text(&spec), "web-config (version 3)");
    }
}
