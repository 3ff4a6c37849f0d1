//! A small W3C WebDriver client: headless Chromium driven by chromedriver
//! over plain HTTP/1.1 JSON, for the console's browser tests.
//!
//! Why hand-written: the protocol the tests need is a dozen JSON requests,
//! the tree has no blocking HTTP client, and a WebDriver crate would be a
//! large dependency for that. Each request is one connection
//! (`Connection: close`), as `support::http` does.
//!
//! The browser runs with the flags a closed network needs (no background
//! traffic, no component updates), in its own profile directory, and
//! chromedriver runs in its own process group so that [`Browser`]'s `Drop`
//! ends chromedriver and every Chromium process however a test ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{free_port, wait_for};

/// Where Debian installs Chromium and its driver (`chromium`, `chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long the tests wait for a page to show what they expect.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium session behind its own chromedriver.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// The browser profile, removed when the browser is dropped.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver on a free port and open a headless session.
    pub fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (.ci/run does when it can)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so Drop can end Chromium with it.
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        wait_for("chromedriver to be ready", PAGE_TIMEOUT, || {
            let (_, status) = request(port, "GET", "/status", None).ok()?;
            (status["value"]["ready"] == true).then_some(())
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                    "--window-size=1280,900",
                ],
            },
        }}});
        let created = browser.call("POST", "/session", Some(&capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; panics with the driver's error if it fails.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, answer) = request(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    /// A command of this session (`path` after `/session/{id}`).
    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Load `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn title(&self) -> String {
        self.session_call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The text the page shows (`document.body.innerText`).
    pub fn body_text(&self) -> String {
        self.execute("return document.body ? document.body.innerText : '';", &[])
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Run `script` (a function body) in the page with `args`; its return value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// The elements matching CSS `selector`, in document order.
    pub fn find_all(&self, selector: &str) -> Vec<Element> {
        let found = self.session_call(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        found
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element { id: id.to_string() })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `selector`, waited for.
    pub fn find(&self, selector: &str) -> Element {
        wait_for(&format!("an element {selector:?}"), PAGE_TIMEOUT, || {
            self.find_all(selector).into_iter().next()
        })
    }

    pub fn click(&self, element: &Element) {
        self.session_call(
            "POST",
            &format!("/element/{}/click", element.id),
            Some(&json!({})),
        );
    }

    /// Type `text` into `element` (a form field).
    pub fn type_into(&self, element: &Element, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{}/value", element.id),
            Some(&json!({ "text": text })),
        );
    }

    /// Clear a form field.
    pub fn clear(&self, element: &Element) {
        self.session_call(
            "POST",
            &format!("/element/{}/clear", element.id),
            Some(&json!({})),
        );
    }

    /// The rendered text of `element`.
    pub fn text(&self, element: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", element.id), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The cookies the browser holds for the current page, with their
    /// flags (`httpOnly`, `sameSite`, ...), as WebDriver reports them.
    pub fn cookies(&self) -> Vec<Value> {
        self.session_call("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until the page's URL path is `path` (query ignored).
    pub fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let url = self.current_url();
            if url_path(&url) == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never reached {path}; it is at {url}, showing:\n{}",
                self.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the page shows `text`; answers the page's text.
    pub fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let shown = self.body_text();
            if shown.contains(text) {
                return shown;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}; it shows:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_call("GET", "/screenshot", None);
        let encoded = encoded.as_str().expect("a base64 screenshot");
        base64_decode(encoded).expect("the screenshot is valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Quits Chromium cleanly; the group kill below is the backstop.
            let path = format!("/session/{}", self.session);
            let _ = request(self.port, "DELETE", &path, None);
        }
        // The group chromedriver leads: Chromium and its helpers with it.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

/// The path of `url` (`http://host:port/a/b?q` → `/a/b`).
pub fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

/// One HTTP/1.1 request to chromedriver: the status and the JSON body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    // Page loads answer when the page is loaded: generous, never forever.
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let (head, body) = read_response(&mut stream)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The head and body of one response. chromedriver keeps the connection
/// open whatever the request asks, so the body is read by its
/// `Content-Length` (or its chunks), never to the end of the stream.
fn read_response(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&received, b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let mut body = received[head_end + 4..].to_vec();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_ascii_lowercase())
        })
    };
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    loop {
        let complete = match length {
            Some(length) => body.len() >= length,
            None if chunked => find(&body, b"0\r\n\r\n").is_some(),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    if let Some(length) = length {
        body.truncate(length);
    } else if chunked {
        body = dechunk(&body);
    }
    Ok((head, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        let rest = &body[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// Standard base64 (with padding) to bytes; `None` on a stray character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for group in symbols.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in group.iter().enumerate() {
            bits |= value(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}
