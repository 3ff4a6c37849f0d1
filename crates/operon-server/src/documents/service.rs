//! The documents service: the only code that stores or reads command
//! documents. `AWS-RunShellScript` is built in and cannot be replaced.

use operon_store::Store;
use serde_json::Value;

use super::{DocumentVersion, RUN_SHELL_SCRIPT, run_shell_script_document};
use crate::now_millis;
use crate::service::{ServiceError, ServiceResult};

/// The service answers with the API's types.
pub use operon_api::documents::{
    CreatedVersion, DefaultVersionChange, DocumentSummary, DocumentView,
};

pub struct DocumentService<'a> {
    pub(crate) store: &'a Store,
}

impl DocumentService<'_> {
    /// Validate and store a new version of `name`. The first version of a
    /// name is its default; a later one runs only when named, until
    /// [`update_default`](Self::update_default) makes it the default.
    pub async fn create(&self, name: &str, content: &Value) -> ServiceResult<CreatedVersion> {
        check_name(name)?;
        if name == RUN_SHELL_SCRIPT {
            return Err(builtin());
        }
        super::parse_any(content).map_err(|e| {
            ServiceError::invalid("InvalidDocument", format!("invalid document: {e}"))
        })?;
        let version = self.store.put_document(name, content, now_millis()).await?;
        let versions = self.versions(name).await?;
        Ok(CreatedVersion {
            name: name.into(),
            version,
            default_version: versions.default_version,
        })
    }

    /// The built-in document, then every stored one.
    pub async fn list(&self) -> ServiceResult<Vec<DocumentSummary>> {
        let mut out = vec![DocumentSummary {
            name: RUN_SHELL_SCRIPT.into(),
            version: 1,
            default_version: 1,
            latest_version: 1,
            created_at: None,
            builtin: true,
        }];
        for doc in self.store.list_documents().await? {
            out.push(DocumentSummary {
                name: doc.name,
                version: doc.latest_version,
                default_version: doc.default_version,
                latest_version: doc.latest_version,
                created_at: Some(doc.created_at),
                builtin: false,
            });
        }
        Ok(out)
    }

    /// One version of a document (the default unless another is selected).
    pub async fn get(&self, name: &str, version: DocumentVersion) -> ServiceResult<DocumentView> {
        let (shown, content) = load_document(self.store, name, version).await?;
        let (default_version, latest_version) = if name == RUN_SHELL_SCRIPT {
            (1, 1)
        } else {
            let versions = self.versions(name).await?;
            (versions.default_version, versions.latest_version)
        };
        Ok(DocumentView {
            name: name.into(),
            version: shown,
            default_version,
            latest_version,
            content,
        })
    }

    /// Make a version the default: what commands, rule targets and runbook
    /// tasks run when they name no version.
    pub async fn update_default(
        &self,
        name: &str,
        version: DocumentVersion,
    ) -> ServiceResult<DefaultVersionChange> {
        if name == RUN_SHELL_SCRIPT {
            return Err(builtin());
        }
        let versions = self.versions(name).await?;
        let wanted = match version {
            DocumentVersion::Default => versions.default_version,
            DocumentVersion::Latest => versions.latest_version,
            DocumentVersion::Number(n) => n,
        };
        let previous = self
            .store
            .set_default_document_version(name, wanted)
            .await?
            .ok_or_else(|| no_version(name, wanted))?;
        Ok(DefaultVersionChange {
            name: name.into(),
            default_version: wanted,
            previous_default_version: previous,
            latest_version: versions.latest_version,
        })
    }

    async fn versions(&self, name: &str) -> ServiceResult<operon_store::DocumentVersions> {
        self.store
            .document_versions(name)
            .await?
            .ok_or_else(|| no_document(name))
    }
}

/// A document's version and content: the default version unless another is
/// selected. Everything that runs a document loads it here.
pub async fn load_document(
    store: &Store,
    name: &str,
    version: DocumentVersion,
) -> ServiceResult<(i64, Value)> {
    if name == RUN_SHELL_SCRIPT {
        return match version {
            DocumentVersion::Number(n) if n != 1 => Err(no_version(name, n)),
            _ => Ok((1, run_shell_script_document())),
        };
    }
    let number = match version {
        DocumentVersion::Default => None,
        DocumentVersion::Latest => Some(
            store
                .document_versions(name)
                .await?
                .ok_or_else(|| no_document(name))?
                .latest_version,
        ),
        DocumentVersion::Number(n) => Some(n),
    };
    let doc = store
        .document(name, number)
        .await?
        .ok_or_else(|| match number {
            Some(v) => no_version(name, v),
            None => no_document(name),
        })?;
    Ok((doc.version, doc.content))
}

