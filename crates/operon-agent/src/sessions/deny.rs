//! The deny list of a forwarded TCP connection: which addresses the node
//! must never connect to on a session's behalf (cloud metadata, the agent's
//! own server, ...). The server sends the list with every `Tcp` channel; the
//! agent checks every address the host resolves to, so a name that resolves
//! to a denied address is refused even when its other addresses are fine.
//!
//! Pure: parsing and matching only, no I/O.
//!
//! An entry is `ADDRESS[/PREFIX][:PORT]`: `169.254.0.0/16`, `::1/128`,
//! `127.0.0.1/32:7780`, a bare address (`10.0.0.1`, `::1`: one host), or a
//! bare address with a port in socket form (`10.0.0.1:22`, `[::1]:22`).
//! An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it
//! carries, on both sides, so an entry for `127.0.0.0/8` cannot be bypassed
//! by spelling the target as IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// One parsed deny entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyEntry {
    /// As the server wrote it, for messages.
    text: String,
    network: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

/// A deny entry that cannot be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deny entry '{entry}': {problem}")]
pub struct DenyParseError {
    pub entry: String,
    pub problem: String,
}

impl DenyEntry {
    /// Does `address` (with `port`) fall under this entry?
    pub fn matches(&self, address: IpAddr, port: u16) -> bool {
        if self.port.is_some_and(|denied| denied != port) {
            return false;
        }
        match (canonical(address), self.network) {
            (IpAddr::V4(address), IpAddr::V4(network)) => {
                mask_v4(address, self.prefix) == mask_v4(network, self.prefix)
            }
            (IpAddr::V6(address), IpAddr::V6(network)) => {
                mask_v6(address, self.prefix) == mask_v6(network, self.prefix)
            }
            _ => false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DenyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for DenyEntry {
    type Err = DenyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| DenyParseError {
            entry: text.to_owned(),
            problem,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("empty entry".into()));
        }
        let (address, prefix, port) = match trimmed.split_once('/') {
            Some((address, rest)) => {
                let (prefix, port) = match rest.split_once(':') {
                    Some((prefix, port)) => (prefix, Some(parse_port(port).map_err(fail)?)),
                    None => (rest, None),
                };
                let address = IpAddr::from_str(address)
                    .map_err(|_| fail(format!("'{address}' is not an IP address")))?;
                let prefix = parse_prefix(prefix, address).map_err(fail)?;
                (address, prefix, port)
            }
            None => match IpAddr::from_str(trimmed) {
                Ok(address) => (address, full_prefix(address), None),
                Err(_) => match SocketAddr::from_str(trimmed) {
                    Ok(socket) => (socket.ip(), full_prefix(socket.ip()), Some(socket.port())),
                    Err(_) => {
                        return Err(fail(
                            "expected an IP address, a CIDR such as 10.0.0.0/8, \
                             optionally followed by :PORT"
                                .into(),
                        ));
                    }
                },
            },
        };
        let (network, prefix) = canonical_network(address, prefix);
        Ok(DenyEntry {
            text: trimmed.to_owned(),
            network,
            prefix,
            port,
        })
    }
}

/// Parse every entry; the first bad one is the error.
pub fn parse_deny_list(entries: &[String]) -> Result<Vec<DenyEntry>, DenyParseError> {
    entries.iter().map(|entry| entry.parse()).collect()
}

/// The first entry denying `address:port`, if any.
pub fn denied_by(list: &[DenyEntry], address: IpAddr, port: u16) -> Option<&DenyEntry> {
    list.iter().find(|entry| entry.matches(address, port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("'{text}' is not a port (1-65535)")),
    }
}

fn parse_prefix(text: &str, address: IpAddr) -> Result<u8, String> {
    let max = full_prefix(address);
    let prefix: u8 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a prefix length"))?;
    if prefix > max {
        let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!(
            "prefix length {prefix} is over {max}, the most for {family}"
        ));
    }
    Ok(prefix)
}

fn full_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// An entry inside `::ffff:0:0/96` is the IPv4 network it covers.
fn canonical_network(address: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match address {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix - 96),
            None => (address, prefix),
        },
        _ => (address, prefix),
    }
}

