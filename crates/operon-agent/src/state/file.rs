//! `file`: content (`content`, `template` rendered by the server, or the
//! `source` sent beside the document), mode, owner, group, present/absent.
//! Content is written atomically ([`fsio::write_atomically`]); when only the
//! metadata differs it is changed in place. A missing parent directory is an
//! error naming it. A file created without a `mode` gets `0644`.

use std::fs;

use operon_state::document::{FileContent, FileSpec, Presence};

use super::fsio::{self, Entry};
use super::{Env, Found, Mode};

/// Mode of a file created without one.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// The change phrase of a sensitive resource's content.
pub const HIDDEN_CONTENT: &str = "content (hidden: holds secure parameters)";

/// The bytes the file must hold; `None` when content is not managed.
fn wanted<'a>(
    name: &str,
    spec: &'a FileSpec,
    env: &'a Env<'_>,
) -> Result<Option<&'a [u8]>, String> {
    Ok(match &spec.content {
        FileContent::Content(text) | FileContent::Template(text) => Some(text.as_bytes()),
        FileContent::Source(source) => Some(
            env.sources
                .get(name)
                .map(|s| s.expose().as_bytes())
                .ok_or_else(|| format!("the server sent no content for source {source:?}"))?,
        ),
        FileContent::Unmanaged => None,
    })
}

/// The content change phrase and diff between `old` and `new`.
pub fn content_change(name: &str, path: &str, old: &[u8], new: &[u8], env: &Env<'_>) -> Found {
    if env.sensitive.contains(name) {
        return Found::change(HIDDEN_CONTENT);
    }
    let diff = match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(old), Ok(new)) => Some(operon_state::diff::unified_diff(path, old, new)),
        _ => None,
    };
    Found {
        changes: vec!["content".into()],
        diff,
        message: None,
    }
}

pub fn ensure(name: &str, spec: &FileSpec, env: &Env<'_>, mode: Mode) -> Result<Found, String> {
    let path = env.node_path(&spec.path)?;
    let current = fsio::entry(&path)?;
    if spec.state == Presence::Absent {
        return match current {
            Entry::Missing => Ok(Found::compliant()),
            Entry::File(_) | Entry::Other("a symbolic link") => {
                if mode == Mode::Apply {
                    fs::remove_file(&path)
                        .map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
                }
                Ok(Found::change("removed"))
            }
            Entry::Directory(_) => Err(format!("{} is a directory, not a file", path.display())),
            Entry::Other(kind) => Err(format!("{} is {kind}, not a file", path.display())),
        };
    }
    let wanted = wanted(name, spec, env)?;
    let owner = spec.owner.as_deref();
    let group = spec.group.as_deref();
    match current {
        Entry::Directory(_) => Err(format!("{} is a directory, not a file", path.display())),
        Entry::Other(kind) => Err(format!("{} is {kind}, not a regular file", path.display())),
        Entry::Missing => {
            let bytes = wanted.unwrap_or_default();
            let mut found = content_change(name, &spec.path, b"", bytes, env);
            found.changes = vec!["created".into()];
            if env.sensitive.contains(name) {
                found.changes.push(HIDDEN_CONTENT.into());
            }
            if mode == Mode::Check {
                // Still say what is wrong with the directory, if anything.
                fsio::existing_parent(&path)?;
                return Ok(found);
            }
            let (uid, gid) = fsio::resolve_ids(owner, group)?;
            fsio::write_atomically(
                &path,
                bytes,
                spec.mode.unwrap_or(DEFAULT_FILE_MODE),
                uid,
                gid,
            )?;
            Ok(found)
        }
        Entry::File(meta) => {
            let mut found = Found::compliant();
            let mut rewrite = None;
            if let Some(bytes) = wanted {
                let old = fsio::read(&path)?;
                if old != bytes {
                    found = content_change(name, &spec.path, &old, bytes, env);
                    rewrite = Some(bytes);
                }
            }
            let meta_changes = fsio::meta_changes(meta, spec.mode, owner, group);
            found.changes.extend(meta_changes.iter().cloned());
            if mode == Mode::Check || found.is_compliant() {
                return Ok(found);
            }
            match rewrite {
                Some(bytes) => {
                    let (uid, gid) = fsio::resolve_ids(owner, group)?;
                    // Keep what is not declared as it was.
                    let uid = uid.or(Some(meta.uid));
                    let gid = gid.or(Some(meta.gid));
                    fsio::write_atomically(&path, bytes, spec.mode.unwrap_or(meta.mode), uid, gid)?;
                }
                None => fsio::set_meta(&path, spec.mode, owner, group)?,
            }
            Ok(found)
        }
    }
}
