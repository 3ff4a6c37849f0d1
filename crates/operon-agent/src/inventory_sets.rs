//! Inventory sets: what is installed and running on the node, one set per
//! kind (`os`, `packages`, `services`, `users`, `groups`, `interfaces`,
//! `ports`, `custom:<file stem>`), sent to the server as deltas.
//!
//! The parsers (dpkg-query and rpm output, `/etc/passwd`, `/etc/group`,
//! `/proc/net/{tcp,tcp6,udp,udp6}`, `systemctl list-units` output, SysV
//! init scripts and their runlevel links, custom JSON files) are pure functions.
//! [`spawn`] runs the collection: right after each `Welcome` and every
//! interval. Per kind, the [`Tracker`] remembers the set the server last
//! acknowledged (`<state_dir>/inventory/<kind>.json`, written atomically) and
//! the one sent since, and sends only what changed: upserts and removals
//! against the digest the server holds. After a `Welcome` every kind is sent
//! (an empty delta when nothing changed), so a server that lost its copy
//! asks for the whole set (`InventoryResync`).
//!
//! A kind whose source cannot be read (no dpkg nor rpm) is not sent, so a
//! failing tool never empties what the server holds. A custom file that is
//! not valid is logged and skipped, never fatal.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use operon_proto::{AgentMessage, InventoryDelta, InventoryItem, inventory_digest};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// Items of one kind, by key.
pub type Set = BTreeMap<String, BTreeMap<String, String>>;

/// Collection every minute unless configured otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where custom inventory files are read from unless configured otherwise.
pub const DEFAULT_CUSTOM_DIR: &str = "/etc/operon/inventory.d";

/// The largest custom file read.
const MAX_CUSTOM_FILE: u64 = 4 * 1024 * 1024;

fn attrs<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

// ----- Pure parsers ------------------------------------------------------------

/// `dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n'`:
/// installed packages. A name installed for two architectures keeps the
/// first under its name and the next as `name:arch`.
pub fn parse_dpkg_query(text: &str) -> Set {
    let mut set = Set::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, arch, status] = fields[..] else {
            continue;
        };
        if name.is_empty() || status != "installed" {
            continue;
        }
        let key = if set.contains_key(name) {
            format!("{name}:{arch}")
        } else {
            name.to_owned()
        };
        set.insert(
            key,
            attrs([("version", version), ("arch", arch), ("source", "dpkg")]),
        );
    }
    set
}

/// `rpm -qa --qf '%{NAME}\t%{EPOCHNUM}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n'`;
/// the version is `epoch:version-release`, without a zero epoch.
pub fn parse_rpm_qa(text: &str) -> Set {
    let mut set = Set::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, arch] = fields[..] else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let version = match epoch {
            "" | "0" | "(none)" => version.to_owned(),
            epoch => format!("{epoch}:{version}"),
        };
        let key = if set.contains_key(name) {
            format!("{name}:{arch}")
        } else {
            name.to_owned()
        };
        set.insert(
            key,
            attrs([("version", &version), ("arch", arch), ("source", "rpm")]),
        );
    }
    set
}

/// `/etc/passwd`: users by name, with uid, gid, home and shell.
pub fn parse_passwd(text: &str) -> Set {
    let mut set = Set::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, gecos, home, shell] = fields[..] else {
            continue;
        };
        if name.is_empty() || uid.parse::<u32>().is_err() {
            continue;
        }
        set.insert(
            name.to_owned(),
            attrs([
                ("uid", uid),
                ("gid", gid),
                ("gecos", gecos),
                ("home", home),
                ("shell", shell),
            ]),
        );
    }
    set
}

/// `/etc/group`: groups by name, with gid and members (comma-separated).
pub fn parse_group(text: &str) -> Set {
    let mut set = Set::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, gid, members] = fields[..] else {
            continue;
        };
        if name.is_empty() || gid.parse::<u32>().is_err() {
            continue;
        }
        set.insert(name.to_owned(), attrs([("gid", gid), ("members", members)]));
    }
    set
}

/// One listening socket of `/proc/net/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// `0.0.0.0:22`, `[::]:22`.
    pub address: String,
    pub inode: u64,
}

