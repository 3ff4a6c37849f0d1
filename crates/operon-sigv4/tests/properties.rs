//! sign() then verify() over random requests; any change to what was signed is refused,
//! changes to what was not signed are accepted.

use operon_sigv4::{Request, SigError, SigningParams, parse, sign, verify};
use proptest::prelude::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timestamp: i64,
    content_sha256: bool,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,8}",
        "[A-Za-z0-9]{1,4}(%20|%E1%88%B4|-|_|~)[A-Za-z0-9]{1,4}",
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        prop::collection::vec(segment(), 1..4),
        prop::collection::vec(("[a-zA-Z][a-zA-Z0-9]{0,5}", "[a-zA-Z0-9]{1,6}"), 0..4),
        prop::collection::vec(
            ("x-[a-z]{1,6}", "[a-zA-Z0-9]{1,6}( [a-zA-Z0-9]{1,4})?"),
            0..4,
        ),
        prop::collection::vec(any::<u8>(), 0..64),
        0_i64..4_000_000_000,
        any::<bool>(),
    )
        .prop_map(
            |(method, segments, params, extra, body, timestamp, content_sha256)| {
                let query = params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&");
                let mut headers = vec![("Host".to_owned(), "ssm.example.internal".to_owned())];
                headers.extend(extra);
                headers.push(("User-Agent".to_owned(), "aws-cli/2".to_owned()));
                Case {
                    method: method.to_owned(),
                    path: format!("/{}", segments.join("/")),
                    query,
                    headers,
                    body,
                    timestamp,
                    content_sha256,
                }
            },
        )
}

impl Case {
    fn signed(mut self) -> Case {
        let added = {
            let raw = raw_headers(&self.headers);
            let req = self.request(&raw);
            sign(
                &req,
                &SigningParams {
                    access_key_id: "AKIDEXAMPLE",
                    secret_access_key: SECRET,
                    region: "us-east-1",
                    service: "ssm",
                    timestamp_unix: self.timestamp,
                    add_content_sha256: self.content_sha256,
                },
            )
        };
        self.headers.extend(added);
        self
    }

    fn request<'a>(&'a self, headers: &'a [(&'a str, &'a [u8])]) -> Request<'a> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers,
            body: &self.body,
        }
    }

    fn check(&self) -> Result<(), SigError> {
        let raw = raw_headers(&self.headers);
        let req = self.request(&raw);
        let auth = parse(&req)?;
        verify(&auth, &req, SECRET, self.timestamp)
    }
}

fn raw_headers(headers: &[(String, String)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect()
}

/// Replaces the alphanumeric byte at (`pick` modulo the alphanumeric positions) of `text`
/// with a different alphanumeric byte, so the canonical form must change.
fn change_one_alphanumeric(text: &str, pick: usize) -> Option<String> {
    let positions: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect();
    let index = *positions.get(pick % positions.len().max(1))?;
    let mut bytes = text.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).ok()
}

proptest! {
    #[test]
    fn signed_requests_verify(case in case()) {
        prop_assert_eq!(case.signed().check(), Ok(()));
    }

    #[test]
    fn changing_the_body_is_refused(case in case(), pick in any::<usize>(), flip in 1_u8..) {
        let mut signed = case.signed();
        match signed.body.len() {
            0 => signed.body.push(flip),
            len => signed.body[pick % len] ^= flip,
        }
        // With a signed x-amz-content-sha256 the signature still matches, the hash does not.
        let expected = if signed.content_sha256 {
            SigError::ContentSha256Mismatch
        } else {
            SigError::SignatureMismatch
        };
        prop_assert_eq!(signed.check(), Err(expected));
    }

    #[test]
    fn changing_a_signed_header_value_is_refused(case in case(), which in any::<usize>(), pick in any::<usize>()) {
        let mut signed = case.signed();
        // Every header but user-agent and authorization is signed.
        let candidates: Vec<usize> = signed.headers.iter().enumerate()
            .filter(|(_, (n, _))| n != "User-Agent" && n != "authorization" && n != "x-amz-date")
            .map(|(i, _)| i)
            .collect();
        let index = candidates[which % candidates.len()];
        let changed = change_one_alphanumeric(&signed.headers[index].1, pick);
        prop_assume!(changed.is_some());
        signed.headers[index].1 = changed.unwrap_or_default();
        prop_assert_eq!(signed.check(), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn changing_the_path_or_query_is_refused(case in case(), pick in any::<usize>(), in_query in any::<bool>()) {
        let mut signed = case.signed();
        let target = if in_query && !signed.query.is_empty() { &mut signed.query } else { &mut signed.path };
        let changed = change_one_alphanumeric(target, pick);
        prop_assume!(changed.is_some());
        *target = changed.unwrap_or_default();
        prop_assert_eq!(signed.check(), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn changing_the_signature_is_refused(case in case(), pick in 0_usize..64, flip in 1_u8..16) {
        let mut signed = case.signed();
        let Some(auth) = signed.headers.iter_mut().find(|(n, _)| n == "authorization") else {
            return Err(TestCaseError::fail("sign() added no authorization"));
        };
        let start = auth.1.len() - 64;
        let digit = u8::from_str_radix(&auth.1[start + pick..start + pick + 1], 16).unwrap_or(0);
        let replaced = format!("{:x}", (digit ^ flip) & 0x0f);
        auth.1.replace_range(start + pick..start + pick + 1, &replaced);
        prop_assert_eq!(signed.check(), Err(SigError::SignatureMismatch));
    }

    #[test]
    fn changing_unsigned_headers_is_accepted(case in case(), agent in "[ -~]{0,20}", extra in "[a-z]{1,8}") {
        let mut signed = case.signed();
        for (name, value) in signed.headers.iter_mut() {
            if name == "User-Agent" {
                *value = agent.clone();
            }
        }
        signed.headers.push(("X-Not-Signed-Yet".to_owned(), extra));
        prop_assert_eq!(signed.check(), Ok(()));
    }

    #[test]
    fn parse_never_panics(
        authorization in "[ -~]{0,120}",
        date in "[ -~]{0,20}",
        path in "[ -~]{0,20}",
        query in "[ -~]{0,20}",
    ) {
        let headers: Vec<(&str, &[u8])> = vec![
            ("host", b"h"),
            ("authorization", authorization.as_bytes()),
            ("x-amz-date", date.as_bytes()),
        ];
        let req = Request { method: "GET", path: &path, query: &query, headers: &headers, body: b"" };
        if let Ok(auth) = parse(&req) {
            prop_assert!(verify(&auth, &req, SECRET, auth.timestamp).is_err());
        }
    }

    #[test]
    fn parse_never_panics_on_signed_header_prefixes(case in case(), cut in any::<usize>()) {
        let mut signed = case.signed();
        if let Some(auth) = signed.headers.iter_mut().find(|(n, _)| n == "authorization") {
            let mut end = cut % (auth.1.len() + 1);
            while !auth.1.is_char_boundary(end) {
                end -= 1;
            }
            auth.1.truncate(end);
        }
        let _ = signed.check();
    }
}
