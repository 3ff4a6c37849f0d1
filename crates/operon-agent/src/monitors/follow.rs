//! Following a log file the way `tail -F` does, polled.
//!
//! The follower holds the file open and remembers how far it has read. On
//! every poll it compares the file at the path with the one it holds
//! ([`decide`], pure):
//!
//! - first look, file there: start at its end (old lines are not news);
//! - file appears later (created, or re-created after a rotation): read it
//!   from the start;
//! - same file (device and inode), size below the offset: it was truncated
//!   (`copytruncate`), read again from 0;
//! - another file at the path (rotated by rename): read what is left of the
//!   old one through the descriptor still held, then the new one from 0;
//! - no file any more: read what is left of the old one, then wait for one.
//!
//! A truncation followed by writes that grow the file past the old offset
//! before the next poll looks like plain growth; the lines before the old
//! offset are then missed (as with `tail -F`). Each poll reads at most
//! [`MAX_READ_PER_POLL`] bytes so a huge burst is spread over several polls.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::lines::LineFeed;

/// Bytes read from one file per poll at most.
pub const MAX_READ_PER_POLL: u64 = 8 * 1024 * 1024;

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What the follower does after looking at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing open, nothing at the path.
    Wait,
    /// Open the file and start at its end.
    OpenAtEnd,
    /// Open the file and read it from the start.
    OpenFromStart,
    /// Read on from the offset.
    ReadOn,
    /// The file shrank: read it again from the start.
    Truncated,
    /// Another file is at the path: finish the old one, then read the new
    /// one from the start.
    Replaced,
    /// The file is gone: finish it and close it.
    Removed,
}

/// Decide from what is held (`held`: its identity and offset) and what is at
/// the path (`on_disk`: identity and size).
pub fn decide(
    held: Option<(FileId, u64)>,
    on_disk: Option<(FileId, u64)>,
    first_look: bool,
) -> Action {
    match (held, on_disk) {
        (None, None) => Action::Wait,
        (None, Some(_)) if first_look => Action::OpenAtEnd,
        (None, Some(_)) => Action::OpenFromStart,
        (Some(_), None) => Action::Removed,
        (Some((held_id, _)), Some((disk_id, _))) if held_id != disk_id => Action::Replaced,
        (Some((_, offset)), Some((_, size))) if size < offset => Action::Truncated,
        (Some(_), Some(_)) => Action::ReadOn,
    }
}

struct Held {
    file: File,
    id: FileId,
    offset: u64,
}

/// Follows one path; see the module docs.
pub struct FileFollower {
    path: PathBuf,
    held: Option<Held>,
    first_look: bool,
}

impl FileFollower {
    pub fn new(path: impl Into<PathBuf>) -> FileFollower {
        FileFollower {
            path: path.into(),
            held: None,
            first_look: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read what was appended since the last poll into `counter`; what its
    /// `feed` counted (matching lines for a watcher, lines for shipping). Errors name the path.
    pub fn poll(&mut self, counter: &mut impl LineFeed) -> io::Result<u64> {
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(meta) if meta.is_file() => Some((id_of(&meta), meta.len())),
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a regular file",
                    self.path.display()
                )));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(self.error("cannot look at", err)),
        };
        let held = self.held.as_ref().map(|h| (h.id, h.offset));
        let action = decide(held, on_disk, self.first_look);
        self.first_look = false;
        let mut matched = 0;
        match action {
            Action::Wait => {}
            Action::OpenAtEnd => self.open(true)?,
            Action::OpenFromStart => {
                counter.restart();
                self.open(false)?;
            }
            Action::ReadOn => {}
            Action::Truncated => {
                if let Some(held) = &mut self.held {
                    held.offset = 0;
                }
                counter.restart();
            }
            Action::Replaced | Action::Removed => {
                // The rest of the old file, through the descriptor still held.
                matched += self.read_held(counter)?;
                self.held = None;
                counter.restart();
                if action == Action::Replaced {
                    self.open(false)?;
                }
            }
        }
        matched += self.read_held(counter)?;
        Ok(matched)
    }

    fn open(&mut self, at_end: bool) -> io::Result<()> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            // Gone between the look and the open: seen at the next poll.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(self.error("cannot open", err)),
        };
        let meta = file
            .metadata()
            .map_err(|err| self.error("cannot look at", err))?;
        let offset = if at_end { meta.len() } else { 0 };
        self.held = Some(Held {
            file,
            id: id_of(&meta),
            offset,
        });
        Ok(())
    }

    fn read_held(&mut self, counter: &mut impl LineFeed) -> io::Result<u64> {
        let Some(held) = &mut self.held else {
            return Ok(0);
        };
        let read = read_from(&mut held.file, held.offset, counter);
        match read {
            Ok((matched, bytes)) => {
                held.offset += bytes;
                Ok(matched)
            }
            Err(err) => Err(self.error("cannot read", err)),
        }
    }

    fn error(&self, action: &str, err: io::Error) -> io::Error {
        io::Error::new(
            err.kind(),
            format!("{action} {}: {err}", self.path.display()),
        )
    }
}

fn id_of(meta: &std::fs::Metadata) -> FileId {
    FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

/// Read from `offset` to the end (at most [`MAX_READ_PER_POLL`] bytes):
/// matching lines completed and bytes read.
fn read_from(file: &mut File, offset: u64, counter: &mut impl LineFeed) -> io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut limited = file.take(MAX_READ_PER_POLL);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut matched, mut total) = (0, 0);
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        matched += counter.feed(&buf[..n]);
        total += n as u64;
    }
    Ok((matched, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FileId = FileId { dev: 1, ino: 10 };
    const B: FileId = FileId { dev: 1, ino: 11 };

    #[test]
    fn decisions() {
        use Action::*;
        let table = [
            (None, None, true, Wait),
            (None, None, false, Wait),
            (None, Some((A, 100)), true, OpenAtEnd),
            (None, Some((A, 100)), false, OpenFromStart),
            (Some((A, 50)), None, false, Removed),
            (Some((A, 50)), Some((B, 500)), false, Replaced),
            (Some((A, 50)), Some((B, 0)), false, Replaced),
            (Some((A, 50)), Some((A, 10)), false, Truncated),
            (Some((A, 50)), Some((A, 50)), false, ReadOn),
            (Some((A, 50)), Some((A, 90)), false, ReadOn),
        ];
        for (held, on_disk, first, expected) in table {
            assert_eq!(
                decide(held, on_disk, first),
                expected,
                "held {held:?} on disk {on_disk:?} first {first}"
            );
        }
    }
}
