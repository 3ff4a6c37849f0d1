//! The forwarding deny list on the server's side: a target given as a
//! literal address is refused before anything reaches the node (names are
//! resolved, and checked, by the agent: `operon_proto::deny`).

use std::net::IpAddr;

use operon_proto::deny::{denied_by, parse_deny_list};

/// The deny entry `host:port` falls under, when `host` is an address.
pub fn literal_denied(host: &str, port: u16, entries: &[String]) -> Option<String> {
    let address: IpAddr = host.parse().ok()?;
    let list = parse_deny_list(entries).ok()?;
    denied_by(&list, address, port).map(|entry| entry.as_str().to_string())
}

/// Check the operator's deny entries at start-up (the error names the bad one).
pub fn check_entries(entries: &[String]) -> Result<(), String> {
    parse_deny_list(entries)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::limits::DEFAULT_FORWARD_DENY;

    #[test]
    fn metadata_addresses_are_refused_names_are_left_to_the_agent() {
        let deny: Vec<String> = DEFAULT_FORWARD_DENY.iter().map(|s| s.to_string()).collect();
        assert!(check_entries(&deny).is_ok());
        assert_eq!(
            literal_denied("169.254.169.254", 80, &deny).as_deref(),
            Some("169.254.0.0/16")
        );
        assert_eq!(
            literal_denied("fd00:ec2::254", 80, &deny).as_deref(),
            Some("fd00:ec2::254/128")
        );
        assert_eq!(
            literal_denied("::ffff:169.254.169.254", 80, &deny).as_deref(),
            Some("169.254.0.0/16")
        );
        assert_eq!(literal_denied("127.0.0.1", 5432, &deny), None);
        assert_eq!(literal_denied("metadata.google.internal", 80, &deny), None);
        assert!(
            check_entries(&["300.1.1.1/8".to_string()])
                .unwrap_err()
                .contains("300.1.1.1/8")
        );
    }
}
