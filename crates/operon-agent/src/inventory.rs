//! What the node is, read from `/proc`, `/etc/os-release` and the network
//! interfaces. Every source is optional: a missing file leaves its field
//! empty rather than failing.

use std::fs;

use operon_proto::Inventory;

/// Collect this node's inventory.
pub fn collect_inventory() -> Inventory {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    Inventory {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        os_name: os_release_field(&os_release, "NAME").unwrap_or_else(|| "Linux".to_owned()),
        os_version: os_release_field(&os_release, "VERSION_ID")
            .or_else(|| os_release_field(&os_release, "VERSION"))
            .unwrap_or_default(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_owned(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        memory_bytes: fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_bytes(&text))
            .unwrap_or(0),
        ip_addresses: ip_addresses(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A `KEY=value` field of os-release, unquoted.
pub fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        Some(value.to_owned())
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Addresses of the node's interfaces, loopback left out.
fn ip_addresses() -> Vec<String> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut addresses: Vec<String> = interfaces
        .into_iter()
        .filter(|iface| !iface.is_loopback())
        .map(|iface| iface.ip().to_string())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_fields_are_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n";
        assert_eq!(
            os_release_field(text, "NAME").as_deref(),
            Some("Debian GNU/Linux")
        );
        assert_eq!(os_release_field(text, "VERSION_ID").as_deref(), Some("13"));
        assert_eq!(os_release_field(text, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_field(text, "VERSION"), None);
    }

    #[test]
    fn mem_total_is_converted_from_kib() {
        assert_eq!(
            mem_total_bytes("MemTotal:  2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(mem_total_bytes("nothing"), None);
    }

    #[test]
    fn inventory_of_this_machine_is_filled() {
        let inventory = collect_inventory();
        assert!(!inventory.hostname.is_empty());
        assert!(!inventory.kernel.is_empty());
        assert!(inventory.cpus >= 1);
        assert!(inventory.memory_bytes > 0);
        assert_eq!(inventory.agent_version, env!("CARGO_PKG_VERSION"));
    }
}