/// Listening sockets of one `/proc/net/{tcp,tcp6,udp,udp6}` file: TCP in
/// state LISTEN (0A), UDP unconnected (07 with no remote port).
pub fn parse_proc_net(text: &str, protocol: &'static str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            continue;
        }
        let (local, remote, state) = (fields[1], fields[2], fields[3]);
        let listening = match protocol {
            "tcp" => state == "0A",
            _ => state == "07" && remote.ends_with(":0000"),
        };
        if !listening {
            continue;
        }
        let (Some(address), Ok(inode)) = (socket_address(local), fields[9].parse()) else {
            continue;
        };
        out.push(Listener {
            protocol,
            address,
            inode,
        });
    }
    out
}

/// `0100007F:0016` -> `127.0.0.1:22`; 32 hex digits -> `[v6]:port`.
fn socket_address(text: &str) -> Option<String> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    match ip.len() {
        8 => {
            let bytes = u32::from_str_radix(ip, 16).ok()?.to_le_bytes();
            Some(format!("{}:{port}", std::net::Ipv4Addr::from(bytes)))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Listeners as a set keyed `tcp/0.0.0.0:22`, with the owning process
/// (`processes`: socket inode -> (pid, command name)) where known.
pub fn ports_set(listeners: &[Listener], processes: &HashMap<u64, (u32, String)>) -> Set {
    let mut set = Set::new();
    for l in listeners {
        let mut attributes = attrs([("protocol", l.protocol)]);
        if let Some((pid, name)) = processes.get(&l.inode) {
            attributes.insert("process".into(), name.clone());
            attributes.insert("pid".into(), pid.to_string());
        }
        set.insert(format!("{}/{}", l.protocol, l.address), attributes);
    }
    set
}

/// `systemctl list-units --type=service --all --no-legend --plain`:
/// `UNIT LOAD ACTIVE SUB DESCRIPTION...`, keyed by the unit's name without
/// `.service`.
pub fn parse_systemctl_units(text: &str) -> Set {
    let mut set = Set::new();
    for line in text.lines() {
        let line = line.trim_start_matches(['●', '*', ' ']);
        let mut fields = line.split_whitespace();
        let (Some(unit), Some(load), Some(active), Some(sub)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(name) = unit.strip_suffix(".service") else {
            continue;
        };
        let description = fields.collect::<Vec<_>>().join(" ");
        set.insert(
            name.to_owned(),
            attrs([
                ("load", load),
                ("state", active),
                ("sub", sub),
                ("description", &description),
                ("manager", "systemd"),
            ]),
        );
    }
    set
}

/// SysV init scripts (the names in `/etc/init.d`) with whether each is
/// started in a multi-user runlevel: `rc_links` are the names in
/// `/etc/rc2.d` to `/etc/rc5.d` (`S01cron`). Whether a script's service runs
/// is not asked (`service --status-all` runs every script and can take
/// seconds), so `state` is `unknown`.
pub fn sysv_services(scripts: &[String], rc_links: &[String]) -> Set {
    let enabled = |name: &str| {
        rc_links.iter().any(|link| {
            link.strip_prefix('S')
                .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
                == Some(name)
        })
    };
    scripts
        .iter()
        .filter(|n| {
            !n.starts_with('.') && !matches!(n.as_str(), "README" | "skeleton" | "rc" | "rcS")
        })
        .map(|name| {
            let on = if enabled(name) { "true" } else { "false" };
            (
                name.clone(),
                attrs([
                    ("state", "unknown"),
                    ("enabled", on),
                    ("manager", "sysvinit"),
                ]),
            )
        })
        .collect()
}

/// A custom inventory file: a JSON object of objects (`{"key": {"attr":
/// "value"}}`) or an array of objects each with a `key` or `name` field.
/// Values that are not strings are kept as their JSON text.
pub fn parse_custom(text: &str) -> Result<Set, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let to_attrs = |object: &serde_json::Map<String, serde_json::Value>, skip: Option<&str>| {
        object
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != skip)
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let mut set = Set::new();
    match value {
        serde_json::Value::Object(items) => {
            for (key, item) in items {
                let object = item
                    .as_object()
                    .ok_or_else(|| format!("item {key:?} is not an object"))?;
                set.insert(key, to_attrs(object, None));
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let object = item
                    .as_object()
                    .ok_or_else(|| format!("item [{i}] is not an object"))?;
                let (field, key) = ["key", "name"]
                    .into_iter()
                    .find_map(|f| Some((f, object.get(f)?.as_str()?)))
                    .ok_or_else(|| format!("item [{i}] has no string key or name"))?;
                if set.contains_key(key) {
                    return Err(format!("item [{i}]: key {key:?} appears twice"));
                }
                set.insert(key.to_owned(), to_attrs(object, Some(field)));
            }
        }
        _ => return Err("expected an object of objects or an array of objects".into()),
    }
    if set.keys().any(|k| k.is_empty() || k.len() > 1024) {
        return Err("a key is empty or longer than 1024 bytes".into());
    }
    Ok(set)
}

/// The kind of a custom file: `custom:<stem>`, if the stem is a valid name.
pub fn custom_kind(path: &Path) -> Option<String> {
    if path.extension()? != "json" {
        return None;
    }
    let kind = format!("custom:{}", path.file_stem()?.to_str()?);
    operon_proto::valid_inventory_kind(&kind).then_some(kind)
}

// ----- Deltas --------------------------------------------------------------------

/// The items of a set, in key order.
pub fn items(set: &Set) -> Vec<InventoryItem> {
    set.iter()
        .map(|(key, attributes)| InventoryItem {
            key: key.clone(),
            attributes: attributes.clone(),
        })
        .collect()
}

pub fn digest(set: &Set) -> String {
    inventory_digest(&items(set))
}

/// The delta taking `base` (whose digest the server holds; `None`: send the
/// whole set) to `new`.
pub fn delta(kind: &str, base: Option<&Set>, new: &Set, at: i64) -> InventoryDelta {
    let Some(base) = base else {
        return InventoryDelta {
            kind: kind.to_owned(),
            base: None,
            digest: digest(new),
            upserts: items(new),
            removals: Vec::new(),
            at,
        };
    };
    let upserts = new
        .iter()
        .filter(|(key, attributes)| base.get(*key) != Some(attributes))
        .map(|(key, attributes)| InventoryItem {
            key: key.clone(),
            attributes: attributes.clone(),
        })
        .collect();
    let removals = base
        .keys()
        .filter(|key| !new.contains_key(*key))
        .cloned()
        .collect();
    InventoryDelta {
        kind: kind.to_owned(),
        base: Some(digest(base)),
        digest: digest(new),
        upserts,
        removals,
        at,
    }
}

/// A set as kept on disk once acknowledged.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    kind: String,
    digest: String,
    items: Set,
}

/// What was acknowledged and sent per kind, and what to send next.
#[derive(Debug)]
pub struct Tracker {
    dir: PathBuf,
    /// The sets the server acknowledged (as on disk).
    acked: BTreeMap<String, Set>,
    /// Sets sent on this link and not acknowledged yet.
    sent: BTreeMap<String, Set>,
    /// The last sets collected.
    current: BTreeMap<String, Set>,
}

impl Tracker {
    /// Load the acknowledged sets from `<state_dir>/inventory/`. A file that
    /// cannot be read is logged and forgotten (the kind is sent whole).
    pub fn open(state_dir: &Path) -> Tracker {
        let dir = state_dir.join("inventory");
        let mut acked = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let stored = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()));
                match stored {
                    Ok(stored) if digest(&stored.items) == stored.digest => {
                        acked.insert(stored.kind, stored.items);
                    }
                    Ok(_) => {
                        tracing::warn!(path = %path.display(), "inventory state does not match its digest; sending the whole set")
                    }
                    Err(err) => {
                        tracing::warn!(path = %path.display(), %err, "cannot read inventory state; sending the whole set")
                    }
                }
            }
        }
        Tracker {
            dir,
            acked,
            sent: BTreeMap::new(),
            current: BTreeMap::new(),
        }
    }

    /// A new link was welcomed: nothing sent before counts any more.
    pub fn welcomed(&mut self) {
        self.sent.clear();
    }

    /// Take newly collected sets (kinds not collected are left as they
    /// were, except custom kinds, which are gone when their file is) and
    /// answer the deltas to send: every kind when `all`, else those changed.
    pub fn collected(
        &mut self,
        sets: BTreeMap<String, Set>,
        all: bool,
        at: i64,
    ) -> Vec<InventoryDelta> {
        let gone: Vec<String> = self
            .acked
            .keys()
            .chain(self.current.keys())
            .filter(|k| k.starts_with("custom:") && !sets.contains_key(*k))
            .cloned()
            .collect();
        for kind in gone {
            self.current.insert(kind, Set::new());
        }
        self.current.extend(sets);
        let mut out = Vec::new();
        for (kind, new) in &self.current {
            let reference = self.sent.get(kind).or_else(|| self.acked.get(kind));
            let unchanged = reference.is_some_and(|r| r == new);
            if unchanged && !all {
                continue;
            }
            if reference.is_none() && new.is_empty() && kind.starts_with("custom:") {
                continue; // a custom kind never sent and now gone
            }
            out.push(delta(kind, reference, new, at));
            self.sent.insert(kind.clone(), new.clone());
        }
        out
    }

    /// The server stored `kind` as of `digest`: remember it durably.
    pub fn acknowledged(&mut self, kind: &str, acked_digest: &str) {
        let Some(set) = self.sent.get(kind) else {
            return;
        };
        if digest(set) != acked_digest {
            return; // an older send; a later answer follows
        }
        let set = self.sent.remove(kind).unwrap_or_default();
        let path = self.path(kind);
        if set.is_empty() && kind.starts_with("custom:") {
            self.acked.remove(kind);
            self.current.remove(kind);
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), %err, "cannot remove inventory state");
            }
            return;
        }
        let stored = Stored {
            kind: kind.to_owned(),
            digest: acked_digest.to_owned(),
            items: set,
        };
        if let Err(err) = write_atomic(&self.dir, &path, &stored) {
            tracing::warn!(path = %path.display(), %err, "cannot store inventory state; the kind will be sent whole after a restart");
        }
        self.acked.insert(kind.to_owned(), stored.items);
    }

    /// The server holds another base for `kind`: the whole set, from nothing.
    pub fn resync(&mut self, kind: &str, at: i64) -> Option<InventoryDelta> {
        let set = self.current.get(kind)?.clone();
        let out = delta(kind, None, &set, at);
        self.sent.insert(kind.to_owned(), set);
        Some(out)
    }

    fn path(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("{kind}.json"))
    }
}

