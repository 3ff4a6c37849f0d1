//! File and pipe helpers shared by file sync ([`crate::file_sync`]) and the
//! desired-state engine ([`crate::state`]): a file's digest, atomic
//! replacement in two steps (prepare a temporary file beside the target,
//! then rename it over and fsync the directory; file sync journals in
//! between), and keeping the tail of a child's output.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

/// An I/O failure on a path, without any content: `"{action} {path}: {source}"`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct IoFailure {
    pub action: &'static str,
    pub path: String,
    pub source: io::Error,
}

fn failure<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoFailure + 'a {
    move |source| IoFailure {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Hex SHA-256 of the file's bytes, `None` if it does not exist.
pub fn digest_of_file(path: &Path) -> io::Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buf)?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// Write the new file beside `path` as `.NAME.<tag>.tmp`: created 0600
/// (only the agent's user can read it while it is incomplete), written,
/// owned and moded as asked, fsynced. Returns the temporary path; on error
/// nothing is left behind.
pub fn prepare_temp_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    tag: &str,
) -> Result<PathBuf, IoFailure> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{tag}.tmp"));
    // A leftover from a crash; `create_new` below refuses anything in the way
    // (a symbolic link planted there included).
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(failure("cannot create", &temp))?;
        file.write_all(bytes)
            .map_err(failure("cannot write", &temp))?;
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::fchown(&file, uid, gid)
                .map_err(failure("cannot change the owner of", &temp))?;
        }
        // After chown, which clears setuid/setgid bits.
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(failure("cannot set the mode of", &temp))?;
        file.sync_all().map_err(failure("cannot fsync", &temp))
    })();
    match result {
        Ok(()) => Ok(temp),
        Err(err) => {
            let _ = fs::remove_file(&temp);
            Err(err)
        }
    }
}

/// Rename `temp` over `path`, then make the rename durable.
pub fn replace(temp: &Path, path: &Path, dir: &Path) -> Result<(), IoFailure> {
    fs::rename(temp, path).map_err(failure("cannot rename the new file over", path))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(failure("cannot fsync directory", dir))
}

/// Read `pipe` to its end, keeping (at least) its last `limit` bytes.
pub async fn read_tail<R: AsyncRead + Unpin>(pipe: Option<R>, kept: &mut Vec<u8>, limit: usize) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 8 * 1024];
    while let Ok(read) = pipe.read(&mut buf).await {
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..read]);
        if kept.len() > 2 * limit {
            kept.drain(..kept.len() - limit);
        }
    }
}
