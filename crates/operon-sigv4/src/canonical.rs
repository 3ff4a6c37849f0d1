//! The canonical request: the exact bytes both sides hash before signing.

use sha2::{Digest, Sha256};

use crate::Request;

/// The header whose value, when signed, stands in for the body hash.
pub(crate) const CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Builds the canonical request for `req` over the (lowercase, sorted) `signed_headers`:
///
/// ```text
/// METHOD\nCANONICAL_URI\nCANONICAL_QUERY\nname:value\n...\n\nsigned;headers\nPAYLOAD_HASH
/// ```
///
/// Headers named in `signed_headers` but absent from the request contribute an empty value;
/// [`crate::verify`] refuses such requests before getting here.
pub fn canonical_request(req: &Request<'_>, signed_headers: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.path.len() + req.query.len());
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&canonical_header_value(req, name));
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash(req, signed_headers).as_bytes());
    out
}

/// The hash that closes the canonical request: the signed `x-amz-content-sha256` value if
/// the client sent one (it may be `UNSIGNED-PAYLOAD`), else the hex SHA-256 of the body.
fn payload_hash(req: &Request<'_>, signed_headers: &[String]) -> String {
    let declared = signed_headers
        .iter()
        .any(|name| name == CONTENT_SHA256)
        .then(|| canonical_header_value(req, CONTENT_SHA256))
        .filter(|value| !value.is_empty());
    match declared {
        Some(value) => String::from_utf8_lossy(&value).into_owned(),
        None => hex::encode(Sha256::digest(req.body)),
    }
}

/// All values of the header `name` (any case), each trimmed with inner whitespace runs
/// collapsed to one space, joined with `,` in the order they were received.
fn canonical_header_value(req: &Request<'_>, name: &str) -> Vec<u8> {
    let mut joined = Vec::new();
    let values = req
        .headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name));
    for (index, (_, value)) in values.enumerate() {
        if index > 0 {
            joined.push(b',');
        }
        let words = value
            .split(|b| is_whitespace(*b))
            .filter(|word| !word.is_empty());
        for (word_index, word) in words.enumerate() {
            if word_index > 0 {
                joined.push(b' ');
            }
            joined.extend_from_slice(word);
        }
    }
    joined
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The canonical URI of a raw (as on the wire, already percent-encoded) path, as non-S3
/// services compute it: dot segments and empty segments removed, then every byte outside
/// the unreserved set and `/` percent-encoded once more (so `%20` becomes `%2520`).
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    uri_encode(normalize_path(raw_path), true)
}

/// Removes `.`, `..` and empty segments, keeping a leading `/` and a trailing `/` if the
/// path keeps any segment (`//example//` → `/example/`, `/./` → `/`).
fn normalize_path(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let leading = if raw_path.starts_with('/') { "/" } else { "" };
    let trailing = if raw_path.ends_with('/') && !segments.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{leading}{}{trailing}", segments.join("/"))
}

/// The canonical query string: parameters split on `&` (empty pieces dropped), names and
/// values percent-decoded then re-encoded with AWS's rules, sorted by name then value.
pub(crate) fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (
                uri_encode(percent_decode(name), false),
                uri_encode(percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    encoded.join("&")
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as a literal `%`
/// (and will be encoded as `%25`). `+` stays a `+`: SigV4 does not use form encoding.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match bytes.get(index..index + 3) {
            Some(&[b'%', high, low]) => hex_value(high).zip(hex_value(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Percent-encodes every byte outside `A-Za-z0-9-_.~` (and `/` when `keep_slash`), with
/// uppercase hex digits.
fn uri_encode(bytes: impl AsRef<[u8]>, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_as_for_non_s3_services() {
        for (raw, canonical) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/../c/", "/a/c/"),
            ("/example%20space/", "/example%2520space/"),
            ("/%E1%88%B4", "/%25E1%2588%25B4"),
            ("/a b", "/a%20b"),
            ("/a+b=c", "/a%2Bb%3Dc"),
            ("/~user/-_.", "/~user/-_."),
        ] {
            assert_eq!(canonical_uri(raw), canonical, "{raw:?}");
        }
    }

    #[test]
    fn queries_are_reencoded_and_sorted() {
        for (raw, canonical) in [
            ("", ""),
            ("&&", ""),
            ("b=2&a=1", "a=1&b=2"),
            ("a=2&a=1", "a=1&a=2"),
            ("Param2=v&Param1=v", "Param1=v&Param2=v"),
            ("a=Value1&a=value2", "a=Value1&a=value2"),
            ("flag", "flag="),
            ("k=v%20w", "k=v%20w"),
            ("k=v+w", "k=v%2Bw"),
            ("k=%7e%2f", "k=~%2F"),
            ("k=100%", "k=100%25"),
            ("k=%zz", "k=%25zz"),
            ("k=%+1", "k=%25%2B1"),
            ("%E1%88%B4=bar", "%E1%88%B4=bar"),
            ("k=a=b", "k=a%3Db"),
        ] {
            assert_eq!(canonical_query(raw), canonical, "{raw:?}");
        }
    }

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined() {
        let headers: &[(&str, &[u8])] = &[
            ("My-Header", b"  a   b\t c  "),
            ("other", b"x"),
            ("my-header", b"second"),
            ("MY-HEADER", b""),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body: b"",
        };
        assert_eq!(canonical_header_value(&req, "my-header"), b"a b c,second,");
        assert_eq!(canonical_header_value(&req, "absent"), b"");
    }
}