/// Write `value` as JSON to `path` atomically: a temporary file in `dir`
/// (0600), fsynced, renamed over `path`, the directory fsynced.
fn write_atomic(dir: &Path, path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temp, path)?;
    fs::File::open(dir)?.sync_all()
}

// ----- Collection ------------------------------------------------------------------

/// Where collection reads from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub custom_dir: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Collect every kind this node can tell (blocking: runs dpkg-query etc.).
pub fn collect(sources: &Sources) -> BTreeMap<String, Set> {
    let mut sets = BTreeMap::new();
    sets.insert("os".to_owned(), os_set());
    if let Some(packages) = packages_set() {
        sets.insert("packages".to_owned(), packages);
    }
    if let Some(services) = services_set() {
        sets.insert("services".to_owned(), services);
    }
    if let Ok(text) = fs::read_to_string("/etc/passwd") {
        sets.insert("users".to_owned(), parse_passwd(&text));
    }
    if let Ok(text) = fs::read_to_string("/etc/group") {
        sets.insert("groups".to_owned(), parse_group(&text));
    }
    sets.insert("interfaces".to_owned(), interfaces_set());
    if let Some(ports) = ports_from_proc() {
        sets.insert("ports".to_owned(), ports);
    }
    sets.extend(custom_sets(&sources.custom_dir));
    sets
}