fn builtin() -> ServiceError {
    ServiceError::conflict(
        "BuiltinDocument",
        format!("{RUN_SHELL_SCRIPT} is built in and cannot be replaced"),
    )
}

fn no_document(name: &str) -> ServiceError {
    ServiceError::not_found("NoSuchDocument", format!("no document named {name:?}"))
}

fn no_version(name: &str, version: i64) -> ServiceError {
    ServiceError::not_found(
        "NoSuchDocumentVersion",
        format!("document {name:?} has no version {version}"),
    )
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
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("db"))
            .await
            .unwrap();
        let docs = DocumentService { store: &store };
        assert_eq!(docs.create("deploy", &doc()).await.unwrap().version, 1);
        let second = docs.create("deploy", &doc()).await.unwrap();
        assert_eq!((second.version, second.default_version), (2, 1));
        assert_eq!(
            docs.get("deploy", Default::default())
                .await
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            docs.get("deploy", DocumentVersion::Number(2))
                .await
                .unwrap()
                .version,
            2
        );
        let missing = docs
            .get("deploy", DocumentVersion::Number(3))
            .await
            .unwrap_err();
        assert_eq!(
            (missing.kind, missing.code),
            (ErrorKind::NotFound, "NoSuchDocumentVersion")
        );
        let missing = docs.get("nope", Default::default()).await.unwrap_err();
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

    fn echo(word: &str) -> Value {
        json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": [format!("echo {word}")]}}]})
    }

    fn says(content: &Value) -> &str {
        content["mainSteps"][0]["inputs"]["runCommand"][0]
            .as_str()
            .unwrap()
    }

    /// What runs by name is the default version: a new version changes it
    /// only after update_default; `$LATEST` and numbers select explicitly.
    #[tokio::test]
    async fn the_default_version_runs_until_another_is_made_the_default() {
        use DocumentVersion::{Default, Latest, Number};
        let dir = tempfile::tempdir().unwrap();
        let store = operon_store::SqliteStore::open_dyn(&dir.path().join("db"))
            .await
            .unwrap();
        let docs = DocumentService { store: &store };
        docs.create("deploy", &echo("one")).await.unwrap();
        docs.create("deploy", &echo("two")).await.unwrap();
        let load = |v| load_document(&store, "deploy", v);
        assert_eq!(says(&load(Default).await.unwrap().1), "echo one");
        assert_eq!(load(Latest).await.unwrap().0, 2);
        assert_eq!(load(Number(1)).await.unwrap().0, 1);
        let listed = docs.list().await.unwrap();
        assert_eq!(
            (
                listed[1].version,
                listed[1].default_version,
                listed[1].latest_version
            ),
            (2, 1, 2)
        );
        let view = docs.get("deploy", Default).await.unwrap();
        assert_eq!(
            (view.version, view.default_version, view.latest_version),
            (1, 1, 2)
        );

        let missing = docs.update_default("deploy", Number(3)).await.unwrap_err();
        assert_eq!(
            (missing.kind, missing.code),
            (ErrorKind::NotFound, "NoSuchDocumentVersion")
        );
        assert!(missing.message.contains("has no version 3"), "{missing}");
        let missing = docs.update_default("nope", Number(1)).await.unwrap_err();
        assert_eq!(missing.code, "NoSuchDocument");
        let builtin = docs
            .update_default(RUN_SHELL_SCRIPT, Number(1))
            .await
            .unwrap_err();
        assert_eq!(builtin.kind, ErrorKind::Conflict);
        assert_eq!(load(Default).await.unwrap().0, 1, "refusals change nothing");

        let change = docs.update_default("deploy", Number(2)).await.unwrap();
        assert_eq!(
            (change.default_version, change.previous_default_version),
            (2, 1)
        );
        assert_eq!(says(&load(Default).await.unwrap().1), "echo two");
        docs.create("deploy", &echo("three")).await.unwrap();
        assert_eq!(load(Default).await.unwrap().0, 2);
        let change = docs.update_default("deploy", Latest).await.unwrap();
        assert_eq!(change.default_version, 3);

        // The built-in document has one version.
        let err = load_document(&store, RUN_SHELL_SCRIPT, Number(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            load_document(&store, RUN_SHELL_SCRIPT, Latest)
                .await
                .unwrap()
                .0,
            1
        );
    }
}
