//! A forwarded TCP connection: the node connects to `host:port` (as the
//! node resolves it) on a session's behalf and relays bytes both ways.
//!
//! Every resolved address is checked against the channel's deny list
//! ([`super::deny`]) before any connection: one denied address refuses
//! the whole host (a name must not reach a denied address by luck of the
//! resolver's order). The socket is read only while the send window
//! allows; server data is credited once written. `Eof` from the server is
//! a half-close (shutdown of our write side once its data is written); the
//! channel closes when both directions have ended, on an error, or at once
//! on a close from the server (the socket is reset, not ended).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use operon_proto::session::MAX_DATA_FRAME;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::deny::{self, DenyEntry};
use super::{ChannelIo, Input, Pending};

/// How long resolving and connecting may take, together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Run a forwarding channel to its end.
pub(super) async fn run(host: String, port: u16, deny: Vec<String>, mut io: ChannelIo) {
    let stream = match connect(&host, port, &deny).await {
        Ok(stream) => stream,
        Err(error) => {
            io.out.closed(None, Some(error));
            return;
        }
    };
    io.out.opened();
    if let Outcome::Ended { error } = pump(stream, &mut io).await {
        io.out.closed(None, error);
    }
}

/// Resolve, check every address against the deny list, connect to the
/// first that answers.
async fn connect(host: &str, port: u16, deny: &[String]) -> Result<TcpStream, String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let deny =
        deny::parse_deny_list(deny).map_err(|err| format!("refusing {host}:{port}: {err}"))?;
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return Err(format!(
                    "cannot resolve '{host}': no answer within {CONNECT_TIMEOUT:?}"
                ));
            }
            Ok(Err(err)) => return Err(format!("cannot resolve '{host}': {err}")),
            Ok(Ok(addresses)) => addresses.collect(),
        };
    if addresses.is_empty() {
        return Err(format!("cannot resolve '{host}': no address"));
    }
    check_allowed(host, port, &addresses, &deny)?;
    let mut failures = Vec::new();
    for address in &addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => failures.push(format!("{address}: {err}")),
            Err(_) => {
                failures.push(format!("{address}: no answer within {CONNECT_TIMEOUT:?}"));
                break;
            }
        }
    }
    Err(format!(
        "cannot connect to {host}:{port} ({})",
        failures.join("; ")
    ))
}

/// Refuse when any address is denied, naming the address and the entry.
fn check_allowed(
    host: &str,
    port: u16,
    addresses: &[SocketAddr],
    deny: &[DenyEntry],
) -> Result<(), String> {
    for address in addresses {
        if let Some(entry) = deny::denied_by(deny, address.ip(), port) {
            return Err(format!(
                "refusing {host}:{port}: address {} is denied by '{entry}'",
                address.ip()
            ));
        }
    }
    Ok(())
}

/// How the relay stopped: on its own (send `ChannelClosed`), or because the
/// link ended (send nothing).
enum Outcome {
    Ended { error: Option<String> },
    LinkGone,
}

/// What woke the relay loop.
enum Event {
    Input(Option<Input>),
    /// Bytes from the socket; empty at its end.
    Read(io::Result<Vec<u8>>),
    Wrote(io::Result<usize>),
}

/// Relay until both directions end, an error, or a close.
async fn pump(mut stream: TcpStream, io: &mut ChannelIo) -> Outcome {
    let mut pending = Pending::default();
    let mut read_ended = false;
    let mut peer_ended = false;
    let mut write_shut = false;
    loop {
        if peer_ended && pending.is_empty() && !write_shut {
            // Everything the peer sent is written: pass its end on.
            if let Err(err) = stream.shutdown().await {
                return Outcome::Ended {
                    error: Some(format!("closing the connection's write side failed: {err}")),
                };
            }
            write_shut = true;
        }
        if read_ended && write_shut {
            return Outcome::Ended { error: None };
        }
        let readable = !read_ended && io.sent.available() > 0;
        let event = tokio::select! {
            input = io.inputs.recv() => Event::Input(input),
            read = read_socket(&stream, io.sent.allowance(MAX_DATA_FRAME)), if readable => Event::Read(read),
            wrote = write_socket(&stream, pending.front()), if !pending.is_empty() => Event::Wrote(wrote),
        };
        match event {
            Event::Input(None) => return Outcome::LinkGone,
            Event::Input(Some(Input::Data(bytes))) => {
                if peer_ended {
                    return Outcome::Ended {
                        error: Some("the server sent data after its end of stream".into()),
                    };
                }
                pending.push(bytes);
            }
            Event::Input(Some(Input::Credit(credit))) => {
                if let Err(error) = io.credited(credit) {
                    return Outcome::Ended { error: Some(error) };
                }
            }
            Event::Input(Some(Input::Eof)) => peer_ended = true,
            Event::Input(Some(Input::Resize { .. })) => {}
            Event::Input(Some(Input::Close { error })) => {
                // A close is a reset, not an end of stream (that is `Eof`).
                let _ = stream.set_zero_linger();
                return Outcome::Ended { error };
            }
            Event::Read(Ok(bytes)) if bytes.is_empty() => {
                read_ended = true;
                io.out.eof();
            }
            Event::Read(Ok(bytes)) => {
                io.sent.spend(bytes.len());
                io.out.data(bytes);
            }
            Event::Read(Err(err)) => {
                return Outcome::Ended {
                    error: Some(format!("reading the connection failed: {err}")),
                };
            }
            Event::Wrote(Ok(written)) => {
                pending.written(written);
                io.passed_on(written);
            }
            Event::Wrote(Err(err)) => {
                return Outcome::Ended {
                    error: Some(format!("writing to the connection failed: {err}")),
                };
            }
        }
    }
}

async fn read_socket(stream: &TcpStream, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit.max(1)];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

async fn write_socket(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_denied_address_refuses_the_host_naming_both() {
        let deny = deny::parse_deny_list(&["10.0.0.0/8".to_owned()]).unwrap();
        let addresses: Vec<SocketAddr> = vec![
            "192.0.2.1:80".parse().unwrap(),
            "10.1.1.1:80".parse().unwrap(),
        ];
        let error = check_allowed("svc.internal", 80, &addresses, &deny).unwrap_err();
        assert!(error.contains("svc.internal:80"), "{error}");
        assert!(error.contains("10.1.1.1"), "{error}");
        assert!(error.contains("'10.0.0.0/8'"), "{error}");
        assert!(check_allowed("svc", 80, &addresses[..1], &deny).is_ok());
    }
}