fn os_set() -> Set {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k| crate::inventory::os_release_field(&os_release, k).unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Set::from([(
        "os".to_owned(),
        attrs([
            ("name", &field("NAME")),
            ("id", &field("ID")),
            ("version", &field("VERSION_ID")),
            ("pretty_name", &field("PRETTY_NAME")),
            ("kernel", kernel.trim()),
            ("arch", std::env::consts::ARCH),
            ("hostname", hostname.trim()),
        ]),
    )])
}

fn packages_set() -> Option<Set> {
    if let Some(text) = run(
        "dpkg-query",
        &[
            "-W",
            "-f=${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Status}\\n",
        ],
    ) {
        return Some(parse_dpkg_query(&text));
    }
    run(
        "rpm",
        &[
            "-qa",
            "--qf",
            "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
        ],
    )
    .map(|text| parse_rpm_qa(&text))
}

fn services_set() -> Option<Set> {
    if Path::new("/run/systemd/system").is_dir()
        && let Some(text) = run(
            "systemctl",
            &[
                "list-units",
                "--type=service",
                "--all",
                "--no-legend",
                "--plain",
                "--no-pager",
            ],
        )
    {
        return Some(parse_systemctl_units(&text));
    }
    let names = |dir: &str| -> Option<Vec<String>> {
        Some(
            fs::read_dir(dir)
                .ok()?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        )
    };
    let scripts = names("/etc/init.d")?;
    let links: Vec<String> = ["/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d"]
        .into_iter()
        .filter_map(names)
        .flatten()
        .collect();
    Some(sysv_services(&scripts, &links))
}

