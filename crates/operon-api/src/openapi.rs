//! The OpenAPI components generated from these types.
//!
//! The server serves a hand-kept document (`operon-server/src/openapi.json`,
//! which also describes the features whose types are not here yet); its
//! tests compare each schema generated here with the document's schema of
//! the same name and fail on drift.

use utoipa::openapi::{Components, ComponentsBuilder};

use crate::{commands, documents, error, fleet};

/// Every schema this crate generates, under the document's names
/// (`Command`, `Node`, `DocumentContent`, ...).
pub fn components() -> Components {
    ComponentsBuilder::new()
        .schema_from::<error::ErrorBody>()
        .schema_from::<error::ErrorDetail>()
        .schema_from::<commands::InvocationStatus>()
        .schema_from::<fleet::NodeStatus>()
        .schema_from::<commands::CreateCommand>()
        .schema_from::<commands::CommandSummary>()
        .schema_from::<commands::CommandView>()
        .schema_from::<commands::Invocation>()
        .schema_from::<commands::CancelRequested>()
        .schema_from::<fleet::CreateEnrollToken>()
        .schema_from::<fleet::EnrollToken>()
        .schema_from::<fleet::CreatedEnrollToken>()
        .schema_from::<fleet::Inventory>()
        .schema_from::<fleet::NodeView>()
        .schema_from::<fleet::TagChange>()
        .schema_from::<documents::CreateDocument>()
        .schema_from::<documents::UpdateDefaultVersion>()
        .schema_from::<documents::DocumentSummary>()
        .schema_from::<documents::DocumentView>()
        .schema_from::<documents::CreatedVersion>()
        .schema_from::<documents::DefaultVersionChange>()
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_type_has_a_schema() {
        let components = super::components();
        let json = serde_json::to_value(&components).unwrap();
        if std::env::var_os("OPERON_PRINT_SCHEMAS").is_some() {
            println!("{}", serde_json::to_string_pretty(&json).unwrap());
        }
        for name in [
            "Error",
            "Command",
            "CommandSummary",
            "Invocation",
            "Node",
            "DocumentContent",
            "DocumentVersion",
        ] {
            assert!(json["schemas"].get(name).is_some(), "{name}");
        }
    }
}
