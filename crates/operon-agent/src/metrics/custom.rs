//! Custom metrics: one-shot files dropped by scripts on the node.
//!
//! A drop is a `*.json` file in the custom metrics directory holding one
//! datapoint or an array of them:
//!
//! ```json
//! {"name": "app.queue_depth", "value": 12, "unit": "Count",
//!  "dimensions": {"queue": "mail"}, "at": 1764730000000}
//! ```
//!
//! `unit` (a CloudWatch unit name), `dimensions` and `at` (Unix
//! milliseconds; the file's modification time by default) are optional.
//! At each sample every drop is read, its points go into that sample's
//! batch, and the file is deleted: a drop is delivered once (at most once:
//! the batch is kept in memory until the server acknowledges it, so an agent
//! stopped before that loses it). Writers must create the file under another
//! name (not ending in `.json`) and rename it into place, as
//! [`write_drop`] (and so `operon metrics put`) does, so a half-written
//! file is never read (a file that does not parse and was modified in the
//! last two seconds gets one more look at the next sample, for writers that
//! do not). A file that is not a valid drop is logged with its name and
//! renamed to `NAME.invalid`, out of the way, for someone to look at.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use operon_proto::{MetricPoint, UnixMillis};
use serde::Deserialize;

/// Longest metric name, dimension name or dimension value.
pub const MAX_NAME_LEN: usize = 128;
/// Most dimensions on one point (CloudWatch's limit).
pub const MAX_DIMENSIONS: usize = 30;
/// Larger drop files are refused (not read into memory).
pub const MAX_DROP_BYTES: u64 = 1024 * 1024;
/// Most points in one drop file.
pub const MAX_DROP_POINTS: usize = 1000;
/// Most custom points taken into one sample (keeps a batch well below the
/// server's frame limit); further drops wait for the next sample.
pub const MAX_SAMPLE_POINTS: usize = 5 * MAX_DROP_POINTS;

/// CloudWatch's unit names, the only units a custom metric may carry.
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// What is wrong with a custom metric or a drop file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CustomMetricError {
    #[error(
        "invalid metric name {0:?}: use 1 to {MAX_NAME_LEN} letters, digits, '_', '-' and '.', e.g. app.queue_depth"
    )]
    BadName(String),
    #[error("metric {name}: the value must be a finite number, not {value}")]
    BadValue { name: String, value: f64 },
    #[error("metric {name}: unknown unit {unit:?} (CloudWatch unit names: {})", UNITS.join(", "))]
    BadUnit { name: String, unit: String },
    #[error(
        "metric {name}: invalid dimension {key:?}={value:?}: names as metric names, values 1 to {MAX_NAME_LEN} characters without control characters"
    )]
    BadDimension {
        name: String,
        key: String,
        value: String,
    },
    #[error("metric {name}: more than {MAX_DIMENSIONS} dimensions")]
    TooManyDimensions { name: String },
    #[error("not a metric or an array of metrics: {0}")]
    BadJson(String),
    #[error("more than {MAX_DROP_POINTS} points in one file")]
    TooManyPoints,
    #[error("larger than {MAX_DROP_BYTES} bytes")]
    TooLarge,
}

/// Metric names: dotted, `[A-Za-z0-9_.-]`, at most [`MAX_NAME_LEN`].
pub fn validate_name(name: &str) -> Result<(), CustomMetricError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(CustomMetricError::BadName(name.to_owned()))
    }
}

