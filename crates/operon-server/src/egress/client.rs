//! The I/O shell of the egress policy: an HTTP client whose DNS resolver
//! resolves a host once, asks [`AllowList::decide`] about every address and
//! hands the connector only addresses it checked (so the name is never
//! resolved again between the check and the connection). Hosts that are
//! addresses never reach a resolver; [`Outbound::send`] decides them before
//! sending. Redirects are not followed (a 3xx is the answer) and proxies
//! from the environment are not used, so nothing else picks the destination.
//!
//! Failures have two texts only, whatever happened inside: the policy's
//! refusal, or "could not connect to HOST" (refused, timed out, reset, no
//! such name: the same). The detail goes to the debug log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, RequestBuilder, Response};

use super::{AllowList, Refusal, check_scheme};

/// A failed outbound request, in the words callers may show to users.
#[derive(Debug)]
pub enum OutboundError {
    /// The egress policy refused the destination.
    Refused(Refusal),
    /// No answer: any connection failure, timeout or reset before the
    /// response head, or a name that does not resolve.
    Unreachable { host: String },
    /// The response broke off while its body was read.
    Read { host: String },
    /// The response body is larger than the cap.
    TooLarge { host: String, limit: usize },
    /// The request could not be built (a bad URL or header).
    Invalid(String),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Refused(refusal) => refusal.fmt(f),
            OutboundError::Unreachable { host } => write!(f, "could not connect to {host}"),
            OutboundError::Read { host } => write!(f, "could not read the response from {host}"),
            OutboundError::TooLarge { host, limit } => write!(
                f,
                "the response from {host} is larger than the limit of {limit} bytes"
            ),
            OutboundError::Invalid(message) => write!(f, "invalid request: {message}"),
        }
    }
}

/// One feature's HTTP client under the egress policy.
pub struct Outbound {
    client: reqwest::Client,
    allow: Arc<AllowList>,
}

impl Outbound {
    /// A client under `allow`; `timeout` bounds each whole request unless a
    /// request sets its own.
    pub fn new(
        allow: AllowList,
        user_agent: &str,
        timeout: Option<Duration>,
    ) -> Result<Outbound, String> {
        crate::tls::install_default_provider();
        let allow = Arc::new(allow);
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Resolver {
                allow: allow.clone(),
            });
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let client = builder
            .build()
            .map_err(|e| format!("building the outbound HTTP client: {e}"))?;
        Ok(Outbound { client, allow })
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Send a request made with [`Outbound::request`], if the policy allows
    /// its destination.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, OutboundError> {
        let request = request.build().map_err(|e| {
            // The client refuses other schemes itself; say it as the policy.
            let scheme = e
                .url()
                .map(|u| check_scheme(u.scheme(), u.host_str().unwrap_or("")));
            match scheme {
                Some(Err(refusal)) => refused(refusal),
                _ => OutboundError::Invalid(chain(&e)),
            }
        })?;
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_string();
        // An address as host is connected to without resolving: decide it
        // here. (The URL parser writes every IPv4 spelling, decimal or hex
        // included, as a dotted quad, and IPv6 in brackets.)
        let literal: Vec<IpAddr> = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .into_iter()
            .collect();
        if let Err(refusal) =
            check_scheme(url.scheme(), &host).and_then(|()| self.allow.decide(&host, &literal))
        {
            return Err(refused(refusal));
        }
        match self.client.execute(request).await {
            Ok(response) => Ok(response),
            Err(e) => match refusal_in(&e) {
                Some(refusal) => Err(refused(refusal.clone())),
                None => {
                    tracing::debug!(%host, error = %chain(&e), "outbound request failed");
                    Err(OutboundError::Unreachable { host })
                }
            },
        }
    }
}

fn refused(refusal: Refusal) -> OutboundError {
    tracing::info!(host = %refusal.host, "outbound request refused by the egress policy");
    tracing::debug!(detail = %refusal.detail(), "egress policy refusal");
    OutboundError::Refused(refusal)
}

