//! The documents service: the only code that stores or reads command
//! documents. `AWS-RunShellScript` is built in and cannot be replaced.

use operon_store::Store;
use operon_store::prelude::*;
use serde_json::Value;

use super::{RUN_SHELL_SCRIPT, parse_document, run_shell_script_document};
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// A stored document's name and version, for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DocumentSummary {
    pub name: String,
    pub version: i64,
    /// Absent for the built-in document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
}

pub struct DocumentService<'a> {
    pub(crate) store: &'a Store,
}

impl DocumentService<'_> {
    /// Validate and store a new version of `name`; returns the version.
    pub async fn create(&self, name: &str, content: &Value) -> ServiceResult<i64> {
        check_name(name)?;
        if name == RUN_SHELL_SCRIPT {
            return Err(ServiceError::conflict(
                "BuiltinDocument",
                format!("{RUN_SHELL_SCRIPT} is built in and cannot be replaced"),
            ));
        }
        parse_document(content).map_err(|e| {
            ServiceError::invalid("InvalidDocument", format!("invalid document: {e}"))
        })?;
        Ok(self.store.put_document(name, content, now_millis()).await?)
    }

    /// The built-in document, then every stored one (latest versions).
    pub async fn list(&self) -> ServiceResult<Vec<DocumentSummary>> {
        let mut out = vec![DocumentSummary {
            name: RUN_SHELL_SCRIPT.into(),
            version: 1,
            created_at: None,
            builtin: true,
        }];
        for doc in self.store.list_documents().await? {
            out.push(DocumentSummary {
                name: doc.name,
                version: doc.version,
                created_at: Some(doc.created_at),
                builtin: false,
            });
        }
        Ok(out)
    }

    /// A document's version and content (the latest unless one is named).
    pub async fn get(&self, name: &str, version: Option<i64>) -> ServiceResult<(i64, Value)> {
        load_document(self.store, name, version).await
    }
}

/// A document's version and content (the latest version unless one is named).
pub async fn load_document(
    store: &Store,
    name: &str,
    version: Option<i64>,
) -> ServiceResult<(i64, Value)> {
    if name == RUN_SHELL_SCRIPT {
        return Ok((1, run_shell_script_document()));
    }
    let doc = store
        .document(name, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => ServiceError::not_found(
                "NoSuchDocument",
                format!("document {name:?} has no version {v}"),
            ),
            None => {
                ServiceError::not_found("NoSuchDocument", format!("no document named {name:?}"))
            }
        })?;
    Ok((doc.version, doc.content))
}

/// 1 to 128 of letters, digits, `_`, `-`, `.`.
fn check_name(name: &str) -> ServiceResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "InvalidName",
            format!("invalid document name {name:?}: 1 to 128 of letters, digits, '_', '-', '.'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ErrorKind;
    use serde_json::json;

    fn doc() -> Value {
        json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]})
    }

    #[tokio::test]
    async fn versions_names_and_the_builtin_document() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let docs = DocumentService { store: &store };
        assert_eq!(docs.create("deploy", &doc()).await.unwrap(), 1);
        assert_eq!(docs.create("deploy", &doc()).await.unwrap(), 2);
        assert_eq!(docs.get("deploy", None).await.unwrap().0, 2);
        assert_eq!(docs.get("deploy", Some(1)).await.unwrap().0, 1);
        let missing = docs.get("deploy", Some(3)).await.unwrap_err();
        assert_eq!(
            (missing.kind, missing.code),
            (ErrorKind::NotFound, "NoSuchDocument")
        );
        let builtin = docs.create(RUN_SHELL_SCRIPT, &doc()).await.unwrap_err();
        assert_eq!(builtin.kind, ErrorKind::Conflict);
        for bad in ["", "a b", "x/y", &"n".repeat(129)] {
            let e = docs.create(bad, &doc()).await.unwrap_err();
            assert_eq!(
                (e.kind, e.code),
                (ErrorKind::Invalid, "InvalidName"),
                "{bad:?}"
            );
        }
        let invalid = docs
            .create("broken", &json!({"schemaVersion": "2.2"}))
            .await
            .unwrap_err();
        assert_eq!(invalid.code, "InvalidDocument");
        let names: Vec<String> = docs
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, [RUN_SHELL_SCRIPT, "deploy"]);
    }
}
