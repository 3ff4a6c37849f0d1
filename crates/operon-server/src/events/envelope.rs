//! PutEvents entries in, EventBridge envelopes out.
//!
//! Each entry is checked on its own and answered on its own, as PutEvents
//! does: one bad entry does not fail the batch. The envelope is the one
//! EventBridge delivers (`version`, `id`, `detail-type`, `source`, `account`,
//! `time`, `region`, `resources`, `detail`), so patterns and transformers
//! written for EventBridge work unchanged.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Largest entry accepted, counted as EventBridge does (source, detail-type,
/// detail, resources, and 14 bytes for a time).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// The `account` field of every envelope (a self-hosted bus has no AWS account).
pub const ACCOUNT: &str = "000000000000";
/// The `region` field of every envelope.
pub const REGION: &str = "local";
/// Name of the bus used when an entry names none.
pub const DEFAULT_BUS: &str = "default";

/// One PutEvents entry as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEntry {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    /// The detail object, as JSON text.
    pub detail: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    /// RFC 3339; the ingestion time when absent.
    pub time: Option<String>,
    pub event_bus_name: Option<String>,
}

impl From<operon_api::events::PutEventsEntry> for PutEntry {
    fn from(entry: operon_api::events::PutEventsEntry) -> PutEntry {
        PutEntry {
            source: entry.source,
            detail_type: entry.detail_type,
            detail: entry.detail,
            resources: entry.resources,
            time: entry.time,
            event_bus_name: entry.event_bus_name,
        }
    }
}

/// Why an entry was refused: PutEvents' per-entry ErrorCode and ErrorMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> EntryError {
    EntryError {
        code: "InvalidArgument",
        message: message.into(),
    }
}

/// A checked entry, ready to be persisted.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub bus: String,
    /// The envelope as JSON.
    pub value: Value,
}

impl Envelope {
    pub fn text(&self) -> String {
        self.value.to_string()
    }
}

/// Check an entry and build its envelope, ingested at `now_ms`.
/// Sources the server keeps for its own events (`operon.fleet`,
/// `operon.commands`, ...), as AWS keeps `aws.*`: a caller of PutEvents or a
/// runbook's `publishEvent` cannot put events that look like the server's.
pub fn check_source_not_reserved(entry: &PutEntry) -> Result<(), EntryError> {
    let source = entry
        .source
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if source == "operon" || source.starts_with("operon.") {
        return Err(EntryError {
            code: "NotAuthorizedForSourceException",
            message: format!(
                "Source {:?} is reserved for the server's own events (operon.*)",
                entry.source.as_deref().unwrap_or_default()
            ),
        });
    }
    Ok(())
}

pub fn envelope(entry: &PutEntry, now_ms: i64) -> Result<Envelope, EntryError> {
    let source = required("Source", &entry.source)?;
    let detail_type = required("DetailType", &entry.detail_type)?;
    let detail_text = required("Detail", &entry.detail)?;
    let size = source.len()
        + detail_type.len()
        + detail_text.len()
        + entry.resources.iter().map(String::len).sum::<usize>()
        + if entry.time.is_some() { 14 } else { 0 };
    if size > MAX_ENTRY_BYTES {
        return Err(EntryError {
            code: "EntryTooLarge",
            message: format!("the entry is {size} bytes; the limit is {MAX_ENTRY_BYTES} (256 KB)"),
        });
    }
    let detail: Value = serde_json::from_str(detail_text).map_err(|e| EntryError {
        code: "MalformedDetail",
        message: format!("Detail is not valid JSON: {e}"),
    })?;
    if !detail.is_object() {
        return Err(EntryError {
            code: "MalformedDetail",
            message: "Detail must be a JSON object".into(),
        });
    }
    let time = match &entry.time {
        None => rfc3339(now_ms),
        Some(text) => {
            let ms = rfc3339_ms(text)
                .map_err(|e| invalid(format!("Time {text:?} is not an RFC 3339 timestamp: {e}")))?;
            rfc3339(ms)
        }
    };
    let bus = entry
        .event_bus_name
        .clone()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| DEFAULT_BUS.to_string());
    let id = new_event_id();
    let value = json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time,
        "region": REGION,
        "resources": entry.resources,
        "detail": detail,
    });
    Ok(Envelope { id, bus, value })
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, EntryError> {
    match value.as_deref() {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(invalid(format!(
            "Parameter {field} is not valid. Reason: {field} is a required argument."
        ))),
    }
}

