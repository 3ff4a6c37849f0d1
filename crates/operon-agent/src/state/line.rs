//! `line`: a line in a file. With `match` (a regex) the first matching line
//! is replaced (present) or every matching line removed (absent); without it
//! the exact line is looked for. A present line whose file is missing creates
//! the file (`0644`); an edited file keeps its mode and owner. Lines are
//! compared without their line ending.

use operon_state::document::{LineSpec, Presence};
use regex::Regex;

use super::file::{DEFAULT_FILE_MODE, content_change};
use super::fsio::{self, Entry};
use super::{Env, Found, Mode};

/// The text after making `spec` true of `text`. Pure.
pub fn edit(text: &str, line: &str, matcher: Option<&Regex>, state: Presence) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let bare = |l: &str| {
        l.strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(l)
            .to_string()
    };
    let hit = |l: &str| match matcher {
        Some(re) => re.is_match(&bare(l)),
        None => bare(l) == line,
    };
    match state {
        Presence::Absent => lines.into_iter().filter(|l| !hit(l)).collect(),
        Presence::Present => {
            if let Some(at) = lines.iter().position(|l| hit(l)) {
                if bare(lines[at]) == line {
                    return text.to_string();
                }
                if matcher.is_some() && lines.iter().any(|l| bare(l) == line) {
                    // Already there (not matching the regex): leave it.
                    return text.to_string();
                }
                let mut out = String::new();
                for (i, l) in lines.iter().enumerate() {
                    if i == at {
                        out.push_str(line);
                        if l.ends_with('\n') {
                            out.push('\n');
                        }
                    } else {
                        out.push_str(l);
                    }
                }
                return out;
            }
            if lines.iter().any(|l| bare(l) == line) {
                return text.to_string();
            }
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
            out
        }
    }
}

pub fn ensure(name: &str, spec: &LineSpec, env: &Env<'_>, mode: Mode) -> Result<Found, String> {
    let path = env.node_path(&spec.path)?;
    let matcher = match &spec.match_regex {
        Some(source) => Some(
            Regex::new(source).map_err(|err| format!("match {source:?} is not a regex: {err}"))?,
        ),
        None => None,
    };
    let (old, meta) = match fsio::entry(&path)? {
        Entry::Missing if spec.state == Presence::Absent => return Ok(Found::compliant()),
        Entry::Missing => (String::new(), None),
        Entry::File(meta) => {
            let bytes = fsio::read(&path)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
            (text, Some(meta))
        }
        Entry::Directory(_) => {
            return Err(format!("{} is a directory, not a file", path.display()));
        }
        Entry::Other(kind) => {
            return Err(format!("{} is {kind}, not a regular file", path.display()));
        }
    };
    let new = edit(&old, &spec.line, matcher.as_ref(), spec.state);
    if new == old && meta.is_some() {
        return Ok(Found::compliant());
    }
    let mut found = content_change(name, &spec.path, old.as_bytes(), new.as_bytes(), env);
    if meta.is_none() {
        found.changes.insert(0, "created".into());
    }
    if mode == Mode::Check {
        if meta.is_none() {
            fsio::existing_parent(&path)?;
        }
        return Ok(found);
    }
    let (file_mode, uid, gid) = match meta {
        Some(m) => (m.mode, Some(m.uid), Some(m.gid)),
        None => (DEFAULT_FILE_MODE, None, None),
    };
    fsio::write_atomically(&path, new.as_bytes(), file_mode, uid, gid)?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_table() {
        let re = Regex::new("^PermitRootLogin").unwrap();
        let p = Presence::Present;
        let a = Presence::Absent;
        let cases: &[(&str, &str, Option<&Regex>, Presence, &str)] = &[
            ("", "x", None, p, "x\n"),
            ("a\n", "x", None, p, "a\nx\n"),
            ("a", "x", None, p, "a\nx\n"),
            ("x\na\n", "x", None, p, "x\na\n"),
            ("x\na\nx\n", "x", None, a, "a\n"),
            ("a\n", "x", None, a, "a\n"),
            (
                "PermitRootLogin yes\nB\nPermitRootLogin maybe\n",
                "PermitRootLogin no",
                Some(&re),
                p,
                "PermitRootLogin no\nB\nPermitRootLogin maybe\n",
            ),
            (
                "PermitRootLogin no\n",
                "PermitRootLogin no",
                Some(&re),
                p,
                "PermitRootLogin no\n",
            ),
            (
                "A\n",
                "PermitRootLogin no",
                Some(&re),
                p,
                "A\nPermitRootLogin no\n",
            ),
            (
                "PermitRootLogin yes\nB\nPermitRootLogin no\n",
                "PermitRootLogin no",
                Some(&re),
                a,
                "B\n",
            ),
            (
                "PermitRootLogin yes",
                "PermitRootLogin no",
                Some(&re),
                p,
                "PermitRootLogin no",
            ),
        ];
        for (text, line, matcher, state, expected) in cases {
            assert_eq!(
                edit(text, line, *matcher, *state),
                *expected,
                "{text:?} {line:?} {state:?}"
            );
        }
    }
}
