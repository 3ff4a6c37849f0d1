//! A terminal channel: a program on a real PTY, as a user of the node.
//!
//! The program (the user's login shell, or `shell -c command`) runs in its
//! own session with the PTY slave as controlling terminal, so ctrl-c, job
//! control, `SIGWINCH` on resize and hangups behave as over ssh. The agent
//! keeps the master, non-blocking, and reads it only while the channel's
//! send window allows: a client that reads slowly stops the reads, the PTY
//! buffer fills and the program blocks on its next write. Server data is
//! written to the master and credited back once written.
//!
//! The end: the program exits and its output is read to EOF (or `EIO`,
//! Linux's way of saying every slave descriptor is closed; or a short quiet
//! time when a background job still holds the terminal, which closing the
//! master then hangs up); the channel sends `Eof` and `ChannelClosed` with
//! the exit status (128 + signal when a signal ended it). A close from the server or the end of the link hangs
//! the terminal up: the master is closed (the kernel hangs up the
//! foreground job), SIGHUP goes to the program's process group, SIGKILL
//! after [`super::HANGUP_GRACE`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use operon_proto::session::MAX_DATA_FRAME;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};

use super::{ChannelIo, HANGUP_GRACE, Input, Pending};
use crate::runner;
use crate::sys::{self, ChildSetup, UserAccount};

/// How long the terminal may stay silent after its program exited before
/// the channel ends without waiting for its other holders.
const QUIET_AFTER_EXIT: Duration = Duration::from_millis(300);

/// What the server asked for, with the agent's own permission to create
/// the account folded in.
#[derive(Debug)]
pub(super) struct TerminalSpec {
    pub user: String,
    pub command: Option<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
    /// Create the account when missing (asked by the server *and* allowed
    /// by the agent's configuration).
    pub create_user: bool,
    /// The server asked (for the message when the agent does not allow it).
    pub create_user_asked: bool,
}

/// The running program and the agent's end of its PTY.
struct Terminal {
    master: AsyncFd<File>,
    child: Child,
}

/// Run a terminal channel to its end.
pub(super) async fn run(spec: TerminalSpec, mut io: ChannelIo) {
    let terminal = match start(&spec).await {
        Ok(terminal) => terminal,
        Err(error) => {
            io.out.closed(None, Some(error));
            return;
        }
    };
    io.out.opened();
    pump(terminal, &mut io).await;
}

/// Find (or create) the account, open the PTY, spawn the program.
async fn start(spec: &TerminalSpec) -> Result<Terminal, String> {
    let account = session_account(spec).await?;
    let (master, slave) = sys::open_pty(spec.cols, spec.rows)
        .map_err(|err| format!("cannot open a terminal: {err}"))?;
    let mut command = program_command(spec, &account);
    let stdio = |fd: &std::os::fd::OwnedFd| {
        fd.try_clone()
            .map(Stdio::from)
            .map_err(|err| format!("cannot open a terminal: {err}"))
    };
    command
        .stdin(stdio(&slave)?)
        .stdout(stdio(&slave)?)
        .stderr(Stdio::from(slave));
    let child = command.spawn().map_err(|err| {
        format!(
            "cannot start {} as '{}': {err}",
            account.shell, account.name
        )
    })?;
    // The command holds copies of the slave: only the program may keep it
    // open, or the master never sees the end.
    drop(command);
    let master =
        sys::watch_fd(master).map_err(|err| format!("cannot watch the terminal: {err}"))?;
    Ok(Terminal { master, child })
}

/// The account the terminal runs as; created when missing if allowed.
async fn session_account(spec: &TerminalSpec) -> Result<UserAccount, String> {
    let missing = matches!(sys::lookup_user(&spec.user), Ok(None));
    if missing && spec.create_user {
        create_account(&spec.user).await?;
    }
    match runner::resolve_user(Some(&spec.user)) {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err("no user named for the terminal".to_owned()),
        Err(error) if missing && spec.create_user_asked && !spec.create_user => Err(format!(
            "{error} (this agent does not create session users: start it with --session-create-user)"
        )),
        Err(error) => Err(error),
    }
}

