//! From raw readings of the node to datapoints.
//!
//! [`Sampler::next`] is pure: it takes what was read (see [`Readings`]) and
//! the instant, and returns points. Levels (memory, load, disk space) come
//! from one reading; rates (CPU, disk and network I/O) from the difference
//! with the previous reading, so the first sample after start has none, and
//! a counter that went backwards (device re-created, counter reset) gives no
//! rate for that device that time rather than a nonsense one.

use std::collections::{BTreeMap, HashMap};

use operon_proto::{MetricPoint, UnixMillis};

use super::parse::{CpuTimes, DiskIo, LoadAvg, MemInfo, NetIo};

/// CloudWatch unit names used by the node's metrics.
pub mod unit {
    pub const PERCENT: &str = "Percent";
    pub const BYTES: &str = "Bytes";
    pub const BYTES_PER_SECOND: &str = "Bytes/Second";
    pub const COUNT: &str = "Count";
    pub const NONE: &str = "None";
}

/// Space and inodes of one mounted file system (`statvfs`), in bytes and
/// inodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSpace {
    pub mount_point: String,
    pub total_bytes: u64,
    /// Free for anyone (root included).
    pub free_bytes: u64,
    /// Free for unprivileged users (`df`'s "Avail").
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
}

/// Everything read from the node at one instant. A source that could not
/// be read is `None` (or empty) and its metrics are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    pub cpu: Option<CpuTimes>,
    pub memory: Option<MemInfo>,
    pub load: Option<LoadAvg>,
    pub process_count: Option<u64>,
    pub disks: Vec<DiskIo>,
    pub interfaces: Vec<NetIo>,
    pub filesystems: Vec<FsSpace>,
}

/// The counters of the previous reading, kept to compute rates.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    at: UnixMillis,
    cpu: Option<CpuTimes>,
    disks: HashMap<String, (u64, u64)>,
    interfaces: HashMap<String, (u64, u64)>,
}

impl Sampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// The datapoints for `readings` taken at `at`.
    pub fn next(&mut self, readings: Readings, at: UnixMillis) -> Vec<MetricPoint> {
        let mut points = Points {
            at,
            out: Vec::new(),
        };
        levels(&readings, &mut points);
        let current = Previous {
            at,
            cpu: readings.cpu,
            disks: readings
                .disks
                .iter()
                .map(|d| (d.device.clone(), (d.read_bytes, d.written_bytes)))
                .collect(),
            interfaces: readings
                .interfaces
                .iter()
                .map(|n| (n.interface.clone(), (n.rx_bytes, n.tx_bytes)))
                .collect(),
        };
        if let Some(previous) = &self.previous
            && at > previous.at
        {
            rates(previous, &current, &mut points);
        }
        self.previous = Some(current);
        points.out
    }
}

/// Collects points sharing one timestamp.
struct Points {
    at: UnixMillis,
    out: Vec<MetricPoint>,
}

impl Points {
    fn push(&mut self, name: &str, dimension: Option<(&str, &str)>, value: f64, unit: &str) {
        if !value.is_finite() {
            return;
        }
        self.out.push(MetricPoint {
            name: name.to_owned(),
            dimensions: dimension
                .map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())]))
                .unwrap_or_default(),
            at: self.at,
            value,
            unit: Some(unit.to_owned()),
        });
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 * 100.0 / whole as f64
}

/// Metrics read off one sample.
fn levels(readings: &Readings, points: &mut Points) {
    if let Some(mem) = readings.memory {
        let used = mem.total.saturating_sub(mem.available);
        points.push(
            "mem.used_percent",
            None,
            percent(used, mem.total),
            unit::PERCENT,
        );
        points.push(
            "mem.available_bytes",
            None,
            mem.available as f64,
            unit::BYTES,
        );
        let swap_used = mem.swap_total.saturating_sub(mem.swap_free);
        points.push(
            "swap.used_percent",
            None,
            percent(swap_used, mem.swap_total),
            unit::PERCENT,
        );
    }
    if let Some(load) = readings.load {
        points.push("load.1", None, load.one, unit::NONE);
        points.push("load.5", None, load.five, unit::NONE);
        points.push("load.15", None, load.fifteen, unit::NONE);
    }
    if let Some(count) = readings.process_count {
        points.push("proc.count", None, count as f64, unit::COUNT);
    }
    for fs in &readings.filesystems {
        let mount = Some(("mount", fs.mount_point.as_str()));
        // As `df` computes Use%: used over what users can have (used + avail),
        // so a disk whose reserved blocks are all that is left shows 100 %.
        let used = fs.total_bytes.saturating_sub(fs.free_bytes);
        let usable = used.saturating_add(fs.available_bytes);
        points.push(
            "disk.used_percent",
            mount,
            percent(used, usable),
            unit::PERCENT,
        );
        points.push(
            "disk.free_bytes",
            mount,
            fs.available_bytes as f64,
            unit::BYTES,
        );
        // File systems without an inode table (btrfs, vfat) report zero inodes.
        if fs.total_inodes > 0 {
            let used_inodes = fs.total_inodes.saturating_sub(fs.free_inodes);
            points.push(
                "disk.inodes_used_percent",
                mount,
                percent(used_inodes, fs.total_inodes),
                unit::PERCENT,
            );
        }
    }
}

