//! `directory`: created with mode, owner and group (missing parents too,
//! like `mkdir -p`, with the default mode and the agent's owner);
//! `absent` removes it only when it is empty.

use std::fs;
use std::io;

use operon_state::document::{DirectorySpec, Presence};

use super::fsio::{self, Entry};
use super::{Env, Found, Mode};

/// Mode of a directory created without one.
pub const DEFAULT_DIRECTORY_MODE: u32 = 0o755;

pub fn ensure(spec: &DirectorySpec, env: &Env<'_>, mode: Mode) -> Result<Found, String> {
    let path = env.node_path(&spec.path)?;
    let current = fsio::entry(&path)?;
    let owner = spec.owner.as_deref();
    let group = spec.group.as_deref();
    match (spec.state, current) {
        (Presence::Absent, Entry::Missing) => Ok(Found::compliant()),
        (Presence::Absent, Entry::Directory(_)) => {
            let empty = fs::read_dir(&path)
                .map_err(|err| format!("cannot list {}: {err}", path.display()))?
                .next()
                .is_none();
            if !empty {
                return Err(format!(
                    "{} is not empty; only an empty directory is removed",
                    path.display()
                ));
            }
            if mode == Mode::Apply {
                fs::remove_dir(&path)
                    .map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
            }
            Ok(Found::change("removed"))
        }
        (_, Entry::File(_)) => Err(format!("{} is a file, not a directory", path.display())),
        (_, Entry::Other(kind)) => Err(format!("{} is {kind}, not a directory", path.display())),
        (Presence::Present, Entry::Missing) => {
            let parents_missing = path.parent().is_some_and(|p| !p.exists());
            if mode == Mode::Apply {
                if parents_missing && let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
                }
                match fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(format!("cannot create {}: {err}", path.display())),
                }
                fsio::set_meta(
                    &path,
                    Some(spec.mode.unwrap_or(DEFAULT_DIRECTORY_MODE)),
                    owner,
                    group,
                )?;
            }
            Ok(Found::change(if parents_missing {
                "created (with its missing parents)"
            } else {
                "created"
            }))
        }
        (Presence::Present, Entry::Directory(meta)) => {
            let changes = fsio::meta_changes(meta, spec.mode, owner, group);
            if mode == Mode::Apply && !changes.is_empty() {
                fsio::set_meta(&path, spec.mode, owner, group)?;
            }
            Ok(Found {
                changes,
                ..Found::default()
            })
        }
    }
}
