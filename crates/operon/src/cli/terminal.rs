//! The local terminal of `operon sessions start|exec`: raw mode and size.
//!
//! In raw mode every key is a byte for the remote program (ctrl-c, ctrl-d
//! and ctrl-z included, as with ssh), and the remote PTY does the echoing
//! and line editing. A terminal left in raw mode is unusable, so
//! [`RawMode`] is a guard: dropping it restores the saved settings, which
//! happens on return, on `?` and on a panic's unwinding; the session loop
//! turns SIGTERM and SIGHUP into an ordinary return so they restore too.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// The terminal's settings before raw mode, put back on drop.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Put the terminal on `fd` in raw mode (as `cfmakeraw`). The caller
    /// keeps `fd` open for the guard's lifetime.
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<RawMode> {
        let fd = fd.as_raw_fd();
        let saved = get_attributes(fd)?;
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios read from the terminal just above.
        #[allow(unsafe_code)]
        unsafe {
            libc::cfmakeraw(&mut raw);
        }
        set_attributes(fd, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing to do about a failure here: the terminal is gone.
        let _ = set_attributes(self.fd, &self.saved);
    }
}

fn get_attributes(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data; all zero is a valid value to overwrite.
    #[allow(unsafe_code)]
    let mut attributes: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `attributes` is a valid, writable termios.
    #[allow(unsafe_code)]
    let result = unsafe { libc::tcgetattr(fd, &mut attributes) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attributes)
}

fn set_attributes(fd: RawFd, attributes: &libc::termios) -> io::Result<()> {
    // SAFETY: `attributes` points to a valid termios for the call.
    #[allow(unsafe_code)]
    let result = unsafe { libc::tcsetattr(fd, libc::TCSANOW, attributes) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's `(cols, rows)`, or `None` when `fd` is not a terminal or
/// reports no size (0x0, as some consoles and CI PTYs do).
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; all zero is a valid value to overwrite.
    #[allow(unsafe_code)]
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize to the valid pointer given.
    #[allow(unsafe_code)]
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    if result != 0 || size.ws_col == 0 || size.ws_row == 0 {
        return None;
    }
    Some((size.ws_col, size.ws_row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    /// A real PTY pair: (controller, terminal).
    fn open_pty(cols: u16, rows: u16) -> (OwnedFd, OwnedFd) {
        let mut controller: libc::c_int = -1;
        let mut terminal: libc::c_int = -1;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: valid out pointers; no name buffer; default termios.
        #[allow(unsafe_code)]
        let result = unsafe {
            libc::openpty(
                &mut controller,
                &mut terminal,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(result, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: openpty succeeded, so both descriptors are open and ours.
        #[allow(unsafe_code)]
        unsafe {
            (
                OwnedFd::from_raw_fd(controller),
                OwnedFd::from_raw_fd(terminal),
            )
        }
    }

    fn flags(fd: &OwnedFd) -> (libc::tcflag_t, libc::tcflag_t, libc::tcflag_t) {
        let t = get_attributes(fd.as_raw_fd()).unwrap();
        (t.c_iflag, t.c_oflag, t.c_lflag)
    }

    #[test]
    fn raw_mode_is_undone_when_the_guard_drops() {
        let (_controller, terminal) = open_pty(80, 24);
        let before = flags(&terminal);
        assert_ne!(before.2 & libc::ICANON, 0, "a new PTY starts canonical");
        {
            let _raw = RawMode::enter(terminal.as_fd()).unwrap();
            let (_, oflag, lflag) = flags(&terminal);
            assert_eq!(lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
            assert_eq!(oflag & libc::OPOST, 0);
        }
        assert_eq!(flags(&terminal), before);
    }

    #[test]
    fn raw_mode_is_undone_by_a_panic() {
        let (_controller, terminal) = open_pty(80, 24);
        let before = flags(&terminal);
        let fd = terminal.as_fd();
        let outcome = std::panic::catch_unwind(|| {
            let _raw = RawMode::enter(fd).unwrap();
            assert_eq!(flags(&terminal).2 & libc::ICANON, 0);
            panic!("the session failed");
        });
        assert!(outcome.is_err());
        assert_eq!(flags(&terminal), before);
    }

    #[test]
    fn raw_mode_needs_a_terminal() {
        let file = tempfile::tempfile().unwrap();
        assert!(RawMode::enter(file.as_fd()).is_err());
        assert_eq!(window_size(file.as_fd()), None);
    }

    #[test]
    fn the_size_is_the_terminals() {
        let (_controller, terminal) = open_pty(132, 43);
        assert_eq!(window_size(terminal.as_fd()), Some((132, 43)));
        let (_controller, empty) = open_pty(0, 0);
        assert_eq!(window_size(empty.as_fd()), None);
    }
}