/// Check one point: name, finite value, known unit, sane dimensions.
pub fn validate_point(point: &MetricPoint) -> Result<(), CustomMetricError> {
    validate_name(&point.name)?;
    let name = || point.name.clone();
    if !point.value.is_finite() {
        return Err(CustomMetricError::BadValue {
            name: name(),
            value: point.value,
        });
    }
    if let Some(unit) = &point.unit
        && !UNITS.contains(&unit.as_str())
    {
        return Err(CustomMetricError::BadUnit {
            name: name(),
            unit: unit.clone(),
        });
    }
    if point.dimensions.len() > MAX_DIMENSIONS {
        return Err(CustomMetricError::TooManyDimensions { name: name() });
    }
    for (key, value) in &point.dimensions {
        let value_ok = !value.is_empty()
            && value.chars().count() <= MAX_NAME_LEN
            && !value.chars().any(char::is_control);
        if validate_name(key).is_err() || !value_ok {
            return Err(CustomMetricError::BadDimension {
                name: name(),
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    Ok(())
}

/// One point as written in a drop file.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Drop {
    name: String,
    value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    dimensions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<UnixMillis>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DropFile {
    One(Drop),
    Many(Vec<Drop>),
}

/// Parse and check the text of a drop file. Points without `at` get
/// `default_at`. Any invalid point refuses the whole file (a script's
/// mistake is seen, not half-delivered).
pub fn parse_drop(
    text: &str,
    default_at: UnixMillis,
) -> Result<Vec<MetricPoint>, CustomMetricError> {
    let drops = match serde_json::from_str::<DropFile>(text) {
        Ok(DropFile::One(drop)) => vec![drop],
        Ok(DropFile::Many(drops)) => drops,
        // The untagged enum's own message says nothing useful; the object
        // form's does (which field, which line).
        Err(_) => match serde_json::from_str::<Drop>(text) {
            Ok(drop) => vec![drop],
            Err(err) => return Err(CustomMetricError::BadJson(err.to_string())),
        },
    };
    if drops.len() > MAX_DROP_POINTS {
        return Err(CustomMetricError::TooManyPoints);
    }
    drops
        .into_iter()
        .map(|drop| {
            let point = MetricPoint {
                name: drop.name,
                dimensions: drop.dimensions,
                at: drop.at.unwrap_or(default_at),
                value: drop.value,
                unit: drop.unit,
            };
            validate_point(&point).map(|()| point)
        })
        .collect()
}

/// The points of the drops in `dir`, oldest names first, and the files
/// they came from (to delete with [`remove_delivered`] once the points are
/// queued); at most [`MAX_SAMPLE_POINTS`] points, the rest wait. Invalid
/// drops are renamed to `NAME.invalid`. A missing directory has no drops.
/// Blocking.
pub fn collect(dir: &Path) -> (Vec<MetricPoint>, Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Default::default(),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "cannot list the custom metrics directory");
            return Default::default();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_drop_name(path))
        .collect();
    // Oldest names first: write_drop names files by time.
    files.sort();
    let mut points = Vec::new();
    let mut delivered = Vec::new();
    for path in files {
        if points.len() + MAX_DROP_POINTS > MAX_SAMPLE_POINTS {
            break;
        }
        match read_drop(&path) {
            Ok(found) => {
                points.extend(found);
                delivered.push(path);
            }
            Err(DropError::Gone | DropError::MaybeBeingWritten) => {}
            Err(DropError::Invalid(err)) => set_aside(&path, &err),
        }
    }
    (points, delivered)
}

/// `*.json`, not hidden (writers' temporary files start with a dot).
fn is_drop_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // Type checks (regular file, not a symlink) happen on the opened file.
    !name.starts_with('.') && name.ends_with(".json")
}

/// A file that does not parse but changed this recently may still be
/// written by a writer that does not rename (`echo ... > x.json`): it gets
/// another chance at the next sample before it is set aside.
const WRITE_GRACE_MILLIS: UnixMillis = 2_000;

enum DropError {
    /// Unparsable but just modified: looked at again next time.
    MaybeBeingWritten,
    /// Removed between listing and reading (another reader, or its writer).
    Gone,
    Invalid(String),
}

fn read_drop(path: &Path) -> Result<Vec<MetricPoint>, DropError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // The agent may run as root and the directory be writable by others:
    // never follow a symlink (to a file the writer could not read) and
    // never block on a FIFO.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(DropError::Gone),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(DropError::Invalid("a symbolic link, not a file".into()));
        }
        Err(err) => return Err(DropError::Invalid(err.to_string())),
    };
    let metadata = file
        .metadata()
        .map_err(|err| DropError::Invalid(err.to_string()))?;
    if !metadata.is_file() {
        return Err(DropError::Invalid("not a regular file".into()));
    }
    if metadata.len() > MAX_DROP_BYTES {
        return Err(DropError::Invalid(CustomMetricError::TooLarge.to_string()));
    }
    let mut text = String::new();
    file.take(MAX_DROP_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| DropError::Invalid(err.to_string()))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as UnixMillis)
        .unwrap_or_else(super::now_millis);
    parse_drop(&text, modified).map_err(|err| {
        let fresh = (super::now_millis() - modified).abs() < WRITE_GRACE_MILLIS;
        if fresh && matches!(err, CustomMetricError::BadJson(_)) {
            DropError::MaybeBeingWritten
        } else {
            DropError::Invalid(err.to_string())
        }
    })
}