fn mask_v4(address: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(address);
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(address: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(address);
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> DenyEntry {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_v4_cidr_covers_its_network_only() {
        let link_local = entry("169.254.0.0/16");
        assert!(link_local.matches(ip("169.254.169.254"), 80));
        assert!(link_local.matches(ip("169.254.0.0"), 1));
        assert!(link_local.matches(ip("169.254.255.255"), 65535));
        assert!(!link_local.matches(ip("169.255.0.1"), 80));
        assert!(!link_local.matches(ip("169.253.255.255"), 80));
        assert!(
            !link_local.matches(ip("fe80::1"), 80),
            "no v6 from a v4 entry"
        );
    }

    #[test]
    fn a_v6_cidr_covers_its_network_only() {
        let loopback = entry("::1/128");
        assert!(loopback.matches(ip("::1"), 22));
        assert!(!loopback.matches(ip("::2"), 22));
        assert!(!loopback.matches(ip("127.0.0.1"), 22), "no v4 from ::1");
        let ula = entry("fd00::/8");
        assert!(ula.matches(ip("fd12:3456::1"), 443));
        assert!(!ula.matches(ip("fe80::1"), 443));
    }

    #[test]
    fn a_bare_address_is_one_host() {
        let host = entry("10.1.2.3");
        assert!(host.matches(ip("10.1.2.3"), 5));
        assert!(!host.matches(ip("10.1.2.4"), 5));
        let host6 = entry("2001:db8::7");
        assert!(host6.matches(ip("2001:db8::7"), 5));
        assert!(!host6.matches(ip("2001:db8::8"), 5));
    }

    #[test]
    fn a_port_suffix_limits_the_entry_to_that_port() {
        let server = entry("127.0.0.1/32:7780");
        assert!(server.matches(ip("127.0.0.1"), 7780));
        assert!(!server.matches(ip("127.0.0.1"), 7781));
        let v6 = entry("::1/128:22");
        assert!(v6.matches(ip("::1"), 22));
        assert!(!v6.matches(ip("::1"), 23));
        let socket = entry("10.0.0.1:22");
        assert!(socket.matches(ip("10.0.0.1"), 22));
        assert!(!socket.matches(ip("10.0.0.1"), 80));
        let socket6 = entry("[::1]:22");
        assert!(socket6.matches(ip("::1"), 22));
        assert!(!socket6.matches(ip("::1"), 80));
    }

    #[test]
    fn zero_prefixes_cover_a_whole_family() {
        assert!(entry("0.0.0.0/0").matches(ip("8.8.8.8"), 53));
        assert!(!entry("0.0.0.0/0").matches(ip("2001:db8::1"), 53));
        assert!(entry("::/0").matches(ip("2001:db8::1"), 53));
    }

    #[test]
    fn host_bits_in_an_entry_are_ignored() {
        assert!(entry("10.9.9.9/8").matches(ip("10.0.0.1"), 1));
    }

    #[test]
    fn v4_mapped_addresses_match_v4_entries() {
        let loopback = entry("127.0.0.0/8");
        assert!(loopback.matches(ip("::ffff:127.0.0.1"), 80));
        assert!(!loopback.matches(ip("::ffff:10.0.0.1"), 80));
        // And a mapped entry is its v4 network.
        let mapped = entry("::ffff:169.254.0.0/112");
        assert!(mapped.matches(ip("169.254.1.1"), 80));
        assert!(mapped.matches(ip("::ffff:169.254.1.1"), 80));
        assert!(!mapped.matches(ip("169.253.1.1"), 80));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let problem = |text: &str| text.parse::<DenyEntry>().unwrap_err().to_string();
        assert!(problem("").contains("empty"), "{}", problem(""));
        assert!(
            problem("10.0.0.0/33").contains("over 32"),
            "{}",
            problem("10.0.0.0/33")
        );
        assert!(
            problem("::/129").contains("over 128"),
            "{}",
            problem("::/129")
        );
        assert!(
            problem("10.0.0.0/x").contains("not a prefix length"),
            "{}",
            problem("10.0.0.0/x")
        );
        assert!(
            problem("example.com/8").contains("'example.com' is not an IP address"),
            "{}",
            problem("example.com/8")
        );
        assert!(problem("10.0.0.0/8:http").contains("not a port"));
        assert!(problem("10.0.0.0/8:70000").contains("not a port"));
        assert!(problem("10.0.0.0/8:0").contains("port 0"));
        assert!(problem("localhost").contains("expected an IP address"));
        assert!(problem("10.0.0.1:x").contains("expected an IP address"));
        assert!(problem("10.0.0.0/33").starts_with("deny entry '10.0.0.0/33'"));
    }

    #[test]
    fn a_list_names_its_first_denying_entry() {
        let list = parse_deny_list(&[
            "169.254.0.0/16".to_owned(),
            "127.0.0.1/32:7780".to_owned(),
            "127.0.0.0/8".to_owned(),
        ])
        .unwrap();
        assert_eq!(
            denied_by(&list, ip("127.0.0.1"), 7780).map(DenyEntry::as_str),
            Some("127.0.0.1/32:7780")
        );
        assert_eq!(
            denied_by(&list, ip("127.0.0.1"), 22).map(DenyEntry::as_str),
            Some("127.0.0.0/8")
        );
        assert_eq!(denied_by(&list, ip("192.0.2.1"), 22), None);
        assert!(parse_deny_list(&["10.0.0.0/8".to_owned(), "bad".to_owned()]).is_err());
        assert_eq!(parse_deny_list(&[]).unwrap(), vec![]);
    }
}
