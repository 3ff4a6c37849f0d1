//! File system helpers of the state engine: the file as it is (kind, bytes,
//! mode, owner), atomic replacement (temporary file in the same directory,
//! fsync, rename, fsync of the directory), owner and group by name.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::sys;

/// Permission bits a mode may carry.
pub const PERMISSION_BITS: u32 = 0o7777;

/// What is at a path now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    File(Meta),
    Directory(Meta),
    /// A symbolic link or a special file: never followed, never replaced.
    Other(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub fn entry(path: &Path) -> Result<Entry, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Entry::Missing),
        Err(err) => return Err(format!("cannot inspect {}: {err}", path.display())),
    };
    let m = Meta {
        mode: meta.mode() & PERMISSION_BITS,
        uid: meta.uid(),
        gid: meta.gid(),
    };
    let kind = meta.file_type();
    Ok(if kind.is_file() {
        Entry::File(m)
    } else if kind.is_dir() {
        Entry::Directory(m)
    } else if kind.is_symlink() {
        Entry::Other("a symbolic link")
    } else {
        Entry::Other("a special file")
    })
}

pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// The uid of a user by name.
pub fn uid_of(name: &str) -> Result<Option<u32>, String> {
    sys::lookup_user(name)
        .map(|user| user.map(|u| u.uid))
        .map_err(|err| format!("cannot look up user {name:?}: {err}"))
}

/// The gid of a group by name.
pub fn gid_of(name: &str) -> Result<Option<u32>, String> {
    sys::lookup_group(name).map_err(|err| format!("cannot look up group {name:?}: {err}"))
}

/// A uid as a name when it has one.
pub fn user_name(uid: u32) -> String {
    match sys::lookup_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// A gid as a name when it has one.
pub fn group_name(gid: u32) -> String {
    match sys::group_name(gid) {
        Ok(Some(name)) => name,
        _ => gid.to_string(),
    }
}

/// Owner and group wanted, resolved; `Err` names an unknown one.
pub fn resolve_ids(
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<u32>, Option<u32>), String> {
    let uid = match owner {
        Some(name) => Some(uid_of(name)?.ok_or_else(|| format!("user {name:?} does not exist"))?),
        None => None,
    };
    let gid = match group {
        Some(name) => Some(gid_of(name)?.ok_or_else(|| format!("group {name:?} does not exist"))?),
        None => None,
    };
    Ok((uid, gid))
}

/// Changes of metadata as phrases ("mode 0644 -> 0600", "owner root -> app").
/// An owner or group that does not exist is reported as a change too (check
/// mode may run before the user is created).
pub fn meta_changes(
    current: Meta,
    mode: Option<u32>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Vec<String> {
    let mut changes = Vec::new();
    if let Some(mode) = mode
        && mode != current.mode
    {
        changes.push(format!(
            "mode {} -> {}",
            super::mode_text(current.mode),
            super::mode_text(mode)
        ));
    }
    if let Some(owner) = owner
        && uid_of(owner).ok().flatten() != Some(current.uid)
    {
        changes.push(format!("owner {} -> {owner}", user_name(current.uid)));
    }
    if let Some(group) = group
        && gid_of(group).ok().flatten() != Some(current.gid)
    {
        changes.push(format!("group {} -> {group}", group_name(current.gid)));
    }
    changes
}

/// Set owner/group (when given) then mode (when given) in place.
pub fn set_meta(
    path: &Path,
    mode: Option<u32>,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(), String> {
    let (uid, gid) = resolve_ids(owner, group)?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::lchown(path, uid, gid)
            .map_err(|err| format!("cannot change the owner of {}: {err}", path.display()))?;
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(|err| format!("cannot set the mode of {}: {err}", path.display()))?;
    }
    Ok(())
}

/// The parent directory of `path`, which must exist.
pub fn existing_parent(path: &Path) -> Result<PathBuf, String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(dir.to_path_buf()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(format!("directory {} does not exist", dir.display()))
        }
        Err(err) => Err(format!("cannot inspect {}: {err}", dir.display())),
    }
}

/// Replace `path` with `bytes` atomically: a temporary file beside it
/// (created 0600, owned and moded as asked, fsynced), renamed over it, the
/// directory fsynced ([`crate::fsutil`], as file sync does). Error messages
/// never hold the content.
pub fn write_atomically(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), String> {
    let dir = existing_parent(path)?;
    let temp = fsutil::prepare_temp_file(path, bytes, mode, uid, gid, "operon-state")
        .map_err(|err| err.to_string())?;
    fsutil::replace(&temp, path, &dir).map_err(|err| {
        let _ = fs::remove_file(&temp);
        err.to_string()
    })
}
