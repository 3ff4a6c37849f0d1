//! IP addresses and CIDR blocks (`{"cidr": "10.0.0.0/24"}`), IPv4 and IPv6.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub v6: bool,
    pub low: u128,
    pub high: u128,
}

/// An address parsed from an event value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    pub v6: bool,
    pub bits: u128,
}

impl IpRange {
    pub fn contains(&self, ip: Ip) -> bool {
        self.v6 == ip.v6 && self.low <= ip.bits && ip.bits <= self.high
    }

    /// The range holding exactly one address.
    pub fn single(ip: Ip) -> IpRange {
        IpRange {
            v6: ip.v6,
            low: ip.bits,
            high: ip.bits,
        }
    }

    /// Parses `address/bits`; the error says what is wrong.
    pub fn parse_cidr(text: &str) -> Result<IpRange, String> {
        let mut parts = text.split('/');
        let (Some(address), Some(mask), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed CIDR, one '/' required".to_string());
        };
        let mask: u32 = mask
            .parse()
            .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
        let ip = parse_ip(address).ok_or_else(|| format!("Nonstandard IP address: {address}"))?;
        let width = if ip.v6 { 128 } else { 32 };
        if mask > width {
            return Err(format!(
                "Malformed CIDR, mask bits must be between 0 and {width}"
            ));
        }
        let host_bits = width - mask;
        let host_mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        Ok(IpRange {
            v6: ip.v6,
            low: ip.bits & !host_mask,
            high: ip.bits | host_mask,
        })
    }
}

/// Parses a plain IPv4 (dotted quad) or IPv6 address.
pub fn parse_ip(text: &str) -> Option<Ip> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(Ip {
            v6: false,
            bits: u128::from(u32::from(v4)),
        });
    }
    if text.contains(':')
        && let Ok(v6) = text.parse::<Ipv6Addr>()
    {
        return Some(Ip {
            v6: true,
            bits: u128::from(v6),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_addresses_of_the_block() {
        let block = IpRange::parse_cidr("10.0.0.0/24").unwrap();
        assert!(block.contains(parse_ip("10.0.0.255").unwrap()));
        assert!(!block.contains(parse_ip("10.0.1.0").unwrap()));
        assert!(parse_ip("10.0.0.256").is_none());
        let v6 = IpRange::parse_cidr("2001:db8:1234:1a00::/64").unwrap();
        assert!(v6.contains(parse_ip("2001:db8:1234:1a00:0:0:0:5").unwrap()));
        assert!(!v6.contains(parse_ip("2001:0db8:123f:1a01:0000:0000:0000:0000").unwrap()));
        assert!(
            IpRange::parse_cidr("0.0.0.0/0")
                .unwrap()
                .contains(parse_ip("1.2.3.4").unwrap())
        );
    }

    #[test]
    fn rejects_malformed_blocks() {
        for bad in [
            "192.168.0.1/33",
            "foo",
            "foo/bar/baz",
            "192.168.0.1/foo",
            "snorkle/3",
            "10.10.10.10.10/3",
            "2.1.0.-1/3",
            "2400:6500:FF00::36FB:1F80/222",
            "xx.11.xx/8",
            "bad-/64filter",
        ] {
            assert!(IpRange::parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