/// The body of `response`, or [`OutboundError::TooLarge`] as soon as it
/// passes `limit` bytes (nothing more is read).
pub async fn read_capped(
    mut response: Response,
    host: &str,
    limit: usize,
) -> Result<Vec<u8>, OutboundError> {
    let too_large = || OutboundError::TooLarge {
        host: host.to_string(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                tracing::debug!(%host, error = %chain(&e), "reading an outbound response failed");
                return Err(OutboundError::Read {
                    host: host.to_string(),
                });
            }
        }
    }
}

/// Read and drop at most `limit` bytes of a body nobody needs (so a short
/// one leaves the connection reusable); errors do not matter.
pub async fn drain(mut response: Response, limit: usize) {
    let mut read = 0;
    while read <= limit {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => return,
        }
    }
}

/// Resolves once and refuses names with an address the policy refuses.
struct Resolver {
    allow: Arc<AllowList>,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
            allow.decide(&host, &ips)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The policy's refusal inside a client error (from the resolver).
fn refusal_in(e: &reqwest::Error) -> Option<&Refusal> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(refusal) = c.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        cause = c.source();
    }
    None
}

/// An error with its causes, for the debug log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A listener on loopback that answers every connection with `answer`
    /// and counts them.
    fn listener(answer: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in socket.incoming() {
                let Ok(mut stream) = stream else { return };
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(answer);
            }
        });
        (port, count)
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    }

    fn client(allow: &str) -> Outbound {
        Outbound::new(allow.parse().unwrap(), "test", Some(Duration::from_secs(5))).unwrap()
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

    #[tokio::test]
    async fn loopback_by_address_and_by_name_is_refused_before_connecting() {
        let (port, count) = listener(OK);
        let outbound = client("");
        for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"] {
            let url = format!("http://{host}:{port}/x");
            let e = outbound.send(outbound.post(&url)).await.unwrap_err();
            assert!(matches!(e, OutboundError::Refused(_)), "{url}: {e:?}");
            assert!(e.to_string().contains("egress policy"), "{e}");
        }
        // Decimal and hexadecimal spellings of 127.0.0.1 are addresses too.
        for url in ["http://2130706433/", "http://0x7f.1/"] {
            let e = outbound.send(outbound.post(url)).await.unwrap_err();
            assert!(matches!(e, OutboundError::Refused(_)), "{url}: {e:?}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 0, "nothing connected");
        let e = outbound
            .send(outbound.post("file:///etc/passwd"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("egress policy"), "{e}");
    }

    #[tokio::test]
    async fn allowed_destinations_are_reached_and_failures_read_alike() {
        let (port, count) = listener(OK);
        let by_range = client("127.0.0.1/32");
        let response = by_range
            .send(by_range.post(&format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // localhost resolves to 127.0.0.1 and perhaps ::1, which is not allowed.
        let by_name = client("LOCALHOST");
        let response = by_name
            .send(by_name.post(&format!("http://localhost:{port}/")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(count.load(Ordering::SeqCst), 2);

        // A closed port and a name that does not resolve: one text.
        let closed = by_range
            .send(by_range.post(&format!("http://127.0.0.1:{}/", closed_port())))
            .await
            .unwrap_err();
        assert_eq!(closed.to_string(), "could not connect to 127.0.0.1");
        let nowhere = by_range
            .send(by_range.post("http://no-such-host.invalid/"))
            .await
            .unwrap_err();
        assert_eq!(
            nowhere.to_string(),
            "could not connect to no-such-host.invalid"
        );
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let (target, reached) = listener(OK);
        let answer: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (port, _) = listener(answer);
        let outbound = client("127.0.0.1/32");
        let response = outbound
            .send(outbound.request(Method::GET, &format!("http://127.0.0.1:{port}/")))
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(reached.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn bodies_past_the_cap_are_refused() {
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{}",
                "x".repeat(100_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (port, _) = listener(big);
        let outbound = client("127.0.0.1/32");
        let url = format!("http://127.0.0.1:{port}/");
        let response = outbound.send(outbound.post(&url)).await.unwrap();
        let e = read_capped(response, "127.0.0.1", 1000).await.unwrap_err();
        assert!(matches!(e, OutboundError::TooLarge { .. }), "{e:?}");
        let response = outbound.send(outbound.post(&url)).await.unwrap();
        let body = read_capped(response, "127.0.0.1", 200_000).await.unwrap();
        assert_eq!(body.len(), 100_000);
    }
}
