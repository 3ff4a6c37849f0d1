//! Output handling: the capped capture kept for the final result, and the
//! coalescing of live output into `Output` frames.

use operon_proto::{AgentMessage, OutputStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

/// Live output is flushed at least this often while a line is incomplete.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Live output pending beyond this many bytes is flushed at once.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// The first `cap` bytes of a stream, and whether more was written.
#[derive(Debug)]
pub struct Capture {
    cap: usize,
    kept: Vec<u8>,
    truncated: bool,
}

impl Capture {
    pub fn new(cap: usize) -> Self {
        Capture {
            cap,
            kept: Vec::new(),
            truncated: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        if bytes.len() > take {
            self.truncated = true;
        }
    }

    /// The kept text (invalid UTF-8 replaced; a character cut by the cap is
    /// dropped whole) and the truncated flag.
    pub fn finish(&self) -> (String, bool) {
        let mut kept = &self.kept[..];
        if self.truncated {
            kept = &kept[..kept.len() - incomplete_tail_len(kept)];
        }
        (String::from_utf8_lossy(kept).into_owned(), self.truncated)
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is not
/// complete yet (0 to 3).
pub fn incomplete_tail_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead
        }
        let needed = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// Where live output goes: the agent's outbound queue (bounded, so a slow
/// link slows the reader and, through the pipe, the child) tagged with the
/// invocation id. `None` discards live output (tests, offline runs).
#[derive(Debug, Clone)]
pub struct OutputSink {
    pub invocation_id: String,
    pub tx: Option<mpsc::Sender<AgentMessage>>,
}

impl OutputSink {
    /// Send `bytes` as one live chunk (nothing when empty or without a queue).
    pub async fn send(&self, stream: OutputStream, bytes: &[u8]) {
        let Some(tx) = &self.tx else { return };
        if bytes.is_empty() {
            return;
        }
        let message = AgentMessage::Output {
            invocation_id: self.invocation_id.clone(),
            stream,
            data: String::from_utf8_lossy(bytes).into_owned(),
        };
        // A closed queue means the agent is stopping: output is best effort.
        let _ = tx.send(message).await;
    }
}

/// Read `reader` to its end, keeping the capped capture and sending live
/// chunks: at newline boundaries, or when a partial line has waited
/// [`FLUSH_INTERVAL`], or has grown past [`MAX_CHUNK_BYTES`]. Chunks never
/// split a UTF-8 character.
pub async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: OutputStream,
    capture: &mut Capture,
    sink: &OutputSink,
) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let mut flush_at: Option<Instant> = None;
    loop {
        let read = match flush_at {
            Some(at) => tokio::time::timeout_at(at, reader.read(&mut buf)).await,
            None => Ok(reader.read(&mut buf).await),
        };
        match read {
            Err(_elapsed) => {
                let cut = pending.len() - incomplete_tail_len(&pending);
                sink.send(stream, &pending[..cut]).await;
                pending.drain(..cut);
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                capture.push(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                if let Some(newline) = pending.iter().rposition(|&b| b == b'\n') {
                    sink.send(stream, &pending[..=newline]).await;
                    pending.drain(..=newline);
                }
                if pending.len() >= MAX_CHUNK_BYTES {
                    let cut = pending.len() - incomplete_tail_len(&pending);
                    sink.send(stream, &pending[..cut]).await;
                    pending.drain(..cut);
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(%err, ?stream, "reading command output failed");
                break;
            }
        }
        flush_at = match (pending.is_empty(), flush_at) {
            (true, _) => None,
            (false, Some(at)) if at > Instant::now() => Some(at),
            (false, _) => Some(Instant::now() + FLUSH_INTERVAL),
        };
    }
    sink.send(stream, &pending).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_first_bytes_and_flags_truncation() {
        let mut capture = Capture::new(5);
        capture.push(b"abc");
        assert_eq!(capture.finish(), ("abc".to_owned(), false));
        capture.push(b"defgh");
        assert_eq!(capture.finish(), ("abcde".to_owned(), true));
    }

    #[test]
    fn capture_never_splits_a_character() {
        let mut capture = Capture::new(4);
        capture.push("abé€".as_bytes()); // a b é(2) €(3)
        assert_eq!(capture.finish(), ("abé".to_owned(), true));
        let mut capture = Capture::new(3);
        capture.push("a€".as_bytes());
        assert_eq!(capture.finish(), ("a".to_owned(), true));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut capture = Capture::new(100);
        capture.push(&[b'o', b'k', 0xFF, b'\n']);
        assert_eq!(capture.finish().0, "ok\u{FFFD}\n");
    }

    #[test]
    fn incomplete_tails_are_measured() {
        assert_eq!(incomplete_tail_len(b"abc"), 0);
        assert_eq!(incomplete_tail_len(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail_len(&"€".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail_len("€".as_bytes()), 0);
        assert_eq!(incomplete_tail_len("😀".as_bytes()), 0);
        assert_eq!(incomplete_tail_len(&"😀".as_bytes()[..3]), 3);
    }

    #[tokio::test]
    async fn pump_sends_whole_lines_and_captures_everything() {
        let (tx, mut rx) = mpsc::channel(16);
        let sink = OutputSink {
            invocation_id: "i".into(),
            tx: Some(tx),
        };
        let mut capture = Capture::new(1024);
        let input: &[u8] = b"one\ntwo\nthree";
        pump(input, OutputStream::Stdout, &mut capture, &sink).await;
        drop(sink);
        let mut chunks = Vec::new();
        while let Some(AgentMessage::Output { data, .. }) = rx.recv().await {
            chunks.push(data);
        }
        assert_eq!(chunks.concat(), "one\ntwo\nthree");
        assert_eq!(chunks[0], "one\ntwo\n");
        assert_eq!(capture.finish().0, "one\ntwo\nthree");
    }
}