fn interfaces_set() -> Set {
    let mut set = Set::new();
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return set;
    };
    let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for iface in interfaces {
        addresses
            .entry(iface.name.clone())
            .or_default()
            .push(iface.ip().to_string());
    }
    for (name, mut ips) in addresses {
        ips.sort();
        let sys = |f: &str| {
            fs::read_to_string(format!("/sys/class/net/{name}/{f}"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let ips = ips.join(",");
        set.insert(
            name.clone(),
            attrs([
                ("addresses", &ips),
                ("mac", &sys("address")),
                ("mtu", &sys("mtu")),
                ("state", &sys("operstate")),
            ]),
        );
    }
    set
}

fn ports_from_proc() -> Option<Set> {
    let mut listeners = Vec::new();
    let mut any = false;
    for (file, protocol) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp"),
        ("udp", "udp"),
        ("udp6", "udp"),
    ] {
        if let Ok(text) = fs::read_to_string(format!("/proc/net/{file}")) {
            any = true;
            listeners.extend(parse_proc_net(&text, protocol));
        }
    }
    any.then(|| ports_set(&listeners, &socket_owners()))
}

/// Socket inode -> (pid, command name), from `/proc/*/fd` (what this
/// process may read).
fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut owners = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return owners;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let mut name: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            let name = name.get_or_insert_with(|| {
                fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default()
            });
            owners.entry(inode).or_insert((pid, name.clone()));
        }
    }
    owners
}

/// Every valid `*.json` file of `dir` as `custom:<stem>`; bad ones logged.
pub fn custom_sets(dir: &Path) -> BTreeMap<String, Set> {
    let mut sets = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return sets;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(kind) = custom_kind(&path) else {
            tracing::warn!(path = %path.display(), "skipping a custom inventory file: its name must be letters, digits, - _ . (at most 64)");
            continue;
        };
        let read = fs::metadata(&path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.len() > MAX_CUSTOM_FILE {
                    Err(format!("larger than {MAX_CUSTOM_FILE} bytes"))
                } else {
                    fs::read_to_string(&path).map_err(|e| e.to_string())
                }
            })
            .and_then(|text| parse_custom(&text));
        match read {
            Ok(set) => {
                sets.insert(kind, set);
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "skipping a custom inventory file")
            }
        }
    }
    sets
}

// ----- The task -------------------------------------------------------------------

enum Request {
    Welcomed,
    Ack { kind: String, digest: String },
    Resync { kind: String },
}

/// Tells the inventory task about the link.
#[derive(Clone)]
pub struct InventoryHandle {
    requests: mpsc::UnboundedSender<Request>,
}

