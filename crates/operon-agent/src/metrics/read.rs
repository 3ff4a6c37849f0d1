//! Reading the node: the `/proc` files of [`super::parse`] and `statvfs` of
//! each reported mount.
//!
//! The agent reads its *own* `/proc` (not `AgentConfig::host_root`): an agent
//! in a container sees the host's CPU, memory, load, disks and interfaces
//! only if it runs in the host's PID and network namespaces, and then its
//! `/proc` is the host's anyway; the mounts it sees are its own, which is
//! what it can measure with `statvfs`.

use std::path::Path;

use super::parse;
use super::sampler::{FsSpace, Readings};
use crate::sys;

/// Read everything the sampler needs from `proc` (normally `/proc`).
/// Blocking: call it off the async runtime. A file that cannot be read
/// leaves its metrics out (logged at debug: a container may hide some).
pub fn read_node(proc: &Path) -> Readings {
    let text = |name: &str| match std::fs::read_to_string(proc.join(name)) {
        Ok(text) => Some(text),
        Err(err) => {
            tracing::debug!(file = %proc.join(name).display(), %err, "cannot read");
            None
        }
    };
    Readings {
        cpu: text("stat").as_deref().and_then(parse::parse_cpu),
        memory: text("meminfo").as_deref().and_then(parse::parse_meminfo),
        load: text("loadavg").as_deref().and_then(parse::parse_loadavg),
        process_count: count_processes(proc),
        disks: text("diskstats")
            .as_deref()
            .map(parse::parse_diskstats)
            .unwrap_or_default(),
        interfaces: text("net/dev")
            .as_deref()
            .map(parse::parse_net_dev)
            .unwrap_or_default(),
        filesystems: text("self/mounts")
            .as_deref()
            .map(|mounts| filesystems(&parse::parse_mounts(mounts)))
            .unwrap_or_default(),
    }
}

/// Processes (not threads): the numeric entries of `/proc`.
fn count_processes(proc: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(proc).ok()?;
    let count = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            !name.is_empty() && name.iter().all(u8::is_ascii_digit)
        })
        .count();
    Some(count as u64)
}

/// `statvfs` of each mount; mounts that fail (gone, no permission) or have
/// no size (a pseudo file system not in the skip list) are left out.
fn filesystems(mounts: &[parse::Mount]) -> Vec<FsSpace> {
    mounts
        .iter()
        .filter_map(|mount| {
            let stats = match sys::statvfs(Path::new(&mount.mount_point)) {
                Ok(stats) => stats,
                Err(err) => {
                    tracing::debug!(mount = %mount.mount_point, %err, "statvfs failed");
                    return None;
                }
            };
            (stats.total_bytes > 0).then(|| FsSpace {
                mount_point: mount.mount_point.clone(),
                total_bytes: stats.total_bytes,
                free_bytes: stats.free_bytes,
                available_bytes: stats.available_bytes,
                total_inodes: stats.total_inodes,
                free_inodes: stats.free_inodes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_node_has_cpu_memory_load_processes_and_a_root_file_system() {
        let readings = read_node(Path::new("/proc"));
        assert!(readings.cpu.is_some_and(|cpu| cpu.total > 0));
        assert!(readings.memory.is_some_and(|mem| mem.total > 0));
        assert!(readings.load.is_some());
        assert!(readings.process_count.is_some_and(|n| n >= 1));
        let root = readings
            .filesystems
            .iter()
            .find(|fs| fs.mount_point == "/")
            .expect("the root file system");
        assert!(root.total_bytes >= root.free_bytes && root.free_bytes >= root.available_bytes);
    }

    #[test]
    fn a_missing_proc_reads_as_nothing() {
        let empty = tempfile::tempdir().unwrap();
        let readings = read_node(empty.path());
        assert_eq!(
            readings,
            Readings {
                process_count: Some(0),
                ..Readings::default()
            }
        );
    }
}
