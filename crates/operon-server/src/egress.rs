//! The egress policy: where the server's own outbound HTTP (webhook rule
//! targets, the runbook task `operon:http`) may go.
//!
//! Those requests are made on a user's behalf, so without a policy they are
//! a side door into whatever the server can reach: loopback services, cloud
//! metadata (169.254.169.254), the private network. The policy refuses every
//! address in the ranges below unless `operon server --http-allow` allows it,
//! by CIDR (matched against the resolved addresses) or by host name (the
//! URL's host, exactly, case-insensitive). Public addresses are allowed.
//!
//! This module is the pure decision: no I/O, no clock. [`client`] is the
//! thin shell that resolves a name once, asks [`AllowList::decide`] about
//! every address and connects only to the addresses it checked, so a name
//! that resolves elsewhere the second time (DNS rebinding) gains nothing.

pub mod client;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an address is not a destination by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 169.254.0.0/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10, 64:ff9b:1::/48.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (some clouds' metadata lives here).
    Shared,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 240.0.0.0/4 with the broadcast address, 192.0.0.0/24, 198.18.0.0/15,
    /// and the deprecated IPv4-compatible IPv6 addresses (`::/96`).
    Reserved,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blocked::Unspecified => "unspecified",
            Blocked::Loopback => "loopback",
            Blocked::LinkLocal => "link-local",
            Blocked::Private => "private",
            Blocked::Shared => "shared (carrier-grade NAT)",
            Blocked::Multicast => "multicast",
            Blocked::Reserved => "reserved or broadcast",
        })
    }
}

/// The range an address is refused by default for, if any. IPv6 forms that
/// carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by that address.
pub fn blocked(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

const V4_RANGES: &[([u8; 4], u8, Blocked)] = &[
    ([0, 0, 0, 0], 8, Blocked::Unspecified),
    ([10, 0, 0, 0], 8, Blocked::Private),
    ([100, 64, 0, 0], 10, Blocked::Shared),
    ([127, 0, 0, 0], 8, Blocked::Loopback),
    ([169, 254, 0, 0], 16, Blocked::LinkLocal),
    ([172, 16, 0, 0], 12, Blocked::Private),
    ([192, 0, 0, 0], 24, Blocked::Reserved),
    ([192, 168, 0, 0], 16, Blocked::Private),
    ([198, 18, 0, 0], 15, Blocked::Reserved),
    ([224, 0, 0, 0], 4, Blocked::Multicast),
    ([240, 0, 0, 0], 4, Blocked::Reserved),
];

fn blocked_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| same_prefix32(u32::from_be_bytes(*net), bits, *prefix))
        .map(|(_, _, why)| *why)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<Blocked> {
    let bits = u128::from(ip);
    let within = |net: u128, prefix: u8| same_prefix128(net, bits, prefix);
    if ip.is_unspecified() {
        return Some(Blocked::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Blocked::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return blocked_v4(v4);
    }
    if within(0, 96) {
        // ::a.b.c.d, IPv4-compatible: deprecated, never a real destination.
        return Some(Blocked::Reserved);
    }
    if within(0x0064_ff9b_0001 << 80, 48) {
        return Some(Blocked::Private); // local-use NAT64 (RFC 8215)
    }
    if within(0xfc00 << 112, 7) || within(0xfec0 << 112, 10) {
        return Some(Blocked::Private);
    }
    if within(0xfe80 << 112, 10) {
        return Some(Blocked::LinkLocal);
    }
    if within(0xff00 << 112, 8) {
        return Some(Blocked::Multicast);
    }
    None
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped
/// (`::ffff:0:0/96`), well-known NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if same_prefix128(0xffff << 32, bits, 96) || same_prefix128(0x0064_ff9b << 96, bits, 96) {
        return Some(Ipv4Addr::from(bits as u32));
    }
    if same_prefix128(0x2002 << 112, bits, 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn same_prefix32(a: u32, b: u32, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (32 - u32::from(prefix.min(32))) == 0
}

fn same_prefix128(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix.min(128))) == 0
}

/// An address range, `10.1.0.0/16` or `fd00::/8`; a bare address is its
/// own /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix32(u32::from(net), u32::from(ip), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix128(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One `--http-allow` entry: a CIDR range (or one address) or a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Net(Cidr),
    Host(String),
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<Cidr>() {
            return Ok(AllowEntry::Net(net));
        }
        if s.contains('/') || s.contains(':') {
            // Looks like an address or a range but is not one.
            return Err(s.parse::<Cidr>().unwrap_err());
        }
        let valid = !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if valid {
            Ok(AllowEntry::Host(s.to_ascii_lowercase()))
        } else {
            Err(format!(
                "{s:?} is neither a CIDR range (10.0.0.0/8, fd00::/8), an address nor a host name"
            ))
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Net(net) => net.fmt(f),
            AllowEntry::Host(host) => f.write_str(host),
        }
    }
}

/// What `--http-allow` allows beyond public addresses. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