impl InventoryHandle {
    /// A `Welcome` arrived: collect now and send every kind.
    pub fn welcomed(&self) {
        let _ = self.requests.send(Request::Welcomed);
    }

    pub fn acknowledged(&self, kind: String, digest: String) {
        let _ = self.requests.send(Request::Ack { kind, digest });
    }

    pub fn resync(&self, kind: String) {
        let _ = self.requests.send(Request::Resync { kind });
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Start the inventory task. Its `InventoryReport` frames come out of the
/// receiver, to be sent once the link is welcomed.
pub fn spawn(
    state_dir: &Path,
    sources: Sources,
    interval: Duration,
) -> (InventoryHandle, mpsc::UnboundedReceiver<AgentMessage>) {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let mut tracker = Tracker::open(state_dir);
    tokio::spawn(async move {
        let collect_now = |sources: Sources| async move {
            tokio::task::spawn_blocking(move || collect(&sources))
                .await
                .unwrap_or_default()
        };
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is at once; the Welcome collects first
        let mut welcomed = false;
        loop {
            let deltas = tokio::select! {
                request = requests.recv() => match request {
                    Some(Request::Welcomed) => {
                        welcomed = true;
                        tracker.welcomed();
                        let sets = collect_now(sources.clone()).await;
                        tracker.collected(sets, true, now_millis())
                    }
                    Some(Request::Ack { kind, digest }) => {
                        tracker.acknowledged(&kind, &digest);
                        Vec::new()
                    }
                    Some(Request::Resync { kind }) => tracker.resync(&kind, now_millis()).into_iter().collect(),
                    None => break,
                },
                _ = ticker.tick(), if welcomed => {
                    let sets = collect_now(sources.clone()).await;
                    tracker.collected(sets, false, now_millis())
                }
            };
            for delta in deltas {
                if events.send(AgentMessage::InventoryReport(delta)).is_err() {
                    return;
                }
            }
        }
    });
    (
        InventoryHandle {
            requests: requests_tx,
        },
        events_rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[(&str, &[(&str, &str)])]) -> Set {
        items
            .iter()
            .map(|(k, a)| {
                (
                    (*k).to_owned(),
                    a.iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn dpkg_query_output_keeps_installed_packages() {
        let text = "adduser\t3.134\tall\tinstalled\n\
                    libc6\t2.36-9+deb12u4\tamd64\tinstalled\n\
                    libc6\t2.36-9+deb12u4\ti386\tinstalled\n\
                    oldpkg\t1.0\tamd64\tconfig-files\n\
                    garbage line\n";
        let got = parse_dpkg_query(text);
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(keys, ["adduser", "libc6", "libc6:i386"]);
        assert_eq!(got["libc6"]["version"], "2.36-9+deb12u4");
        assert_eq!(got["libc6"]["arch"], "amd64");
        assert_eq!(got["adduser"]["source"], "dpkg");
    }

    #[test]
    fn rpm_output_puts_nonzero_epochs_in_the_version() {
        let text = "bash\t0\t5.1.8-6.el9\tx86_64\nopenssl\t1\t3.0.7-24.el9\tx86_64\nnone\t(none)\t1-1\tnoarch\n";
        let got = parse_rpm_qa(text);
        assert_eq!(got["bash"]["version"], "5.1.8-6.el9");
        assert_eq!(got["openssl"]["version"], "1:3.0.7-24.el9");
        assert_eq!(got["none"]["version"], "1-1");
        assert_eq!(got["none"]["arch"], "noarch");
    }

    #[test]
    fn passwd_and_group_files() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbad line\n\
                      app:x:1001:1001::/srv/app:/usr/sbin/nologin\nx:x:notanumber:0::/:/bin/sh\n";
        let users = parse_passwd(passwd);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["app", "root"]);
        assert_eq!(users["app"]["uid"], "1001");
        assert_eq!(users["app"]["home"], "/srv/app");
        assert!(
            !users["app"].contains_key("gecos"),
            "empty fields are left out"
        );
        let groups = parse_group("root:x:0:\nsudo:x:27:alice,bob\nbroken\n");
        assert_eq!(groups["sudo"]["members"], "alice,bob");
        assert_eq!(groups["root"]["gid"], "0");
        assert!(!groups["root"].contains_key("members"));
    }

    #[test]
    fn proc_net_listeners_and_their_processes() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:6448 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6089 1 00000000c2d9566d 100 0 0 10 0\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 566 1 0000000075700e7d 100 0 0 10 0\n\
   2: 0100007F:0016 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 9999 1 0000000075700e7d 100 0 0 10 0\n";
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:1111 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5955 1 000000004fda41de 100 0 0 10 0\n\
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   0        0 5956 1 000000004fda41de 100 0 0 10 0\n";
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  10: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0\n\
  11: 0100007F:A000 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 778 2 0000000000000000 0\n";
        let mut listeners = parse_proc_net(tcp, "tcp");
        listeners.extend(parse_proc_net(tcp6, "tcp"));
        listeners.extend(parse_proc_net(udp, "udp"));
        let owners = HashMap::from([(566, (812, "sshd".to_owned()))]);
        let ports = ports_set(&listeners, &owners);
        let keys: Vec<&str> = ports.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "tcp/0.0.0.0:22",
                "tcp/127.0.0.1:25672",
                "tcp/[::1]:4369",
                "tcp/[::]:22",
                "udp/0.0.0.0:68"
            ]
        );
        assert_eq!(ports["tcp/0.0.0.0:22"]["process"], "sshd");
        assert_eq!(ports["tcp/0.0.0.0:22"]["pid"], "812");
        assert!(!ports["tcp/[::]:22"].contains_key("process"));
    }

    #[test]
    fn service_managers_output() {
        let systemd = "cron.service loaded active running Regular background program processing daemon\n\
                       ● nginx.service loaded failed failed A high performance web server\n\
                       dev-sda.device loaded active plugged Disk\n";
        let got = parse_systemctl_units(systemd);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["cron", "nginx"]);
        assert_eq!(got["nginx"]["state"], "failed");
        assert_eq!(got["cron"]["sub"], "running");
        assert_eq!(
            got["cron"]["description"],
            "Regular background program processing daemon"
        );
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = sysv_services(
            &names(&["cron", "mariadb", "README", ".depend.boot", "hwclock.sh"]),
            &names(&["S01cron", "K01mariadb", "README", "S02hwclock.sh.dpkg-old"]),
        );
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["cron", "hwclock.sh", "mariadb"]
        );
        assert_eq!(got["cron"]["enabled"], "true");
        assert_eq!(got["mariadb"]["enabled"], "false", "K links stop it");
        assert_eq!(got["hwclock.sh"]["enabled"], "false");
        assert_eq!(got["cron"]["state"], "unknown");
    }

    #[test]
    fn custom_files_are_objects_of_objects_or_arrays_with_keys() {
        let object =
            parse_custom(r#"{"billing": {"version": "2.1", "port": 8080, "tls": true}}"#).unwrap();
        assert_eq!(object["billing"]["version"], "2.1");
        assert_eq!(object["billing"]["port"], "8080");
        assert_eq!(object["billing"]["tls"], "true");
        let array =
            parse_custom(r#"[{"name": "a", "v": "1"}, {"key": "b", "name": "x"}]"#).unwrap();
        assert_eq!(array["a"], BTreeMap::from([("v".into(), "1".into())]));
        assert_eq!(array["b"], BTreeMap::from([("name".into(), "x".into())]));
        for (bad, want) in [
            ("{", "not JSON"),
            ("[1]", "[0] is not an object"),
            (r#"[{"v": 1}]"#, "no string key or name"),
            (r#"{"a": 1}"#, "\"a\" is not an object"),
            ("3", "expected an object"),
            (r#"[{"key": "a"}, {"key": "a"}]"#, "appears twice"),
        ] {
            let err = parse_custom(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert_eq!(
            custom_kind(Path::new("/x/apps.json")).as_deref(),
            Some("custom:apps")
        );
        assert_eq!(custom_kind(Path::new("/x/apps.txt")), None);
        assert_eq!(custom_kind(Path::new("/x/a b.json")), None);
    }

    #[test]
    fn deltas_carry_only_the_change_and_digests_chain() {
        let old = set(&[("a", &[("v", "1")]), ("b", &[("v", "1")])]);
        let new = set(&[("a", &[("v", "2")]), ("c", &[("v", "1")])]);
        let d = delta("packages", Some(&old), &new, 5);
        assert_eq!(d.base, Some(digest(&old)));
        assert_eq!(d.digest, digest(&new));
        assert_eq!(
            d.upserts.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(d.removals, ["b"]);
        let full = delta("packages", None, &new, 5);
        assert_eq!(full.base, None);
        assert_eq!(full.upserts.len(), 2);
    }

    #[test]
    fn the_tracker_sends_changes_and_remembers_acknowledged_sets_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = set(&[("a", &[("v", "1")])]);
        let v2 = set(&[("a", &[("v", "1")]), ("b", &[("v", "1")])]);
        let mut tracker = Tracker::open(dir.path());
        tracker.welcomed();
        let sent = tracker.collected(BTreeMap::from([("packages".into(), v1.clone())]), true, 1);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].base, None,
            "nothing acknowledged yet: the whole set"
        );
        // Unchanged and not after a Welcome: nothing to send.
        assert!(
            tracker
                .collected(BTreeMap::from([("packages".into(), v1.clone())]), false, 2)
                .is_empty()
        );
        tracker.acknowledged("packages", &digest(&v1));
        assert!(dir.path().join("inventory/packages.json").exists());

        // A restart: the acknowledged set is the base, only the change goes.
        let mut tracker = Tracker::open(dir.path());
        tracker.welcomed();
        let sent = tracker.collected(BTreeMap::from([("packages".into(), v2.clone())]), true, 3);
        assert_eq!(sent[0].base, Some(digest(&v1)));
        assert_eq!(sent[0].upserts.len(), 1);
        assert_eq!(sent[0].upserts[0].key, "b");
        // The server had lost its copy: the whole set.
        let full = tracker.resync("packages", 4).unwrap();
        assert_eq!(full.base, None);
        assert_eq!(full.upserts.len(), 2);
        tracker.acknowledged("packages", &digest(&v2));
        // After a Welcome an unchanged kind is sent empty, on the acknowledged base.
        tracker.welcomed();
        let sent = tracker.collected(BTreeMap::from([("packages".into(), v2.clone())]), true, 5);
        assert_eq!(sent[0].base, Some(digest(&v2)));
        assert!(sent[0].upserts.is_empty() && sent[0].removals.is_empty());

        // A custom kind whose file went away is emptied, then forgotten.
        let apps = set(&[("billing", &[("version", "2")])]);
        let sent = tracker.collected(
            BTreeMap::from([("custom:apps".into(), apps.clone())]),
            false,
            6,
        );
        assert_eq!(sent.len(), 1);
        tracker.acknowledged("custom:apps", &digest(&apps));
        assert!(dir.path().join("inventory/custom:apps.json").exists());
        let sent = tracker.collected(BTreeMap::new(), false, 7);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].removals, ["billing"]);
        tracker.acknowledged("custom:apps", &digest(&Set::new()));
        assert!(!dir.path().join("inventory/custom:apps.json").exists());
        assert!(
            tracker
                .collected(BTreeMap::new(), true, 8)
                .iter()
                .all(|d| d.kind != "custom:apps")
        );
    }

    #[test]
    fn this_node_collects_what_it_can() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("apps.json"),
            r#"{"billing": {"version": "2"}}"#,
        )
        .unwrap();
        fs::write(dir.path().join("broken.json"), "{").unwrap();
        let sets = collect(&Sources {
            custom_dir: dir.path().to_owned(),
        });
        assert!(sets["os"]["os"].contains_key("kernel"));
        assert!(sets["users"].contains_key("root"));
        assert!(sets["groups"].contains_key("root"));
        assert_eq!(sets["custom:apps"]["billing"]["version"], "2");
        assert!(!sets.contains_key("custom:broken"));
        if Path::new("/var/lib/dpkg/status").exists() {
            assert!(sets["packages"].contains_key("dpkg"), "dpkg lists itself");
        }
    }
}
