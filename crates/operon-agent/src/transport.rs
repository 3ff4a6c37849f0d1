//! When a secret may travel over plain HTTP.
//!
//! The agent (node credential, enrollment token) and the CLI (API token)
//! send a secret with every request. Over `http://` anyone on the path reads
//! it, so both refuse a plain-HTTP server unless
//!
//! - the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`):
//!   the traffic never leaves the machine, which is how `operon up` and the
//!   tests run; or
//! - the operator said `--insecure` (or `OPERON_INSECURE=1`).
//!
//! An agent whose credential pins a certificate never talks plain HTTP at
//! all, `--insecure` or not: the pin says the server speaks TLS, so an
//! `http://` URL is a mistake or a downgrade.
//!
//! This module only decides; it does no I/O.

use std::net::IpAddr;

/// Whether a server URL is encrypted, and if not, whether it stays on this
/// machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `https://` or `wss://`.
    Tls,
    /// `http://` or `ws://` to a loopback host.
    PlainLoopback,
    /// `http://` or `ws://` to any other host (named here).
    PlainRemote { host: String },
}

/// Classify `url`. `Err` for a URL without an http(s)/ws(s) scheme or host.
pub fn classify(url: &str) -> Result<Transport, String> {
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("wss://") {
        return Ok(Transport::Tls);
    }
    let rest = if lower.starts_with("http://") {
        &trimmed["http://".len()..]
    } else if lower.starts_with("ws://") {
        &trimmed["ws://".len()..]
    } else {
        return Err("expected an http:// or https:// URL".to_owned());
    };
    let host = host_of(rest).ok_or_else(|| "the URL has no host".to_owned())?;
    if is_loopback_host(host) {
        Ok(Transport::PlainLoopback)
    } else {
        Ok(Transport::PlainRemote {
            host: host.to_owned(),
        })
    }
}

/// The host of what follows `scheme://`: without user info, port, path;
/// an IPv6 literal without its brackets.
fn host_of(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then_some(host)
}

/// `localhost` (any case, with or without the final dot), an IPv4 address
/// in `127.0.0.0/8`, `::1`, or an IPv4-mapped loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Why a secret will not be sent to a server URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Plain HTTP to a host that is not loopback, without `--insecure`.
    #[error(
        "refusing to send credentials over plain HTTP to {url}: {host} is not a loopback address. Use an https:// URL, or pass --insecure (or set OPERON_INSECURE=1) if the network between you and the server is trusted"
    )]
    PlainHttp { url: String, host: String },
    /// A pinned certificate and a plain-HTTP URL.
    #[error(
        "refusing {url}: the server's TLS certificate is pinned ({pin}), so it must be reached over https://, not plain HTTP (--insecure does not change this)"
    )]
    PinnedButPlain { url: String, pin: String },
    #[error("invalid server URL '{url}': {message}")]
    BadUrl { url: String, message: String },
}

/// May a secret be sent to `url`? `pin` is the pinned certificate
/// fingerprint, if any; `insecure` is the operator's `--insecure`.
pub fn check(url: &str, pin: Option<&str>, insecure: bool) -> Result<Transport, Refusal> {
    let transport = classify(url).map_err(|message| Refusal::BadUrl {
        url: url.to_owned(),
        message,
    })?;
    match (&transport, pin) {
        (Transport::Tls, _) => Ok(transport),
        (_, Some(pin)) => Err(Refusal::PinnedButPlain {
            url: url.to_owned(),
            pin: pin.to_owned(),
        }),
        (Transport::PlainLoopback, None) => Ok(transport),
        (Transport::PlainRemote { .. }, None) if insecure => Ok(transport),
        (Transport::PlainRemote { host }, None) => Err(Refusal::PlainHttp {
            url: url.to_owned(),
            host: host.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.255.255.1",
            "0.0.0.0",
            "::",
            "128.0.0.1",
            "192.168.1.1",
            "example.com",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "::ffff:10.0.0.1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn classify_urls() {
        let remote = |host: &str| Transport::PlainRemote { host: host.into() };
        let cases = [
            ("https://ops.example", Transport::Tls),
            ("HTTPS://10.0.0.1:7780", Transport::Tls),
            ("wss://10.0.0.1", Transport::Tls),
            ("http://127.0.0.1:7780", Transport::PlainLoopback),
            ("http://localhost:7780/", Transport::PlainLoopback),
            ("http://[::1]:7780", Transport::PlainLoopback),
            (
                "ws://127.0.0.1:7780/v1/agent/connect",
                Transport::PlainLoopback,
            ),
            ("HTTP://LocalHost", Transport::PlainLoopback),
            ("http://10.255.255.1:7780", remote("10.255.255.1")),
            ("http://ops.example", remote("ops.example")),
            ("http://[fe80::1]:7780", remote("fe80::1")),
            // User info cannot disguise the host.
            ("http://127.0.0.1@evil.example/", remote("evil.example")),
            (
                "http://localhost.evil.example:80",
                remote("localhost.evil.example"),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(classify(url), Ok(want), "{url}");
        }
        assert!(classify("ftp://127.0.0.1").is_err());
        assert!(classify("http://").is_err());
        assert!(classify("127.0.0.1:7780").is_err());
    }

    #[test]
    fn plain_http_needs_loopback_or_insecure() {
        assert!(check("http://127.0.0.1:7780", None, false).is_ok());
        assert!(check("https://10.0.0.1:7780", None, false).is_ok());
        let err = check("http://10.255.255.1:7780", None, false).unwrap_err();
        assert!(matches!(err, Refusal::PlainHttp { .. }));
        assert!(err.to_string().contains("--insecure"), "{err}");
        assert!(check("http://10.255.255.1:7780", None, true).is_ok());
    }

    #[test]
    fn a_pinned_certificate_never_goes_plain() {
        let pin = "sha256:00";
        assert!(check("https://10.0.0.1", Some(pin), false).is_ok());
        for insecure in [false, true] {
            for url in ["http://127.0.0.1:7780", "http://10.0.0.1:7780"] {
                let err = check(url, Some(pin), insecure).unwrap_err();
                assert!(matches!(err, Refusal::PinnedButPlain { .. }), "{url}");
                assert!(err.to_string().contains("https://"), "{err}");
            }
        }
    }
}
