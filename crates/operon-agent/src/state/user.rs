//! `user`: present/absent, uid, supplementary groups (the exact set, when
//! listed), shell, home (created with `-m`), `authorized_keys` (the exact
//! set of lines of `HOME/.ssh/authorized_keys`, directory `0700`, file
//! `0600`, owned by the user, written atomically) and locked (`usermod
//! -L/-U`; locked means the shadow hash starts with `!`). An empty `groups`
//! or `authorized_keys` list is not managed. `/etc/passwd`, `/etc/group` and
//! `/etc/shadow` are read with the pure parsers below; changes go through
//! `useradd`, `usermod` and `userdel`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use operon_state::document::{Presence, UserSpec};

use super::exec;
use super::fsio::{self, Entry};
use super::{Found, Mode};

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// `/etc/passwd` text to entries; malformed lines are skipped. Pure.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// `/etc/group` text to entries; malformed lines are skipped. Pure.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// The password hash field of `user` in `/etc/shadow` text. Pure.
pub fn shadow_hash<'a>(text: &'a str, user: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == user).then(|| f.next().unwrap_or_default())
    })
}

fn read_system(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|err| format!("cannot read {path}: {err}"))
}

pub fn find_user(name: &str) -> Result<Option<PasswdEntry>, String> {
    Ok(parse_passwd(&read_system("/etc/passwd")?)
        .into_iter()
        .find(|e| e.name == name))
}

pub fn groups() -> Result<Vec<GroupEntry>, String> {
    Ok(parse_group(&read_system("/etc/group")?))
}

/// Supplementary groups: those listing the user as a member.
fn member_of(all: &[GroupEntry], user: &str) -> BTreeSet<String> {
    all.iter()
        .filter(|g| g.members.iter().any(|m| m == user))
        .map(|g| g.name.clone())
        .collect()
}

async fn tool(program: &str, args: &[&str]) -> Result<(), String> {
    let out = exec::tool(program, args, &[]).await?;
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(program))
    }
}

fn keys_path(home: &str) -> PathBuf {
    Path::new(home).join(".ssh").join("authorized_keys")
}

/// What differs in `authorized_keys` (as a set of lines), and the file's text.
fn keys_differ(home: &str, keys: &[String]) -> Result<bool, String> {
    let path = keys_path(home);
    let current = match fsio::entry(&path)? {
        Entry::Missing => BTreeSet::new(),
        Entry::File(meta) => {
            if meta.mode != 0o600 {
                return Ok(true);
            }
            let text = String::from_utf8_lossy(&fsio::read(&path)?).into_owned();
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        }
        _ => return Err(format!("{} is not a regular file", path.display())),
    };
    let wanted: BTreeSet<String> = keys.iter().map(|k| k.trim().to_string()).collect();
    Ok(current != wanted)
}

