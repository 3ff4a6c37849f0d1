//! Parsers for the `/proc` files the sampler reads. Pure: each takes the
//! file's text and returns what it found, skipping lines it cannot read (a
//! kernel newer than this code may add fields or lines; what is known still
//! counts). `None` means the file said nothing usable at all.

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Every tick: user, nice, system, idle, iowait, irq, softirq, steal.
    /// (guest and guest_nice are already counted in user and nice.)
    pub total: u64,
    /// Ticks doing nothing: idle and iowait.
    pub idle: u64,
}

/// `/proc/stat`: the first line, `cpu  user nice system idle iowait ...`.
pub fn parse_cpu(text: &str) -> Option<CpuTimes> {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    // Kernels before 2.6.11 had fewer fields; four (up to idle) are enough.
    if fields.len() < 4 {
        return None;
    }
    // Saturating: a corrupt line must not overflow (and panic in debug).
    let idle = fields[3].saturating_add(fields.get(4).copied().unwrap_or(0));
    Some(CpuTimes {
        total: fields.iter().fold(0u64, |sum, f| sum.saturating_add(*f)),
        idle,
    })
}

/// What `/proc/meminfo` says, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    /// `MemAvailable` (the kernel's estimate of what can be used without
    /// swapping); on kernels before 3.14, free + buffers + cached.
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

/// `/proc/meminfo`: `Name:   1234 kB` lines.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let mut fields = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(Ok(value)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match words.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value,
        };
        fields.insert(name.trim(), bytes);
    }
    let total = *fields.get("MemTotal")?;
    let available = match fields.get("MemAvailable") {
        Some(available) => *available,
        None => ["MemFree", "Buffers", "Cached"]
            .iter()
            .map(|name| fields.get(name).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add),
    };
    Some(MemInfo {
        total,
        available,
        swap_total: fields.get("SwapTotal").copied().unwrap_or(0),
        swap_free: fields.get("SwapFree").copied().unwrap_or(0),
    })
}

/// Load averages over 1, 5 and 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// `/proc/loadavg`: `0.67 1.10 0.59 1/145 27380`.
pub fn parse_loadavg(text: &str) -> Option<LoadAvg> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    let load = LoadAvg {
        one: fields.next()??,
        five: fields.next()??,
        fifteen: fields.next()??,
    };
    [load.one, load.five, load.fifteen]
        .iter()
        .all(|v| v.is_finite())
        .then_some(load)
}

/// Bytes a block device has read and written since boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// `/proc/diskstats` counts sectors of 512 bytes, whatever the device's
/// real sector size.
const DISKSTATS_SECTOR: u64 = 512;

/// `/proc/diskstats`, whole disks only.
///
/// Skipped: `loop*`, `ram*` and `zram*` (memory or files, not disks), `sr*`
/// and `fd*` (removable), and a partition whose whole disk is also listed
/// (`sda1` when `sda` is there; `nvme0n1p1` and `mmcblk0p1` likewise), since
/// its traffic is already in the disk's. A partition whose disk is absent
/// (some virtual machines and containers list only partitions) is kept.
/// Device-mapper (`dm-*`) and RAID (`md*`) volumes are kept: their traffic
/// is also counted on the disks below them, but per device, not summed.
pub fn parse_diskstats(text: &str) -> Vec<DiskIo> {
    let all: Vec<DiskIo> = text.lines().filter_map(parse_diskstats_line).collect();
    let names: std::collections::HashSet<&str> = all.iter().map(|d| d.device.as_str()).collect();
    let keep: Vec<bool> = all
        .iter()
        .map(|disk| {
            !is_pseudo_block_device(&disk.device)
                && whole_disk_of(&disk.device).is_none_or(|parent| !names.contains(parent))
        })
        .collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|(disk, keep)| keep.then_some(disk))
        .collect()
}

fn parse_diskstats_line(line: &str) -> Option<DiskIo> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // major minor name reads merged sectors_read ms writes merged sectors_written ...
    let sectors = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(DiskIo {
        device: (*fields.get(2)?).to_owned(),
        read_bytes: sectors(5)?.saturating_mul(DISKSTATS_SECTOR),
        written_bytes: sectors(9)?.saturating_mul(DISKSTATS_SECTOR),
    })
}

fn is_pseudo_block_device(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "fd"]
        .iter()
        .any(|prefix| name.strip_prefix(prefix).is_some_and(is_digits))
}