impl AllowList {
    pub fn new(entries: impl IntoIterator<Item = AllowEntry>) -> AllowList {
        AllowList {
            entries: entries.into_iter().collect(),
        }
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    fn allows_host(&self, host: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, AllowEntry::Host(h) if h.eq_ignore_ascii_case(host)))
    }

    fn allows_addr(&self, ip: IpAddr) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, AllowEntry::Net(net) if net.contains(ip)))
    }

    /// The decision for a URL whose host is `host` and resolves to `addrs`
    /// (the address itself when the host is one): allowed when the host is
    /// allowed by name, or when every address is public or in an allowed
    /// range. One refused address refuses them all.
    pub fn decide(&self, host: &str, addrs: &[IpAddr]) -> Result<(), Refusal> {
        if self.allows_host(host) {
            return Ok(());
        }
        for &ip in addrs {
            if let Some(why) = blocked(ip).filter(|_| !self.allows_addr(ip)) {
                return Err(Refusal {
                    host: host.to_string(),
                    why: Why::Address(ip, why),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            entry.fmt(f)?;
        }
        Ok(())
    }
}

/// A comma-separated list of entries (`127.0.0.1/32,hooks.internal`).
impl FromStr for AllowList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entries = s
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<AllowEntry>, String>>()?;
        Ok(AllowList { entries })
    }
}

/// Only `http` and `https` URLs are fetched.
pub fn check_scheme(scheme: &str, host: &str) -> Result<(), Refusal> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(Refusal {
            host: host.to_string(),
            why: Why::Scheme(scheme.to_string()),
        })
    }
}

/// A destination the policy refused. Its text says which host, never why
/// (which address, which range): that detail is for [`Refusal::detail`],
/// logged at debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Scheme(String),
    Address(IpAddr, Blocked),
}

