//! The node credential and the state directory that holds it.
//!
//! `<state-dir>` is created with mode 0700; `credential.json` is created with
//! mode 0600 from the start (through a temporary file, fsync and rename), so the
//! secret is never readable by anyone else, not even for an instant.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::journal::{JournalError, write_atomically};

pub const CREDENTIAL_FILE: &str = "credential.json";

/// What enrollment gave this node. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub node_id: String,
    pub name: String,
    pub credential: String,
    /// The server that issued it (informational: the configured URL is used).
    pub server_url: String,
    /// The server certificate's fingerprint pinned at enrollment
    /// (`sha256:<hex>`), checked on every connection. Absent for plain HTTP
    /// or when the system roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fingerprint: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .field("credential", &"<redacted>")
            .field("server_url", &self.server_url)
            .field("server_fingerprint", &self.server_fingerprint)
            .finish()
    }
}

pub fn credential_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CREDENTIAL_FILE)
}

/// Create the state directory (mode 0700) if it does not exist. An existing
/// directory is left as it is, with a warning if others can read it (it may
/// be shared, like `/tmp`: tightening it is the operator's call).
pub fn ensure_state_dir(state_dir: &Path) -> Result<(), AgentError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|source| AgentError::Io {
            action: "cannot create state directory",
            path: state_dir.to_owned(),
            source,
        })?;
    if let Ok(meta) = fs::metadata(state_dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %state_dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the state directory is accessible to other users; 0700 is recommended");
    }
    Ok(())
}

/// The stored credential, `None` if the node has not enrolled yet.
pub fn load_credential(state_dir: &Path) -> Result<Option<Credential>, AgentError> {
    let path = credential_path(state_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AgentError::Io {
                action: "cannot read credential file",
                path,
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| AgentError::BadCredentialFile { path, source })
}

/// Store the credential in `<state_dir>/credential.json`, mode 0600,
/// atomically: a temporary file is written and fsynced, then renamed over the
/// old one and the directory fsynced, so a crash leaves either the old or the
/// new credential, never a mix (which matters during a rotation).
pub fn store_credential(state_dir: &Path, credential: &Credential) -> Result<(), AgentError> {
    ensure_state_dir(state_dir)?;
    let path = credential_path(state_dir);
    let bytes = serde_json::to_vec_pretty(credential).expect("credentials always serialise");
    write_atomically(&path, &bytes, 0o600).map_err(|err| match err {
        JournalError::Io { path, source } => AgentError::Io {
            action: "cannot write credential file",
            path,
            source,
        },
        other => AgentError::Journal(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credential {
        Credential {
            node_id: "n-1".into(),
            name: "web-1".into(),
            credential: "s3cret".into(),
            server_url: "http://127.0.0.1:7780".into(),
            server_fingerprint: None,
        }
    }

    #[test]
    fn credential_file_is_0600_in_a_0700_dir_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        store_credential(&state, &sample()).unwrap();
        let file_mode = fs::metadata(credential_path(&state))
            .unwrap()
            .permissions()
            .mode();
        let dir_mode = fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(load_credential(&state).unwrap(), Some(sample()));
    }

    #[test]
    fn replacing_the_credential_is_atomic_keeps_0600_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        store_credential(&state, &sample()).unwrap();
        let mut rotated = sample();
        rotated.credential = "onc_new".into();
        rotated.server_fingerprint = Some("sha256:00".into());
        store_credential(&state, &rotated).unwrap();
        assert_eq!(load_credential(&state).unwrap(), Some(rotated));
        let mode = fs::metadata(credential_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![CREDENTIAL_FILE.to_string()]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_credential_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        store_credential(&state, &sample()).unwrap();
        // A directory where the temporary file goes makes the write fail
        // before the rename.
        fs::create_dir(state.join(format!(".{CREDENTIAL_FILE}.tmp"))).unwrap();
        fs::write(state.join(format!(".{CREDENTIAL_FILE}.tmp")).join("x"), "").unwrap();
        let mut rotated = sample();
        rotated.credential = "onc_new".into();
        let err = store_credential(&state, &rotated).unwrap_err().to_string();
        assert!(err.contains("credential.json"), "{err}");
        assert_eq!(load_credential(&state).unwrap(), Some(sample()));
    }

    #[test]
    fn credential_files_without_a_pin_still_load() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            credential_path(tmp.path()),
            r#"{"node_id":"n-1","name":"web-1","credential":"s3cret","server_url":"http://127.0.0.1:7780"}"#,
        )
        .unwrap();
        assert_eq!(load_credential(tmp.path()).unwrap(), Some(sample()));
    }

    #[test]
    fn missing_credential_is_none_and_debug_hides_the_secret() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load_credential(tmp.path()).unwrap(), None);
        assert!(!format!("{:?}", sample()).contains("s3cret"));
    }

    #[test]
    fn corrupt_credential_file_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(credential_path(tmp.path()), "{").unwrap();
        let err = load_credential(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("credential.json"), "{err}");
    }
}
