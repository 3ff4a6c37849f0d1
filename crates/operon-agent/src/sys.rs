//! The agent's few direct system calls: sessions and process groups, signals to
//! groups, user lookup and switching, an exclusive lock on the state
//! directory, and file system space (`statvfs`).
//!
//! This is the only module allowed to use `unsafe`; every block says why it is
//! sound. Everything outside sees safe functions with `io::Result`s.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A local account, as `/etc/passwd` (or NSS) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// The login shell (`/bin/sh` if the entry names none).
    pub shell: String,
    /// Supplementary groups, the primary group included.
    pub groups: Vec<u32>,
}

/// The effective user id of this process.
/// Clock ticks per second (`USER_HZ`), the unit of a process's CPU times
/// in `/proc/<pid>/stat`; 100 if the system does not say.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a plain integer and returns one.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The memory page size in bytes, the unit of `rss` in `/proc/<pid>/stat`.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes a plain integer and returns one.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Look a user up by name. `Ok(None)` if no such user exists.
pub fn lookup_user(name: &str) -> io::Result<Option<UserAccount>> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    lookup_passwd(|pwd, buf, found| {
        // SAFETY: every pointer is valid for the duration of the call; `buf`
        // is writable for its length.
        unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                found,
            )
        }
    })
}

/// Look a user up by uid. `Ok(None)` if no account has it.
pub fn lookup_uid(uid: u32) -> io::Result<Option<UserAccount>> {
    lookup_passwd(|pwd, buf, found| {
        // SAFETY: as in `lookup_user`.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), found) }
    })
}

/// Run a `getpw*_r` call with a growing buffer and copy the entry out.
fn lookup_passwd(
    mut call: impl FnMut(&mut libc::passwd, &mut [u8], &mut *mut libc::passwd) -> libc::c_int,
) -> io::Result<Option<UserAccount>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: an all-zero passwd is a valid value for this plain C struct.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut found);
        if rc == libc::ERANGE && buf.len() < 1024 * 1024 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the string fields are NUL-terminated strings
        // inside `buf`, which is alive and unchanged here; a null pw_shell is
        // checked before it is read.
        let (name, home, shell) = unsafe {
            let text =
                |ptr: *const libc::c_char| CStr::from_ptr(ptr).to_string_lossy().into_owned();
            let shell = if pwd.pw_shell.is_null() {
                String::new()
            } else {
                text(pwd.pw_shell)
            };
            (text(pwd.pw_name), text(pwd.pw_dir), shell)
        };
        let c_name = CString::new(name.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "user name contains NUL"))?;
        let groups = group_list(&c_name, pwd.pw_gid)?;
        return Ok(Some(UserAccount {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
            shell: if shell.is_empty() {
                "/bin/sh".to_owned()
            } else {
                shell
            },
            groups,
        }));
    }
}

fn group_list(c_name: &CStr, gid: libc::gid_t) -> io::Result<Vec<u32>> {
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        let asked = count;
        // SAFETY: `groups` has room for `count` entries, and getgrouplist writes
        // at most that many, updating `count` with the number it needs.
        let rc =
            unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count <= asked {
            count = asked * 2;
        }
        if count > 65536 {
            return Err(io::Error::other("user belongs to too many groups"));
        }
    }
}

/// What a freshly forked child does before `exec`: its own session (so the
/// whole tree can be signalled as one group), then, if asked, its stdin as
/// controlling terminal (a session terminal's PTY), then, if asked, the
/// identity of another user.
#[derive(Debug, Clone)]
pub struct ChildSetup {
    pub switch_to: Option<UserAccount>,
    /// Make stdin (a PTY slave) the controlling terminal of the new session,
    /// so that ctrl-c, job control and hangups reach the program.
    pub controlling_terminal: bool,
}