/// A random version 4 UUID, the form EventBridge event ids take.
pub fn new_event_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(b)
}

/// A UUID-shaped event id derived from `seed`, for effects that may be
/// repeated after a crash (a workflow task's publishEvent, a schedule's
/// occurrence): the repeat carries the same id, so receivers deduplicate.
pub fn derived_event_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    uuid_text(b)
}

fn uuid_text(b: [u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `2026-11-30T10:00:00Z` for a Unix time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Parse an RFC 3339 time (or a date) into Unix milliseconds.
pub fn parse_time_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let ms = rfc3339_ms(&full).map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    if ms < 0 {
        return Err(format!("{text:?} is before 1970"));
    }
    Ok(ms)
}

/// An RFC 3339 time with `Z` or a numeric offset (`+02:00`), in Unix ms.
fn rfc3339_ms(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| e.to_string())
}

/// Add `replay-name` to an envelope.
pub fn with_replay_name(body: &str, replay: &str) -> Option<String> {
    let mut value: Map<String, Value> = serde_json::from_str(body).ok()?;
    value.insert("replay-name".into(), Value::String(replay.to_string()));
    Some(Value::Object(value).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail: &str) -> PutEntry {
        PutEntry {
            source: Some("my.app".into()),
            detail_type: Some("Thing Happened".into()),
            detail: Some(detail.into()),
            ..PutEntry::default()
        }
    }

    #[test]
    fn builds_the_eventbridge_envelope() {
        let env = envelope(&entry(r#"{"a":1}"#), 1_764_496_800_000).unwrap();
        let v = &env.value;
        assert_eq!(v["source"], "my.app");
        assert_eq!(v["detail-type"], "Thing Happened");
        assert_eq!(v["detail"]["a"], 1);
        assert_eq!(v["time"], "2025-11-30T10:00:00Z");
        assert_eq!(env.bus, "default");
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
        operon_pattern::validate_event_envelope(&env.text()).unwrap();
    }

    #[test]
    fn refuses_bad_entries_with_codes() {
        let missing = PutEntry::default();
        assert_eq!(envelope(&missing, 0).unwrap_err().code, "InvalidArgument");
        assert_eq!(
            envelope(&entry("[1]"), 0).unwrap_err().code,
            "MalformedDetail"
        );
        assert_eq!(
            envelope(&entry("{oops"), 0).unwrap_err().code,
            "MalformedDetail"
        );
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_ENTRY_BYTES));
        assert_eq!(envelope(&entry(&big), 0).unwrap_err().code, "EntryTooLarge");
        let mut timed = entry("{}");
        timed.time = Some("yesterday".into());
        assert!(envelope(&timed, 0).unwrap_err().message.contains("Time"));
        timed.time = Some("2026-01-02T03:04:05Z".into());
        assert_eq!(
            envelope(&timed, 0).unwrap().value["time"],
            "2026-01-02T03:04:05Z"
        );
        // Offsets are accepted and the envelope carries UTC, as EventBridge's does.
        timed.time = Some("2026-01-02T05:04:05+02:00".into());
        assert_eq!(
            envelope(&timed, 0).unwrap().value["time"],
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(parse_time_ms("1970-01-01"), Ok(0));
        assert_eq!(parse_time_ms("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert!(parse_time_ms("1969-12-31T23:59:59Z").is_err());
    }
}
