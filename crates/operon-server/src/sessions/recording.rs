//! A session's recording as asciicast v2, cut into compressed chunks.
//!
//! [asciicast v2](https://docs.asciinema.org/manual/asciicast/v2/) is one
//! JSON header line, then one JSON array per event: `[seconds, "o", text]`
//! for output, `"i"` for input, `"r"` for a resize (`"COLSxROWS"`), `"m"`
//! for a marker. The recorder writes that text, counts its bytes and hashes
//! it (SHA-256) as it goes, and cuts it into chunks, each a complete gzip
//! member: the caller seals and stores each chunk as it is cut, so a crash
//! loses at most the chunk being filled, and the stored chunks in order
//! decompress ([`decode`]) to exactly the text that was hashed.
//!
//! Output is bytes; asciicast events are text. Bytes are decoded as UTF-8
//! across event boundaries (a character split between two reads is held
//! until it is whole); invalid bytes become U+FFFD, as terminals show them.
//!
//! Pure: no clock (the caller passes the elapsed time), no I/O.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Plain text gathered before a chunk is cut.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The header's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub cols: u16,
    pub rows: u16,
    /// Unix seconds.
    pub timestamp: i64,
    pub term: String,
    pub title: String,
}

/// Writes one recording.
pub struct Recorder {
    record_input: bool,
    /// Text not yet cut into a chunk.
    pending: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
    /// Bytes of the longest recording kept; past it, one marker and nothing more.
    limit: u64,
    full: bool,
    output_rest: Vec<u8>,
    input_rest: Vec<u8>,
    chunks_cut: i64,
}

/// How a recording was finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Hex SHA-256 of the whole asciicast text.
    pub sha256: String,
    pub bytes: u64,
}

impl Recorder {
    pub fn new(header: &Header, record_input: bool, limit: u64) -> Recorder {
        let mut recorder = Recorder {
            record_input,
            pending: Vec::new(),
            hasher: Sha256::new(),
            bytes: 0,
            limit,
            full: false,
            output_rest: Vec::new(),
            input_rest: Vec::new(),
            chunks_cut: 0,
        };
        let line = json!({
            "version": 2,
            "width": header.cols,
            "height": header.rows,
            "timestamp": header.timestamp,
            "title": header.title,
            "env": {"TERM": header.term, "SHELL": "/bin/sh"},
        });
        recorder.line(&line.to_string());
        recorder
    }

    /// Output of the program at `seconds` since the start.
    pub fn output(&mut self, seconds: f64, bytes: &[u8]) {
        let text = take_text(&mut self.output_rest, bytes);
        self.event(seconds, "o", &text);
    }

    /// What the user typed (kept only when input recording is on).
    pub fn input(&mut self, seconds: f64, bytes: &[u8]) {
        if self.record_input {
            let text = take_text(&mut self.input_rest, bytes);
            self.event(seconds, "i", &text);
        }
    }

    pub fn resize(&mut self, seconds: f64, cols: u16, rows: u16) {
        self.event(seconds, "r", &format!("{cols}x{rows}"));
    }

    /// A marker (a forwarded connection opened or closed, the end's reason).
    pub fn marker(&mut self, seconds: f64, label: &str) {
        self.event(seconds, "m", label);
    }

    fn event(&mut self, seconds: f64, code: &str, data: &str) {
        if data.is_empty() || self.full {
            return;
        }
        let seconds = (seconds.max(0.0) * 1_000_000.0).round() / 1_000_000.0;
        let line = json!([seconds, code, data]).to_string();
        if self.bytes + line.len() as u64 + 1 > self.limit {
            self.full = true;
            let note = json!([
                seconds,
                "m",
                "recording limit reached: the rest is not recorded"
            ]);
            self.line(&note.to_string());
            return;
        }
        self.line(&line);
    }

    fn line(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.bytes += line.len() as u64 + 1;
    }

    /// A chunk to store, when enough text has gathered: `(seq, gzip member)`.
    pub fn take_chunk(&mut self) -> Option<(i64, Vec<u8>)> {
        (self.pending.len() >= CHUNK_BYTES).then(|| self.cut())
    }

    /// Whatever is pending as a chunk (a periodic flush); `None` if nothing.
    pub fn flush(&mut self) -> Option<(i64, Vec<u8>)> {
        (!self.pending.is_empty()).then(|| self.cut())
    }

    fn cut(&mut self) -> (i64, Vec<u8>) {
        let seq = self.chunks_cut;
        self.chunks_cut += 1;
        (seq, compress(&std::mem::take(&mut self.pending)))
    }

    /// The last chunk (if any) and the recording's digest and size. Nothing
    /// is recorded after it.
    pub fn finish(&mut self) -> (Option<(i64, Vec<u8>)>, Finished) {
        let last = self.flush();
        self.full = true;
        let finished = Finished {
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
            bytes: self.bytes,
        };
        (last, finished)
    }
}