/// The whole disk a partition name belongs to: `sda1` -> `sda`,
/// `nvme0n1p2` -> `nvme0n1`, `mmcblk0p1` -> `mmcblk0`. `None` for a name
/// that does not end in a partition number.
fn whole_disk_of(name: &str) -> Option<&str> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == name.len() || stem.is_empty() {
        return None;
    }
    // Names ending in a digit take a `p` before the partition number.
    match stem.strip_suffix('p') {
        Some(disk) if disk.ends_with(|c: char| c.is_ascii_digit()) => Some(disk),
        _ => Some(stem),
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Bytes a network interface has received and sent since it came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetIo {
    pub interface: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// `/proc/net/dev`, the loopback interface `lo` left out (traffic of the
/// node with itself).
pub fn parse_net_dev(text: &str) -> Vec<NetIo> {
    text.lines()
        .filter_map(|line| {
            // Old kernels wrote `eth0:123` with no space after the colon.
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.is_empty() || name.contains('|') {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            // 8 receive counters, then the transmit ones.
            Some(NetIo {
                interface: name.to_owned(),
                rx_bytes: *fields.first()?,
                tx_bytes: *fields.get(8)?,
            })
        })
        .collect()
}

/// A mounted file system worth reporting on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// File system types that do not hold the node's data, or that the sampler
/// must not touch:
/// - kernel and memory file systems (`proc`, `sysfs`, `tmpfs`, `cgroup*`, ...):
///   their "space" is RAM or nothing; memory has its own metrics;
/// - `squashfs` (snaps, live images): read-only and always 100 % full;
/// - network file systems (`nfs*`, `cifs`, `fuse.sshfs`, ...): they are
///   another machine's disks, and `statvfs` on a dead server blocks for
///   minutes, which would stall sampling.
///
/// `overlay` is kept: it is the root of an agent running in a container.
pub const SKIPPED_FS_TYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "securityfs",
    "pstore",
    "efivarfs",
    "bpf",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "selinuxfs",
    "squashfs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "fuse.sshfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "fuse.lxcfs",
];

fn is_skipped_fs_type(fs_type: &str) -> bool {
    fs_type.starts_with("cgroup") || SKIPPED_FS_TYPES.contains(&fs_type)
}

/// `/proc/self/mounts`: the file systems to report, in mount order.
///
/// Pseudo, memory, read-only image and network file systems are skipped
/// (see [`SKIPPED_FS_TYPES`]). A device mounted at several places (bind
/// mounts) is reported once, at the place it was mounted first, as `df`
/// does; a mount point mounted over is reported once, for the file system
/// on top.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if is_skipped_fs_type(fs_type) {
            continue;
        }
        let mount = Mount {
            source: unescape_mount_field(source),
            mount_point: unescape_mount_field(mount_point),
            fs_type: fs_type.to_owned(),
        };
        if mount.source.starts_with('/') && mounts.iter().any(|m| m.source == mount.source) {
            continue;
        }
        // Mounted over: what is visible at that path is the later one.
        mounts.retain(|m| m.mount_point != mount.mount_point);
        mounts.push(mount);
    }
    mounts
}