impl Refusal {
    /// Why, for the debug log.
    pub fn detail(&self) -> String {
        match &self.why {
            Why::Scheme(scheme) => format!("scheme {scheme:?} is not http or https"),
            Why::Address(ip, why) => format!("{} resolves to {ip}, a {why} address", self.host),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.why {
            Why::Scheme(_) => f.write_str("refused by the egress policy: only http and https URLs"),
            Why::Address(..) => write!(
                f,
                "refused by the egress policy: {} is not an allowed destination",
                self.host
            ),
        }
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn none() -> AllowList {
        AllowList::default()
    }

    fn refused(list: &AllowList, host: &str, addrs: &[&str]) -> bool {
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
        list.decide(host, &addrs).is_err()
    }

    #[test]
    fn every_default_refused_range_is_refused_at_both_ends() {
        let cases = [
            ("0.0.0.0", Blocked::Unspecified),
            ("0.255.255.255", Blocked::Unspecified),
            ("127.0.0.1", Blocked::Loopback),
            ("127.255.255.254", Blocked::Loopback),
            ("169.254.169.254", Blocked::LinkLocal),
            ("169.254.0.0", Blocked::LinkLocal),
            ("169.254.255.255", Blocked::LinkLocal),
            ("10.0.0.0", Blocked::Private),
            ("10.255.255.255", Blocked::Private),
            ("172.16.0.0", Blocked::Private),
            ("172.31.255.255", Blocked::Private),
            ("192.168.0.1", Blocked::Private),
            ("192.168.255.255", Blocked::Private),
            ("100.64.0.0", Blocked::Shared),
            ("100.100.100.200", Blocked::Shared),
            ("100.127.255.255", Blocked::Shared),
            ("192.0.0.8", Blocked::Reserved),
            ("198.18.0.1", Blocked::Reserved),
            ("198.19.255.255", Blocked::Reserved),
            ("224.0.0.1", Blocked::Multicast),
            ("239.255.255.250", Blocked::Multicast),
            ("240.0.0.1", Blocked::Reserved),
            ("255.255.255.255", Blocked::Reserved),
            ("::", Blocked::Unspecified),
            ("::1", Blocked::Loopback),
            ("fe80::1", Blocked::LinkLocal),
            ("febf:ffff::1", Blocked::LinkLocal),
            ("fc00::1", Blocked::Private),
            ("fd00:ec2::254", Blocked::Private),
            ("fdff:ffff::1", Blocked::Private),
            ("fec0::1", Blocked::Private),
            ("64:ff9b:1::a00:1", Blocked::Private),
            ("ff02::1", Blocked::Multicast),
            ("ff0e::1", Blocked::Multicast),
            ("::7f00:1", Blocked::Reserved),
        ];
        for (addr, why) in cases {
            assert_eq!(blocked(ip(addr)), Some(why), "{addr}");
            assert!(refused(&none(), "h", &[addr]), "{addr}");
        }
    }

    #[test]
    fn public_addresses_and_the_neighbours_of_refused_ranges_are_allowed() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "fbff:ffff::1",
            "fe00::1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(blocked(ip(addr)), None, "{addr}");
            assert!(!refused(&none(), "h", &[addr]), "{addr}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
        for (addr, why) in [
            ("::ffff:127.0.0.1", Blocked::Loopback),
            ("::ffff:7f00:1", Blocked::Loopback),
            ("::ffff:169.254.169.254", Blocked::LinkLocal),
            ("::ffff:10.1.2.3", Blocked::Private),
            ("::ffff:172.16.0.1", Blocked::Private),
            ("::ffff:192.168.1.1", Blocked::Private),
            ("::ffff:0.0.0.0", Blocked::Unspecified),
            ("::ffff:224.0.0.1", Blocked::Multicast),
            ("::ffff:255.255.255.255", Blocked::Reserved),
            ("64:ff9b::127.0.0.1", Blocked::Loopback),
            ("64:ff9b::169.254.169.254", Blocked::LinkLocal),
            ("2002:7f00:1::", Blocked::Loopback),
            ("2002:a9fe:a9fe::1", Blocked::LinkLocal),
            ("2002:c0a8:101::1", Blocked::Private),
        ] {
            assert_eq!(blocked(ip(addr)), Some(why), "{addr}");
        }
        assert_eq!(blocked(ip("::ffff:8.8.8.8")), None);
    }

    #[test]
    fn one_refused_address_refuses_the_host() {
        assert!(refused(&none(), "mixed", &["8.8.8.8", "127.0.0.1"]));
        assert!(refused(&none(), "mixed", &["::1", "8.8.8.8"]));
        assert!(!refused(&none(), "public", &["8.8.8.8", "1.1.1.1"]));
        assert!(!refused(&none(), "nothing", &[]));
    }

    #[test]
    fn the_allow_list_allows_ranges_by_address_and_hosts_by_name() {
        let list: AllowList = "127.0.0.1/32, 10.1.0.0/16,fd00::/8,Hooks.Internal"
            .parse()
            .unwrap();
        assert!(!refused(&list, "h", &["127.0.0.1"]));
        assert!(refused(&list, "h", &["127.0.0.2"]), "only the /32");
        assert!(!refused(&list, "h", &["::ffff:127.0.0.1"]), "mapped form");
        assert!(refused(&list, "h", &["::1"]), "IPv6 loopback not listed");
        assert!(!refused(&list, "h", &["10.1.255.255"]));
        assert!(refused(&list, "h", &["10.2.0.0"]));
        assert!(!refused(&list, "h", &["fd12::1"]));
        assert!(refused(&list, "h", &["fc00::1"]));
        assert!(refused(&list, "h", &["127.0.0.1", "169.254.169.254"]));
        // By name: the URL's host, exactly, whatever it resolves to.
        assert!(!refused(&list, "hooks.internal", &["192.168.1.1"]));
        assert!(!refused(&list, "HOOKS.internal", &["169.254.169.254"]));
        assert!(refused(&list, "x.hooks.internal", &["192.168.1.1"]));
        assert!(refused(&list, "hooks.internal.evil", &["192.168.1.1"]));
        // A bare address is its own range.
        let one: AllowList = "169.254.169.254,::1".parse().unwrap();
        assert!(!refused(&one, "h", &["169.254.169.254"]));
        assert!(refused(&one, "h", &["169.254.169.253"]));
        assert!(!refused(&one, "h", &["::1"]));
        // Wide ranges are taken as written.
        let all: AllowList = "0.0.0.0/0".parse().unwrap();
        assert!(!refused(&all, "h", &["127.0.0.1", "10.0.0.1"]));
        assert!(refused(&all, "h", &["::1"]), "an IPv4 range holds no IPv6");
    }

    #[test]
    fn allow_entries_are_parsed_strictly() {
        assert_eq!(
            "10.0.0.0/8".parse::<AllowEntry>(),
            Ok(AllowEntry::Net("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            "Example.COM".parse::<AllowEntry>(),
            Ok(AllowEntry::Host("example.com".into()))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0.0/x",
            "300.1.1.1/8",
            "host:8080",
            "a/b",
            "a..b",
            "http://x",
            "sp ace",
        ] {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "127.0.0.1/32,"
                .parse::<AllowList>()
                .unwrap()
                .entries()
                .len(),
            1
        );
        assert_eq!("".parse::<AllowList>().unwrap(), AllowList::default());
        let list: AllowList = "10.0.0.0/8, Hooks.Internal,::1".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,hooks.internal,::1/128");
        assert!("ok,bad/1".parse::<AllowList>().is_err());
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
    }

    #[test]
    fn only_http_and_https_are_allowed() {
        assert!(check_scheme("http", "h").is_ok());
        assert!(check_scheme("https", "h").is_ok());
        assert!(check_scheme("HTTP", "h").is_ok());
        for scheme in ["file", "ftp", "gopher", "ws", "unix", ""] {
            let refusal = check_scheme(scheme, "h").unwrap_err();
            assert!(refusal.to_string().contains("egress policy"), "{refusal}");
        }
    }

    #[test]
    fn the_refusal_names_the_host_and_keeps_the_reason_for_the_log() {
        let refusal = none()
            .decide("metadata.internal", &[ip("169.254.169.254")])
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "refused by the egress policy: metadata.internal is not an allowed destination"
        );
        assert!(refusal.detail().contains("169.254.169.254"));
        assert!(refusal.detail().contains("link-local"));
        // The same text whatever the range.
        let other = none().decide("metadata.internal", &[ip("10.0.0.1")]);
        assert_eq!(other.unwrap_err().to_string(), refusal.to_string());
    }
}