/// Log a bad drop and move it out of the way so it is not read again.
fn set_aside(path: &Path, error: &str) {
    let mut invalid = path.as_os_str().to_owned();
    invalid.push(".invalid");
    let invalid = PathBuf::from(invalid);
    tracing::warn!(file = %path.display(), %error, moved_to = %invalid.display(), "invalid custom metrics file");
    if let Err(err) = std::fs::rename(path, &invalid) {
        tracing::warn!(file = %path.display(), %err, "cannot rename an invalid custom metrics file; deleting it");
        let _ = std::fs::remove_file(path);
    }
}

/// Delete delivered drops.
pub fn remove_delivered(files: &[PathBuf]) {
    for file in files {
        if let Err(err) = std::fs::remove_file(file)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %file.display(), %err, "cannot delete a delivered custom metrics file");
        }
    }
}

/// Write `points` as one drop in `dir` (created if missing), atomically:
/// a hidden temporary file, flushed to disk, renamed to `<millis>-<pid>-<n>.json`.
/// The points are checked first; nothing is written if one is invalid.
pub fn write_drop(dir: &Path, points: &[MetricPoint]) -> Result<PathBuf, WriteDropError> {
    for point in points {
        validate_point(point)?;
    }
    let drops: Vec<Drop> = points
        .iter()
        .map(|p| Drop {
            name: p.name.clone(),
            value: p.value,
            unit: p.unit.clone(),
            dimensions: p.dimensions.clone(),
            at: Some(p.at),
        })
        .collect();
    let json = serde_json::to_vec(&drops).map_err(|err| WriteDropError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(err),
    })?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WriteDropError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stem = format!(
        "{}-{}-{:08x}",
        super::now_millis(),
        std::process::id(),
        rand::random::<u32>()
    );
    let temporary = dir.join(format!(".{stem}.tmp"));
    let target = dir.join(format!("{stem}.json"));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(WriteDropError::Io {
            path: temporary,
            source,
        });
    }
    std::fs::rename(&temporary, &target).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        WriteDropError::Io {
            path: target.clone(),
            source,
        }
    })?;
    Ok(target)
}