fn write_keys(entry: &PasswdEntry, keys: &[String]) -> Result<(), String> {
    let dir = Path::new(&entry.home).join(".ssh");
    if !dir.is_dir() {
        fs::create_dir(&dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    std::os::unix::fs::chown(&dir, Some(entry.uid), Some(entry.gid))
        .map_err(|err| format!("cannot change the owner of {}: {err}", dir.display()))?;
    fsio::set_meta(&dir, Some(0o700), None, None)?;
    let mut text = keys.join("\n");
    text.push('\n');
    fsio::write_atomically(
        &keys_path(&entry.home),
        text.as_bytes(),
        0o600,
        Some(entry.uid),
        Some(entry.gid),
    )
}

fn locked_now(name: &str) -> Result<bool, String> {
    let shadow = read_system("/etc/shadow")?;
    Ok(shadow_hash(&shadow, name).is_some_and(|h| h.starts_with('!')))
}

pub async fn ensure(spec: &UserSpec, mode: Mode) -> Result<Found, String> {
    let name = spec.name.as_str();
    let current = find_user(name)?;
    let apply = mode == Mode::Apply;
    if spec.state == Presence::Absent {
        return match current {
            None => Ok(Found::compliant()),
            Some(_) => {
                if apply {
                    tool("userdel", &[name]).await?;
                }
                Ok(Found::change("removed"))
            }
        };
    }
    let mut found = Found::compliant();
    let groups_csv = spec.groups.join(",");
    let entry = match current {
        None => {
            found.changes.push("created".into());
            if !apply {
                if !spec.authorized_keys.is_empty() {
                    found.changes.push("authorized_keys".into());
                }
                if spec.locked == Some(false) {
                    found.changes.push("unlocked".into());
                }
                return Ok(found);
            }
            let uid = spec.uid.map(|u| u.to_string());
            let mut args: Vec<&str> = vec!["-m"];
            if let Some(uid) = &uid {
                args.extend(["-u", uid]);
            }
            if let Some(shell) = &spec.shell {
                args.extend(["-s", shell]);
            }
            if let Some(home) = &spec.home {
                args.extend(["-d", home]);
            }
            if !spec.groups.is_empty() {
                args.extend(["-G", &groups_csv]);
            }
            args.push(name);
            tool("useradd", &args).await?;
            find_user(name)?.ok_or_else(|| format!("useradd did not create {name}"))?
        }
        Some(entry) => {
            let mut args: Vec<String> = Vec::new();
            if let Some(uid) = spec.uid
                && uid != entry.uid
            {
                found.changes.push(format!("uid {} -> {uid}", entry.uid));
                args.extend(["-u".into(), uid.to_string()]);
            }
            if let Some(shell) = &spec.shell
                && *shell != entry.shell
            {
                found
                    .changes
                    .push(format!("shell {} -> {shell}", entry.shell));
                args.extend(["-s".into(), shell.clone()]);
            }
            if let Some(home) = &spec.home
                && *home != entry.home
            {
                found.changes.push(format!("home {} -> {home}", entry.home));
                args.extend(["-d".into(), home.clone(), "-m".into()]);
            }
            if !spec.groups.is_empty() {
                let have = member_of(&groups()?, name);
                let want: BTreeSet<String> = spec.groups.iter().cloned().collect();
                if have != want {
                    let show =
                        |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
                    found
                        .changes
                        .push(format!("groups {} -> {}", show(&have), show(&want)));
                    args.extend(["-G".into(), groups_csv.clone()]);
                }
            }
            if apply && !args.is_empty() {
                args.push(name.to_string());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                tool("usermod", &refs).await?;
            }
            if apply {
                find_user(name)?.ok_or_else(|| format!("user {name} disappeared"))?
            } else {
                entry
            }
        }
    };
    if !spec.authorized_keys.is_empty() && keys_differ(&entry.home, &spec.authorized_keys)? {
        found.changes.push("authorized_keys".into());
        if apply {
            write_keys(&entry, &spec.authorized_keys)?;
        }
    }
    if let Some(locked) = spec.locked
        && locked_now(name)? != locked
    {
        found
            .changes
            .push(if locked { "locked" } else { "unlocked" }.into());
        if apply {
            tool("usermod", &[if locked { "-L" } else { "-U" }, name]).await?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_table() {
        let text = "root:x:0:0:root:/root:/bin/bash\nbad line\n\napp:x:1001:1001::/home/app:/bin/sh\nx:x:notanumber:1::/:/bin/sh\n";
        let entries = parse_passwd(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1],
            PasswdEntry {
                name: "app".into(),
                uid: 1001,
                gid: 1001,
                home: "/home/app".into(),
                shell: "/bin/sh".into()
            }
        );
    }

    #[test]
    fn group_table() {
        let text = "root:x:0:\nsudo:x:27:alice,bob\n:x:1:\nweb:x:33:alice\n";
        let groups = parse_group(text);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[1].members, ["alice", "bob"]);
        assert!(groups[0].members.is_empty());
        let set = member_of(&groups, "alice");
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["sudo", "web"]);
    }

    #[test]
    fn shadow_table() {
        let text = "root:*:19000:0:99999:7:::\nalice:!$6$abc:19000::::::\nbob:$6$x:1::::::\n";
        assert_eq!(shadow_hash(text, "alice"), Some("!$6$abc"));
        assert_eq!(shadow_hash(text, "bob"), Some("$6$x"));
        assert_eq!(shadow_hash(text, "carol"), None);
    }
}