/// Metrics from the difference between two samples.
fn rates(previous: &Previous, current: &Previous, points: &mut Points) {
    let seconds = (current.at - previous.at) as f64 / 1000.0;
    if let (Some(before), Some(now)) = (previous.cpu, current.cpu)
        && now.total > before.total
        && now.idle >= before.idle
    {
        let total = now.total - before.total;
        let busy = total.saturating_sub(now.idle - before.idle);
        points.push("cpu.used", None, percent(busy, total), unit::PERCENT);
    }
    counter_rates(
        &previous.disks,
        &current.disks,
        "device",
        ["disk.read_bytes_per_sec", "disk.write_bytes_per_sec"],
        seconds,
        points,
    );
    counter_rates(
        &previous.interfaces,
        &current.interfaces,
        "interface",
        ["net.rx_bytes_per_sec", "net.tx_bytes_per_sec"],
        seconds,
        points,
    );
}

/// Per-second rates of a pair of counters per instance, sorted by instance
/// (stable output). Instances new since the previous sample, or whose
/// counters went backwards, are left out this time.
fn counter_rates(
    before: &HashMap<String, (u64, u64)>,
    now: &HashMap<String, (u64, u64)>,
    dimension: &str,
    names: [&str; 2],
    seconds: f64,
    points: &mut Points,
) {
    let mut instances: Vec<&String> = now.keys().collect();
    instances.sort();
    for instance in instances {
        let (Some(&(a0, b0)), Some(&(a1, b1))) = (before.get(instance), now.get(instance)) else {
            continue;
        };
        if a1 < a0 || b1 < b0 {
            continue;
        }
        let dim = Some((dimension, instance.as_str()));
        points.push(
            names[0],
            dim,
            (a1 - a0) as f64 / seconds,
            unit::BYTES_PER_SECOND,
        );
        points.push(
            names[1],
            dim,
            (b1 - b0) as f64 / seconds,
            unit::BYTES_PER_SECOND,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn value(points: &[MetricPoint], name: &str, dim: Option<(&str, &str)>) -> Option<f64> {
        points
            .iter()
            .find(|p| {
                p.name == name
                    && match dim {
                        None => p.dimensions.is_empty(),
                        Some((k, v)) => p.dimensions.get(k).map(String::as_str) == Some(v),
                    }
            })
            .map(|p| p.value)
    }

    fn names(points: &[MetricPoint]) -> Vec<&str> {
        points.iter().map(|p| p.name.as_str()).collect()
    }

    fn disk(device: &str, read: u64, written: u64) -> DiskIo {
        DiskIo {
            device: device.into(),
            read_bytes: read,
            written_bytes: written,
        }
    }

    fn net(interface: &str, rx: u64, tx: u64) -> NetIo {
        NetIo {
            interface: interface.into(),
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    #[test]
    fn levels_come_from_one_sample_and_rates_need_two() {
        let readings = Readings {
            cpu: parse::parse_cpu(include_str!("fixtures/stat_a.txt")),
            memory: parse::parse_meminfo(include_str!("fixtures/meminfo.txt")),
            load: parse::parse_loadavg("0.67 1.10 0.59 1/145 27380"),
            process_count: Some(145),
            disks: parse::parse_diskstats(include_str!("fixtures/diskstats.txt")),
            interfaces: parse::parse_net_dev(include_str!("fixtures/net_dev.txt")),
            filesystems: Vec::new(),
        };
        let mut sampler = Sampler::new();
        let first = sampler.next(readings.clone(), 1_000);
        assert_eq!(
            names(&first),
            [
                "mem.used_percent",
                "mem.available_bytes",
                "swap.used_percent",
                "load.1",
                "load.5",
                "load.15",
                "proc.count"
            ]
        );
        assert!(first.iter().all(|p| p.at == 1_000));
        let mem = value(&first, "mem.used_percent", None).unwrap();
        assert!(mem > 0.0 && mem < 100.0, "{mem}");
        assert_eq!(value(&first, "swap.used_percent", None), Some(0.0));
        assert_eq!(first[3].unit.as_deref(), Some("None"));

        let mut later = readings;
        later.cpu = parse::parse_cpu(include_str!("fixtures/stat_b.txt"));
        let second = sampler.next(later, 3_000);
        // stat_a -> stat_b: 8 ticks of system, 200 of idle.
        let cpu = value(&second, "cpu.used", None).unwrap();
        assert!((cpu - 800.0 / 208.0).abs() < 1e-9, "{cpu}");
        assert_eq!(
            value(&second, "disk.read_bytes_per_sec", Some(("device", "vda"))),
            Some(0.0)
        );
        assert_eq!(
            value(&second, "net.rx_bytes_per_sec", Some(("interface", "eth0"))),
            Some(0.0)
        );
    }

    #[test]
    fn rate_table() {
        struct Case {
            what: &'static str,
            before: (UnixMillis, Vec<DiskIo>, Vec<NetIo>),
            after: (UnixMillis, Vec<DiskIo>, Vec<NetIo>),
            expect: Vec<(&'static str, &'static str, f64)>,
        }
        let cases = [
            Case {
                what: "bytes over two seconds",
                before: (0, vec![disk("sda", 1000, 0)], vec![net("eth0", 0, 500)]),
                after: (
                    2000,
                    vec![disk("sda", 5000, 2048)],
                    vec![net("eth0", 4000, 500)],
                ),
                expect: vec![
                    ("disk.read_bytes_per_sec", "sda", 2000.0),
                    ("disk.write_bytes_per_sec", "sda", 1024.0),
                    ("net.rx_bytes_per_sec", "eth0", 2000.0),
                    ("net.tx_bytes_per_sec", "eth0", 0.0),
                ],
            },
            Case {
                what: "a counter that went backwards gives nothing",
                before: (0, vec![disk("sda", 1000, 1000)], vec![net("eth0", 900, 0)]),
                after: (
                    1000,
                    vec![disk("sda", 10, 2000)],
                    vec![net("eth0", 1000, 0)],
                ),
                expect: vec![
                    ("net.rx_bytes_per_sec", "eth0", 100.0),
                    ("net.tx_bytes_per_sec", "eth0", 0.0),
                ],
            },
            Case {
                what: "a new device waits for its second sample",
                before: (0, vec![], vec![]),
                after: (1000, vec![disk("sdb", 10, 10)], vec![net("wg0", 1, 1)]),
                expect: vec![],
            },
            Case {
                what: "the clock did not move forward",
                before: (5000, vec![disk("sda", 0, 0)], vec![]),
                after: (5000, vec![disk("sda", 100, 100)], vec![]),
                expect: vec![],
            },
        ];
        for case in cases {
            let mut sampler = Sampler::new();
            let reading =
                |(_, disks, interfaces): (UnixMillis, Vec<DiskIo>, Vec<NetIo>)| Readings {
                    disks,
                    interfaces,
                    ..Readings::default()
                };
            sampler.next(reading(case.before.clone()), case.before.0);
            let points = sampler.next(reading(case.after.clone()), case.after.0);
            let got: Vec<(&str, &str, f64)> = points
                .iter()
                .map(|p| {
                    let instance = p.dimensions.values().next().unwrap();
                    (p.name.as_str(), instance.as_str(), p.value)
                })
                .collect();
            assert_eq!(got, case.expect, "{}", case.what);
            assert!(
                points
                    .iter()
                    .all(|p| p.unit.as_deref() == Some("Bytes/Second"))
            );
        }
    }

    #[test]
    fn cpu_table() {
        for (what, before, after, expect) in [
            ("half busy", (100, 50), (300, 150), Some(50.0)),
            ("idle", (100, 50), (200, 150), Some(0.0)),
            ("all busy", (100, 50), (200, 50), Some(100.0)),
            ("no ticks passed", (100, 50), (100, 50), None),
            ("counters reset", (100, 50), (10, 5), None),
        ] {
            let mut sampler = Sampler::new();
            let cpu = |(total, idle)| Readings {
                cpu: Some(CpuTimes { total, idle }),
                ..Readings::default()
            };
            sampler.next(cpu(before), 0);
            let points = sampler.next(cpu(after), 10_000);
            assert_eq!(value(&points, "cpu.used", None), expect, "{what}");
        }
    }

    #[test]
    fn disk_space_as_df_counts_it() {
        let fs = |total, free, available, total_inodes, free_inodes| FsSpace {
            mount_point: "/data".into(),
            total_bytes: total,
            free_bytes: free,
            available_bytes: available,
            total_inodes,
            free_inodes,
        };
        for (what, space, used_percent, inodes) in [
            // 100 total, 30 free of which 20 available: used 70 of 90 usable.
            (
                "reserved blocks",
                fs(100, 30, 20, 10, 4),
                70.0 / 90.0 * 100.0,
                Some(60.0),
            ),
            ("empty", fs(100, 100, 100, 10, 10), 0.0, Some(0.0)),
            ("only reserved left", fs(100, 5, 0, 0, 0), 100.0, None),
            ("zero-size", fs(0, 0, 0, 0, 0), 0.0, None),
        ] {
            let points = Sampler::new().next(
                Readings {
                    filesystems: vec![space.clone()],
                    ..Readings::default()
                },
                0,
            );
            let mount = Some(("mount", "/data"));
            let got = value(&points, "disk.used_percent", mount).unwrap();
            assert!((got - used_percent).abs() < 1e-9, "{what}: {got}");
            assert_eq!(
                value(&points, "disk.free_bytes", mount),
                Some(space.available_bytes as f64),
                "{what}"
            );
            assert_eq!(
                value(&points, "disk.inodes_used_percent", mount),
                inodes,
                "{what}"
            );
        }
    }

    #[test]
    fn nothing_read_gives_nothing() {
        let mut sampler = Sampler::new();
        assert!(sampler.next(Readings::default(), 0).is_empty());
        assert!(sampler.next(Readings::default(), 1000).is_empty());
    }
}