/// `useradd` the server's default session account, with a home and its own
/// group, bash as shell when the node has it.
async fn create_account(name: &str) -> Result<(), String> {
    let shell = if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    tracing::info!(user = %name, "creating the session user");
    let output = Command::new("useradd")
        .args([
            "--create-home",
            "--user-group",
            "--shell",
            shell,
            "--",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|err| format!("cannot create user '{name}': useradd: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "cannot create user '{name}': useradd {}: {}",
        output.status,
        said.trim()
    ))
}

/// The shell, as a login shell (`-bash`) without a command, or `-c command`.
fn program_command(spec: &TerminalSpec, account: &UserAccount) -> Command {
    let mut command = Command::new(&account.shell);
    match &spec.command {
        Some(script) => {
            command.arg("-c").arg(script);
        }
        None => {
            let name = Path::new(&account.shell)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sh".to_owned());
            command.arg0(format!("-{name}"));
        }
    }
    let home = Path::new(&account.home);
    command
        .current_dir(if home.is_dir() { home } else { Path::new("/") })
        .env_clear()
        .envs(runner::base_environment(
            std::iter::empty(),
            Some(account),
            true,
        ))
        .env("TERM", &spec.term)
        .kill_on_drop(false);
    ChildSetup {
        switch_to: Some(account.clone()).filter(|user| user.uid != sys::effective_uid()),
        controlling_terminal: true,
    }
    .apply(&mut command);
    command
}

/// What woke the terminal loop.
enum Event {
    Input(Option<Input>),
    /// Bytes read from the master; `None` at its end.
    Output(Option<Vec<u8>>),
    Wrote(usize),
    WriteFailed(io::Error),
    Exited(io::Result<ExitStatus>),
}

/// Move bytes both ways until the program ends or the channel is closed.
async fn pump(mut terminal: Terminal, io: &mut ChannelIo) {
    let mut pending = Pending::default();
    let mut output_ended = false;
    // The program's status once it exited, kept until its output is read.
    let mut exited: Option<io::Result<ExitStatus>> = None;
    loop {
        let readable = !output_ended && io.sent.available() > 0;
        let draining = exited.is_some();
        let event = tokio::select! {
            input = io.inputs.recv() => Event::Input(input),
            output = read_output(&terminal.master, io.sent.allowance(MAX_DATA_FRAME), draining), if readable => Event::Output(output),
            written = write_master(&terminal.master, pending.front()), if !pending.is_empty() && !output_ended => match written {
                Ok(n) => Event::Wrote(n),
                Err(err) => Event::WriteFailed(err),
            },
            status = terminal.child.wait(), if !draining => Event::Exited(status),
        };
        match event {
            Event::Input(None) => {
                // The link ended: sessions do not survive it.
                hang_up(terminal).await;
                return;
            }
            Event::Input(Some(Input::Data(bytes))) => pending.push(bytes),
            Event::Input(Some(Input::Credit(credit))) => {
                if let Err(error) = io.credited(credit) {
                    let status = hang_up(terminal).await;
                    io.out.closed(status.map(exit_code), Some(error));
                    return;
                }
            }
            // A terminal has no half-close: the client's ctrl-d is data.
            Event::Input(Some(Input::Eof)) => {}
            Event::Input(Some(Input::Resize { cols, rows })) => {
                if let Err(err) =
                    sys::set_window_size(terminal.master.get_ref().as_fd(), cols, rows)
                {
                    tracing::warn!(channel = io.out.channel, %err, "cannot resize the terminal");
                }
            }
            Event::Input(Some(Input::Close { error })) => {
                let status = hang_up(terminal).await;
                io.out.closed(status.map(exit_code), error);
                return;
            }
            Event::Output(Some(bytes)) => {
                io.sent.spend(bytes.len());
                io.out.data(bytes);
            }
            Event::Output(None) => {
                output_ended = true;
                if let Some(status) = exited.take() {
                    finish(terminal, status, io);
                    return;
                }
            }
            Event::Wrote(written) => {
                pending.written(written);
                io.passed_on(written);
            }
            Event::WriteFailed(err) => {
                // The program is going away; its output's end tells the rest.
                tracing::debug!(channel = io.out.channel, %err, "writing to the terminal failed");
                let dropped = pending.front().len();
                pending.written(dropped);
                io.passed_on(dropped);
            }
            Event::Exited(status) if output_ended => {
                finish(terminal, status, io);
                return;
            }
            Event::Exited(status) => exited = Some(status),
        }
    }
}

/// The program exited and its output was read: close the master (which
/// hangs up any background job still holding the terminal) and report.
fn finish(terminal: Terminal, status: io::Result<ExitStatus>, io: &ChannelIo) {
    drop(terminal);
    io.out.eof();
    match status {
        Ok(status) => io.out.closed(Some(exit_code(status)), None),
        Err(err) => io
            .out
            .closed(None, Some(format!("cannot reap the program: {err}"))),
    }
}

/// The terminal's next output. Once the program exited, its output ends
/// at EOF/EIO (no one else holds the terminal) or after
/// [`QUIET_AFTER_EXIT`] without output (a background job still holds it:
/// the session ends with the program, as over ssh).
async fn read_output(master: &AsyncFd<File>, limit: usize, draining: bool) -> Option<Vec<u8>> {
    if !draining {
        return read_master(master, limit).await;
    }
    tokio::time::timeout(QUIET_AFTER_EXIT, read_master(master, limit))
        .await
        .ok()
        .flatten()
}

/// Up to `limit` bytes from the master; `None` when it ended (EOF, or EIO
/// once no slave descriptor is left).
async fn read_master(master: &AsyncFd<File>, limit: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; limit.max(1)];
    loop {
        let mut guard = match master.readable().await {
            Ok(guard) => guard,
            Err(_) => return None,
        };
        match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
            Ok(Ok(0)) => return None,
            Ok(Ok(n)) => {
                buf.truncate(n);
                return Some(buf);
            }
            Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(_)) => return None,
            Err(_would_block) => continue,
        }
    }
}

async fn write_master(master: &AsyncFd<File>, bytes: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| fd.get_ref().write(bytes)) {
            Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// Close the master, SIGHUP the program's process group, SIGKILL it after
/// the grace period; the exit status when it could be reaped.
async fn hang_up(terminal: Terminal) -> Option<ExitStatus> {
    let Terminal { master, mut child } = terminal;
    drop(master);
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    if let Some(group) = group {
        let _ = sys::signal_group(group, sys::SIGHUP);
        // A stopped job would never see the hangup.
        let _ = sys::signal_group(group, libc::SIGCONT);
    }
    if let Ok(status) = tokio::time::timeout(HANGUP_GRACE, child.wait()).await {
        return status.ok();
    }
    if let Some(group) = group {
        let _ = sys::signal_group(group, sys::SIGKILL);
    }
    child.wait().await.ok()
}

/// The status as a shell reports it: the exit code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_read_like_a_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGHUP)), 129);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }
}