#[derive(Debug, thiserror::Error)]
pub enum WriteDropError {
    #[error(transparent)]
    Invalid(#[from] CustomMetricError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, value: f64) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            dimensions: BTreeMap::new(),
            at: 5,
            value,
            unit: None,
        }
    }

    #[test]
    fn drop_text_table() {
        let one =
            r#"{"name":"app.queue_depth","value":12,"unit":"Count","dimensions":{"queue":"mail"}}"#;
        let got = parse_drop(one, 77).unwrap();
        assert_eq!(
            got,
            [MetricPoint {
                name: "app.queue_depth".into(),
                dimensions: BTreeMap::from([("queue".into(), "mail".into())]),
                at: 77,
                value: 12.0,
                unit: Some("Count".into()),
            }]
        );
        let many = r#"[{"name":"a","value":1,"at":5},{"name":"b-c_d.e","value":-2.5}]"#;
        let got = parse_drop(many, 9).unwrap();
        assert_eq!(got.iter().map(|p| p.at).collect::<Vec<_>>(), [5, 9]);
        assert_eq!(parse_drop("[]", 0).unwrap(), []);

        for (text, wanted) in [
            ("", "not a metric"),
            ("12", "not a metric"),
            (r#"{"value":1}"#, "missing field `name`"),
            (r#"{"name":"a","value":"x"}"#, "not a metric"),
            (
                r#"{"name":"a","value":1,"colour":"red"}"#,
                "unknown field `colour`",
            ),
            (r#"{"name":"a b","value":1}"#, "invalid metric name \"a b\""),
            (
                r#"{"name":"a","value":1,"unit":"Furlongs"}"#,
                "unknown unit \"Furlongs\"",
            ),
            (
                r#"{"name":"a","value":1,"dimensions":{"q":""}}"#,
                "invalid dimension",
            ),
            (
                r#"{"name":"a","value":1,"dimensions":{"a b":"x"}}"#,
                "invalid dimension",
            ),
            (
                r#"[{"name":"ok","value":1},{"name":"","value":1}]"#,
                "invalid metric name \"\"",
            ),
            (r#"{"name":"a","value":1e999}"#, "not a metric"),
        ] {
            let err = parse_drop(text, 0).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn point_checks() {
        assert!(validate_point(&point(&"x".repeat(128), 1.0)).is_ok());
        assert!(validate_point(&point(&"x".repeat(129), 1.0)).is_err());
        assert!(matches!(
            validate_point(&point("a", f64::NAN)),
            Err(CustomMetricError::BadValue { .. })
        ));
        assert!(validate_point(&point("a", f64::INFINITY)).is_err());
        let mut many = point("a", 1.0);
        many.dimensions = (0..31).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            validate_point(&many),
            Err(CustomMetricError::TooManyDimensions { name: "a".into() })
        );
    }

    #[test]
    fn drops_are_collected_then_removed_and_bad_ones_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_drop(dir.path(), &[point("app.x", 3.0)]).unwrap();
        assert!(written.extension().is_some_and(|e| e == "json"));
        std::fs::write(
            dir.path().join("bad.json"),
            r#"{"name":"x","value":1,"unit":"Furlongs"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(".half.tmp"), "{").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();

        let (points, delivered) = collect(dir.path());
        assert_eq!(points, [point("app.x", 3.0)]);
        assert_eq!(delivered, std::slice::from_ref(&written));
        assert!(dir.path().join("bad.json.invalid").exists());
        assert!(!dir.path().join("bad.json").exists());

        remove_delivered(&delivered);
        assert!(!written.exists());
        assert_eq!(collect(dir.path()), (vec![], vec![]));
        // Left alone: the writer's temporary file and other names.
        assert!(dir.path().join(".half.tmp").exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn a_missing_directory_has_no_drops_and_an_invalid_point_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(collect(&missing), (vec![], vec![]));
        let err = write_drop(&missing, &[point("bad name", 1.0)]).unwrap_err();
        assert!(err.to_string().contains("invalid metric name"), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_fresh_unparsable_file_waits_and_a_stale_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.json");
        std::fs::write(&path, r#"{"name": "a", "val"#).unwrap();
        assert_eq!(collect(dir.path()), (vec![], vec![]));
        assert!(path.exists(), "left for the writer to finish");
        // A fresh file with valid JSON but a bad point is refused at once.
        std::fs::write(dir.path().join("bad.json"), r#"{"name":"a b","value":1}"#).unwrap();
        collect(dir.path());
        assert!(dir.path().join("bad.json.invalid").exists());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        collect(dir.path());
        assert!(!path.exists());
        assert!(dir.path().join("half.json.invalid").exists());
    }

    #[test]
    fn a_flood_of_drops_is_taken_a_bounded_part_per_sample() {
        let dir = tempfile::tempdir().unwrap();
        let full: Vec<MetricPoint> = (0..MAX_DROP_POINTS).map(|_| point("a", 1.0)).collect();
        for i in 0..7 {
            std::fs::write(
                dir.path().join(format!("{i}.json")),
                serde_json::to_string(
                    &full
                        .iter()
                        .map(|p| serde_json::json!({"name": p.name, "value": p.value}))
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
            )
            .unwrap();
        }
        let (points, delivered) = collect(dir.path());
        assert_eq!(points.len(), MAX_SAMPLE_POINTS);
        assert_eq!(delivered.len(), 5);
        remove_delivered(&delivered);
        let (points, delivered) = collect(dir.path());
        assert_eq!((points.len(), delivered.len()), (2 * MAX_DROP_POINTS, 2));
    }

    #[test]
    fn symlinks_and_directories_are_set_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, r#"{"name":"leak","value":1}"#).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("link.json")).unwrap();
        std::fs::create_dir(dir.path().join("sub.json")).unwrap();
        let (points, delivered) = collect(dir.path());
        assert_eq!((points, delivered), (vec![], vec![]));
        assert!(dir.path().join("link.json.invalid").is_symlink());
        assert!(dir.path().join("sub.json.invalid").is_dir());
        assert!(secret.exists());
    }

    #[test]
    fn a_drop_without_at_takes_the_file_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), r#"{"name":"a","value":1}"#).unwrap();
        let (points, _) = collect(dir.path());
        let now = super::super::now_millis();
        assert!((now - points[0].at).abs() < 60_000, "{}", points[0].at);
    }
}