/// Whole characters from `rest` + `bytes`; an incomplete character at the
/// end waits in `rest` for the next read.
fn take_text(rest: &mut Vec<u8>, bytes: &[u8]) -> String {
    rest.extend_from_slice(bytes);
    let keep = incomplete_tail(rest);
    let whole = rest.len() - keep;
    let text = String::from_utf8_lossy(&rest[..whole]).into_owned();
    rest.drain(..whole);
    text
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is
/// not complete yet (0 to 3).
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=3.min(bytes.len()) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let needed = match byte {
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

fn compress(text: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(text);
    encoder.finish().unwrap_or_default()
}

/// The recording's text from its chunks, in order, and its SHA-256 (hex).
pub fn decode(chunks: &[Vec<u8>]) -> Result<(String, String), String> {
    let mut text = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        MultiGzDecoder::new(chunk.as_slice())
            .read_to_end(&mut text)
            .map_err(|e| format!("chunk {index} of the recording does not decompress: {e}"))?;
    }
    let sha = hex::encode(Sha256::digest(&text));
    let text =
        String::from_utf8(text).map_err(|_| "the recording is not UTF-8 text".to_string())?;
    Ok((text, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            cols: 80,
            rows: 24,
            timestamp: 1_700_000_000,
            term: "xterm".into(),
            title: "web-1".into(),
        }
    }

    fn all_chunks(mut recorder: Recorder) -> (Vec<Vec<u8>>, Finished) {
        let mut chunks = Vec::new();
        while let Some((_, chunk)) = recorder.take_chunk() {
            chunks.push(chunk);
        }
        let (last, finished) = recorder.finish();
        chunks.extend(last.map(|(_, c)| c));
        (chunks, finished)
    }

    #[test]
    fn events_are_asciicast_v2_lines_and_the_digest_covers_them() {
        let mut recorder = Recorder::new(&header(), true, u64::MAX);
        recorder.output(0.5, b"$ ");
        recorder.input(1.25, b"ls\r");
        recorder.resize(2.0, 120, 40);
        recorder.output(2.0000004, b"a\x1b[0m\n");
        recorder.output(3.0, b"");
        let (chunks, finished) = all_chunks(recorder);
        let (text, sha) = decode(&chunks).unwrap();
        assert_eq!(sha, finished.sha256);
        assert_eq!(text.len() as u64, finished.bytes);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 80);
        assert_eq!(lines[1], json!([0.5, "o", "$ "]));
        assert_eq!(lines[2], json!([1.25, "i", "ls\r"]));
        assert_eq!(lines[3], json!([2.0, "r", "120x40"]));
        assert_eq!(lines[4], json!([2.0, "o", "a\u{1b}[0m\n"]));
        assert_eq!(lines.len(), 5, "empty output is no event");
    }

    #[test]
    fn input_is_left_out_when_asked() {
        let mut recorder = Recorder::new(&header(), false, u64::MAX);
        recorder.input(1.0, b"secret\r");
        recorder.output(1.0, b"ok");
        let (chunks, _) = all_chunks(recorder);
        let (text, _) = decode(&chunks).unwrap();
        assert!(!text.contains("secret"));
        assert!(text.contains("ok"));
    }

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut recorder = Recorder::new(&header(), true, u64::MAX);
        recorder.output(0.1, &[b'a', euro[0]]);
        recorder.output(0.2, &euro[1..2]);
        recorder.output(0.3, &[euro[2], b'b']);
        recorder.output(0.4, &[0xff, b'c']);
        let (chunks, _) = all_chunks(recorder);
        let (text, _) = decode(&chunks).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let outputs: Vec<&str> = events.iter().map(|e| e[2].as_str().unwrap()).collect();
        assert_eq!(outputs, vec!["a", "€b", "\u{fffd}c"]);
    }

    #[test]
    fn incomplete_tails() {
        assert_eq!(incomplete_tail(b""), 0);
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[0xE2]), 1);
        assert_eq!(incomplete_tail(&[0xE2, 0x82]), 2);
        assert_eq!(incomplete_tail(&[0xE2, 0x82, 0xAC]), 0);
        assert_eq!(incomplete_tail(&[0xF0, 0x9F, 0x98]), 3);
        assert_eq!(incomplete_tail(&[0xF0, 0x9F, 0x98, 0x80]), 0);
        assert_eq!(
            incomplete_tail(&[0x80, 0x80, 0x80]),
            0,
            "stray continuations wait for nothing"
        );
    }

    #[test]
    fn big_recordings_are_cut_into_chunks_that_decode_in_order() {
        let mut recorder = Recorder::new(&header(), true, u64::MAX);
        let mut chunks = Vec::new();
        for i in 0..5_000 {
            recorder.output(
                i as f64 / 100.0,
                format!("line {i} of the output\r\n").as_bytes(),
            );
            if let Some((seq, chunk)) = recorder.take_chunk() {
                assert_eq!(seq, chunks.len() as i64);
                chunks.push(chunk);
            }
        }
        let (last, finished) = recorder.finish();
        chunks.extend(last.map(|(_, c)| c));
        recorder.output(99.0, b"after the end");
        assert_eq!(recorder.flush(), None, "nothing is recorded after finish");
        assert!(chunks.len() > 2, "{} chunks", chunks.len());
        let (text, sha) = decode(&chunks).unwrap();
        assert_eq!(sha, finished.sha256);
        assert!(text.contains("line 4999 of the output"));
        // A lost middle chunk is evident.
        let mut tampered = chunks.clone();
        tampered.remove(1);
        assert_ne!(decode(&tampered).unwrap().1, finished.sha256);
        assert!(decode(&[b"not gzip".to_vec()]).is_err());
    }

    #[test]
    fn past_the_limit_one_marker_then_nothing() {
        let mut recorder = Recorder::new(&header(), true, 400);
        for i in 0..100 {
            recorder.output(i as f64, b"0123456789");
        }
        let (chunks, finished) = all_chunks(recorder);
        let (text, _) = decode(&chunks).unwrap();
        assert!(finished.bytes < 500, "{}", finished.bytes);
        assert_eq!(text.matches("recording limit reached").count(), 1);
        assert!(text.ends_with("the rest is not recorded\"]\n"), "{text}");
    }
}