impl ChildSetup {
    /// Install this setup on a command, to run between fork and exec.
    pub fn apply(self, command: &mut tokio::process::Command) {
        let ids = self.switch_to.map(|user| (user.uid, user.gid, user.groups));
        let controlling_terminal = self.controlling_terminal;
        // SAFETY: the closure runs in the forked child before exec. It calls
        // only async-signal-safe system calls (setsid, ioctl, setgroups,
        // setgid, setuid) on data prepared before the fork, and allocates
        // nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                // stdin is the PTY slave by now (stdio is set up before pre_exec).
                if controlling_terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some((uid, gid, groups)) = &ids {
                    if libc::setgroups(groups.len() as _, groups.as_ptr()) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::setgid(*gid) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::setuid(*uid) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// Send `signal` to every process of group `pgid`. A group that no longer
/// exists is not an error.
pub fn signal_group(pgid: i32, signal: libc::c_int) -> io::Result<()> {
    if pgid <= 1 {
        // killpg(0 or 1) would hit our own group or everything: never.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    // SAFETY: killpg takes plain integers; pgid > 1 was checked above.
    let rc = unsafe { libc::killpg(pgid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

pub use libc::{SIGHUP, SIGKILL, SIGTERM};

/// A new pseudo-terminal of `cols` x `rows`: `(master, slave)`, both
/// close-on-exec (the slave reaches its program as stdio, which dup2
/// clears), the master non-blocking for [`tokio::io::unix::AsyncFd`].
pub fn open_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt takes flags and returns a new descriptor or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if master < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `master` is a descriptor we just opened and own alone.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt and unlockpt take a valid descriptor.
    if unsafe { libc::grantpt(master.as_raw_fd()) } != 0
        || unsafe { libc::unlockpt(master.as_raw_fd()) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its length; ptsname_r NUL-terminates.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: `name` holds a NUL-terminated path written by ptsname_r.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `slave` is a descriptor we just opened and own alone.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    set_window_size(master.as_fd(), cols, rows)?;
    set_nonblocking(master.as_fd())?;
    Ok((master, slave))
}

/// Hand an owned descriptor (a PTY master) to tokio's reactor as a file.
pub fn watch_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<File>> {
    // SAFETY: the `File` owns the descriptor, so it stays open and the same
    // for as long as the `AsyncFd` that owns the `File`, and `as_raw_fd`
    // always returns it.
    unsafe { tokio::io::unix::AsyncFd::register(File::from(fd)) }.map_err(io::Error::from)
}

/// Set a terminal's size (`TIOCSWINSZ`); on a PTY master the kernel sends
/// `SIGWINCH` to the foreground process group.
pub fn set_window_size(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: the descriptor is valid while borrowed and `size` is a valid
    // winsize that the kernel only reads.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor valid while borrowed, with plain integers.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take an exclusive, non-blocking `flock` on `file`. `Ok(false)` if another
/// process holds it. The lock lives as long as the file stays open.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: the descriptor is valid while `file` is borrowed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// A group's id by its name. `Ok(None)` if no such group exists.
pub fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name contains NUL"))?;
    lookup_group_entry(|grp, buf, found| {
        // SAFETY: every pointer is valid for the duration of the call; `buf`
        // is writable for its length.
        unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                found,
            )
        }
    })
    .map(|entry| entry.map(|(gid, _)| gid))
}

/// A group's name by its id. `Ok(None)` if no group has it.
pub fn group_name(gid: u32) -> io::Result<Option<String>> {
    lookup_group_entry(|grp, buf, found| {
        // SAFETY: as in `lookup_group`.
        unsafe { libc::getgrgid_r(gid, grp, buf.as_mut_ptr().cast(), buf.len(), found) }
    })
    .map(|entry| entry.map(|(_, name)| name))
}

/// Run a `getgr*_r` call with a growing buffer; the group's id and name.
fn lookup_group_entry(
    mut call: impl FnMut(&mut libc::group, &mut [u8], &mut *mut libc::group) -> libc::c_int,
) -> io::Result<Option<(u32, String)>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: an all-zero group is a valid value for this plain C struct.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = call(&mut grp, &mut buf, &mut found);
        if rc == libc::ERANGE && buf.len() < 4 * 1024 * 1024 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: on success gr_name is a NUL-terminated string inside `buf`,
        // which is alive and unchanged here.
        let name = unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned();
        return Ok(Some((grp.gr_gid, name)));
    }
}

/// Space and inodes of the file system holding `path`, as `statvfs` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
}

pub fn statvfs(path: &std::path::Path) -> io::Result<FsStats> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: an all-zero statvfs is a valid value for this plain C struct.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and alive; `stats` is writable.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Block counts are in units of f_frsize (f_bsize is only the preferred
    // I/O size).
    let unit = stats.f_frsize as u64;
    Ok(FsStats {
        total_bytes: (stats.f_blocks as u64).saturating_mul(unit),
        free_bytes: (stats.f_bfree as u64).saturating_mul(unit),
        available_bytes: (stats.f_bavail as u64).saturating_mul(unit),
        total_inodes: stats.f_files as u64,
        free_inodes: stats.f_ffree as u64,
    })
}