/// The kernel writes space, tab, newline and backslash in mount fields as
/// three-digit octal escapes (`\040`).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_of_a_real_proc_stat() {
        let cpu = parse_cpu(include_str!("fixtures/stat_a.txt")).unwrap();
        // cpu  38804 0 18602 760643 548 0 124 83 0 0
        assert_eq!(
            cpu,
            CpuTimes {
                total: 38804 + 18602 + 760643 + 548 + 124 + 83,
                idle: 760643 + 548,
            }
        );
    }

    #[test]
    fn cpu_lines_that_cannot_be_read() {
        for text in [
            "",
            "cpu0 1 2 3 4\n",
            "cpu 1 2 3\n",
            "cpu 1 2 x 4 5\n",
            "intr 1 2 3 4 5\n",
        ] {
            assert_eq!(parse_cpu(text), None, "{text:?}");
        }
        // An old kernel with only four fields.
        assert_eq!(
            parse_cpu("cpu 1 2 3 4\n"),
            Some(CpuTimes { total: 10, idle: 4 })
        );
    }

    #[test]
    fn meminfo_of_a_real_node() {
        let mem = parse_meminfo(include_str!("fixtures/meminfo.txt")).unwrap();
        assert_eq!(mem.total, 24683664 * 1024);
        assert_eq!(mem.swap_total, 0);
        assert!(mem.available > 0 && mem.available <= mem.total);
    }

    #[test]
    fn meminfo_without_memavailable_adds_free_buffers_and_cached() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\nSwapTotal: 50 kB\nSwapFree: 40 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(MemInfo {
                total: 1000 * 1024,
                available: 420 * 1024,
                swap_total: 50 * 1024,
                swap_free: 40 * 1024,
            })
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("garbage\n:::\n"), None);
    }

    #[test]
    fn loadavg_table() {
        let real = parse_loadavg(include_str!("fixtures/loadavg.txt")).unwrap();
        assert!(real.one >= 0.0 && real.fifteen >= 0.0);
        assert_eq!(
            parse_loadavg("0.67 1.10 0.59 1/145 27380\n"),
            Some(LoadAvg {
                one: 0.67,
                five: 1.10,
                fifteen: 0.59
            })
        );
        for bad in ["", "0.5 0.4", "a b c", "NaN 1 1"] {
            assert_eq!(parse_loadavg(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn diskstats_of_this_machine_keep_the_disk_and_skip_loop_and_zram() {
        let disks = parse_diskstats(include_str!("fixtures/diskstats.txt"));
        let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda"]);
        // 254 0 vda 58043 8004 3875810 ... sectors written at field 10.
        assert_eq!(disks[0].read_bytes % 512, 0);
        assert!(disks[0].written_bytes > 0);
    }

    #[test]
    fn diskstats_of_a_server_skip_partitions_of_listed_disks() {
        let disks = parse_diskstats(include_str!("fixtures/diskstats_server.txt"));
        let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
        // sdb is not listed, so its partition stands for it.
        assert_eq!(names, ["nvme0n1", "sda", "dm-0", "mmcblk0", "sdb1"]);
        let sda = &disks[1];
        assert_eq!(sda.read_bytes, 10876066 * 512);
        assert_eq!(sda.written_bytes, 6271136 * 512);
    }

    #[test]
    fn whole_disk_names() {
        for (name, disk) in [
            ("sda1", Some("sda")),
            ("sda", None),
            ("vdb12", Some("vdb")),
            ("nvme0n1p2", Some("nvme0n1")),
            ("nvme0n1", Some("nvme0n")), // never listed, so kept
            ("mmcblk0p1", Some("mmcblk0")),
            ("dm-0", Some("dm-")),
            ("123", None),
        ] {
            assert_eq!(whole_disk_of(name), disk, "{name}");
        }
    }

    #[test]
    fn net_dev_of_this_machine_skips_lo() {
        let nets = parse_net_dev(include_str!("fixtures/net_dev.txt"));
        let names: Vec<&str> = nets.iter().map(|n| n.interface.as_str()).collect();
        assert!(!names.contains(&"lo"));
        assert!(names.contains(&"eth0"), "{names:?}");
    }

    #[test]
    fn net_dev_table() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0:100 2 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n  wg0: 1 2 3\n";
        assert_eq!(
            parse_net_dev(text),
            [NetIo {
                interface: "eth0".into(),
                rx_bytes: 100,
                tx_bytes: 300
            }]
        );
    }

    #[test]
    fn mounts_of_this_machine_keep_only_the_real_root() {
        let mounts = parse_mounts(include_str!("fixtures/mounts.txt"));
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/"]);
    }

    #[test]
    fn mounts_of_a_server() {
        let mounts = parse_mounts(include_str!("fixtures/mounts_server.txt"));
        let points: Vec<(&str, &str)> = mounts
            .iter()
            .map(|m| (m.mount_point.as_str(), m.fs_type.as_str()))
            .collect();
        assert_eq!(
            points,
            [
                ("/", "ext4"),
                ("/boot/efi", "vfat"),
                ("/srv/data disk", "xfs"),
                ("/var/lib/docker/overlay2/4f1c/merged", "overlay"),
            ]
        );
    }

    #[test]
    fn a_mount_point_mounted_over_reports_the_top_one() {
        let text = "/dev/sda1 /data ext4 rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source, "/dev/sdb1");
    }

    #[test]
    fn mount_field_escapes() {
        assert_eq!(unescape_mount_field(r"/a\040b\011c"), "/a b\tc");
        assert_eq!(unescape_mount_field(r"/a\\"), r"/a\\");
        assert_eq!(unescape_mount_field(r"/a\04"), r"/a\04");
        assert_eq!(unescape_mount_field(r"/a\999"), r"/a\999");
    }

    proptest::proptest! {
        /// Whatever the kernel (or a corrupted file) writes, parsing never
        /// panics.
        #[test]
        fn parsers_never_panic(text in "(?s)[ -~\\t\\n\\\\:|]{0,400}") {
            let _ = parse_cpu(&text);
            let _ = parse_meminfo(&text);
            let _ = parse_loadavg(&text);
            let _ = parse_diskstats(&text);
            let _ = parse_net_dev(&text);
            let _ = parse_mounts(&text);
        }

        #[test]
        fn huge_counters_never_overflow(values in proptest::collection::vec(proptest::num::u64::ANY, 8)) {
            let line = values.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
            let _ = parse_cpu(&format!("cpu {line}\n"));
            let mem = format!("MemTotal: {} kB\nMemFree: {}\nBuffers: {}\nCached: {}\n", values[0], values[1], values[2], values[3]);
            let _ = parse_meminfo(&mem);
        }

        #[test]
        fn numeric_lines_never_panic(fields in proptest::collection::vec("[0-9]{1,22}|[a-z]{1,8}[0-9]{0,3}", 0..20)) {
            let line = fields.join(" ");
            let text = format!("cpu {line}\n{line}\neth0: {line}\nMemTotal: {line}\n");
            let _ = parse_cpu(&text);
            let _ = parse_meminfo(&text);
            let _ = parse_diskstats(&text);
            let _ = parse_net_dev(&text);
        }
    }
}
