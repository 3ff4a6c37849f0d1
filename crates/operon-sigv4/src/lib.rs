//! Pure AWS Signature Version 4 (header-based) verification and signing.
//!
//! Operon's AWS-compatible endpoints (SSM Parameter Store over the AWS JSON 1.1 protocol)
//! accept requests the AWS CLI and SDKs sign with SigV4. This crate does the arithmetic and
//! nothing else: no clock, no I/O. The server hands it the request as received, looks up
//! the secret for the access key id in between, and passes the current time in.
//!
//! # The flow
//!
//! 1. [`parse`] reads the `Authorization` header
//!    (`AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/region/service/aws4_request,
//!    SignedHeaders=host;x-amz-date, Signature=<64 hex>`) and the request timestamp
//!    (`X-Amz-Date`, `YYYYMMDD'T'HHMMSS'Z'`, else `Date`, RFC 1123). It checks the header's
//!    shape: `host` and the timestamp's header must be signed, every signed header must be
//!    present, and the credential scope's date must be the timestamp's date.
//! 2. The server finds the secret for [`Credential::access_key_id`] (answering
//!    [`SigError::unknown_access_key`] if there is none) and checks region and service.
//! 3. [`verify`] refuses a timestamp more than five minutes from `now` either way, rebuilds
//!    the canonical request, derives the signing key
//!    (`"AWS4"+secret` → date → region → service → `aws4_request`, HMAC-SHA256 each step),
//!    and compares signatures in constant time.
//!
//! # The canonical request
//!
//! ```text
//! METHOD
//! canonical URI    raw path, `.`/`..`/empty segments removed, each byte outside
//!                  A-Za-z0-9-_.~ and `/` percent-encoded (so `%20` becomes `%2520`)
//! canonical query  params decoded then re-encoded (unreserved A-Za-z0-9-_.~), sorted by
//!                  name then value, `name=value` joined with `&`
//! name:value       one line per signed header: lowercase name, values trimmed with
//!                  whitespace runs collapsed, repeated headers joined with `,`
//! (empty line)
//! signed;headers
//! payload hash     the signed `x-amz-content-sha256` value, else hex SHA-256 of the body
//! ```
//!
//! This is what botocore and the other SDKs compute for non-S3 services; the test vectors
//! in `tests/vectors.json` were produced with botocore.
//!
//! # Example
//!
//! ```
//! use operon_sigv4::{parse, sign, verify, Request, SigningParams};
//!
//! let body = br#"{"Name":"/app/db/password"}"#;
//! let mut headers: Vec<(&str, &[u8])> = vec![
//!     ("Host", b"ssm.example.internal"),
//!     ("X-Amz-Target", b"AmazonSSM.GetParameter"),
//! ];
//! let unsigned = Request { method: "POST", path: "/", query: "", headers: &headers, body };
//! let params = SigningParams {
//!     access_key_id: "AKIDEXAMPLE",
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
//!     region: "us-east-1",
//!     service: "ssm",
//!     timestamp_unix: 1_440_938_160,
//!     add_content_sha256: false,
//! };
//! let added = sign(&unsigned, &params);
//! for (name, value) in &added {
//!     headers.push((name.as_str(), value.as_bytes()));
//! }
//!
//! let received = Request { method: "POST", path: "/", query: "", headers: &headers, body };
//! let auth = parse(&received).unwrap();
//! assert_eq!(auth.credential.access_key_id, "AKIDEXAMPLE");
//! assert_eq!(auth.credential.service, "ssm");
//! // The server looks the secret up by access key id, then:
//! let now = 1_440_938_160 + 60;
//! assert!(verify(&auth, &received, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", now).is_ok());
//! let wrong = verify(&auth, &received, "not-the-secret", now).unwrap_err();
//! assert_eq!(wrong.code(), "InvalidSignatureException");
//! ```

mod amz_date;
mod canonical;
mod error;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use amz_date::{format_amz_date, parse_amz_date};
pub use canonical::canonical_request;
pub use error::SigError;

/// The only algorithm this crate speaks.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far (seconds, either way) a request's timestamp may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;

/// The last component of every SigV4 credential scope.
const SCOPE_TERMINATOR: &str = "aws4_request";

/// Headers [`sign`] never signs: hop-by-hop headers and ones proxies rewrite (the list
/// botocore uses).
const UNSIGNABLE_HEADERS: &[&str] = &[
    "authorization",
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// What the verifier needs of an HTTP request, as received (raw, not decoded).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method, e.g. `POST`, as sent.
    pub method: &'a str,
    /// The raw path as on the wire, e.g. `/` or `/a%20b`.
    pub path: &'a str,
    /// The raw query string without `?`; may be empty.
    pub query: &'a str,
    /// The headers in the order received; names in any case, names may repeat.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body bytes.
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first value of the header `name` (any case).
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// The `Credential=` part of the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key id the request claims, e.g. `AKIDEXAMPLE`.
    pub access_key_id: String,
    /// The scope date, `YYYYMMDD` (equal to the date of the request timestamp).
    pub date: String,
    /// The scope region, e.g. `us-east-1`.
    pub region: String,
    /// The scope service, e.g. `ssm`.
    pub service: String,
}

/// A parsed, shape-checked `Authorization` header plus the request timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Who signed, and for which date, region and service.
    pub credential: Credential,
    /// The signed header names, lowercase, sorted, without duplicates.
    pub signed_headers: Vec<String>,
    /// The signature the client sent (lowercase hex is what clients send).
    pub signature: String,
    /// Unix seconds of `X-Amz-Date` (or `Date`).
    pub timestamp: i64,
}

/// Parses and shape-checks the SigV4 `Authorization` header of `req`.
///
/// Fails with [`SigError::MissingAuthenticationToken`] when there is no `Authorization`
/// header, [`SigError::IncompleteSignature`] when it or the timestamp is malformed, and
/// [`SigError::CredentialDateMismatch`] when the scope date is not the timestamp's date.
pub fn parse(req: &Request<'_>) -> Result<Authorization, SigError> {
    let raw = req
        .header("authorization")
        .ok_or(SigError::MissingAuthenticationToken)?;
    let header = std::str::from_utf8(raw).map_err(|_| {
        SigError::IncompleteSignature("Authorization header is not valid UTF-8.".to_owned())
    })?;
    let parts = AuthorizationParts::split(header)?;
    let credential = parse_credential(parts.credential)?;
    let signed_headers = parse_signed_headers(parts.signed_headers);
    let (timestamp, date_header) = request_timestamp(req, header)?;
    check_signed_headers(req, &signed_headers, date_header)?;
    let request_timestamp = format_amz_date(timestamp);
    let request_date = &request_timestamp[..8];
    if credential.date != request_date {
        return Err(SigError::CredentialDateMismatch {
            credential_date: credential.date,
            request_date: request_date.to_owned(),
            request_timestamp,
        });
    }
    Ok(Authorization {
        credential,
        signed_headers,
        signature: parts.signature.to_owned(),
        timestamp,
    })
}

/// Verifies `req` against `auth` (from [`parse`]) with the secret of its access key id.
///
/// Refuses a timestamp more than [`MAX_CLOCK_SKEW_SECS`] from `now_unix` either way
/// ([`SigError::SignatureExpired`], [`SigError::SignatureNotYetCurrent`]), then a signature
/// that does not match ([`SigError::SignatureMismatch`]), then a signed
/// `x-amz-content-sha256` that is not the body's hash ([`SigError::ContentSha256Mismatch`];
/// `UNSIGNED-PAYLOAD` is refused the same way). Region and service are not
/// checked here: the server compares [`Credential::region`] and [`Credential::service`]
/// with its own.
pub fn verify(
    auth: &Authorization,
    req: &Request<'_>,
    secret_access_key: &str,
    now_unix: i64,
) -> Result<(), SigError> {
    check_clock_skew(auth.timestamp, now_unix)?;
    let expected = compute_signature(
        req,
        &auth.signed_headers,
        &auth.credential,
        auth.timestamp,
        secret_access_key,
    );
    if !bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(SigError::SignatureMismatch);
    }
    check_declared_body_hash(auth, req)
}

/// A signed `x-amz-content-sha256` replaces the body in the canonical request, so the body
/// itself must be checked against it, or it could be swapped without breaking the signature.
fn check_declared_body_hash(auth: &Authorization, req: &Request<'_>) -> Result<(), SigError> {
    let signed = auth
        .signed_headers
        .iter()
        .any(|name| name == canonical::CONTENT_SHA256);
    let Some(declared) = req.header(canonical::CONTENT_SHA256).filter(|_| signed) else {
        return Ok(());
    };
    let actual = hex::encode(Sha256::digest(req.body));
    if declared
        .trim_ascii()
        .eq_ignore_ascii_case(actual.as_bytes())
    {
        Ok(())
    } else {
        Err(SigError::ContentSha256Mismatch)
    }
}

/// What [`sign`] needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The access key id to name in the credential scope.
    pub access_key_id: &'a str,
    /// Its secret.
    pub secret_access_key: &'a str,
    /// The scope region, e.g. `us-east-1`.
    pub region: &'a str,
    /// The scope service, e.g. `ssm`.
    pub service: &'a str,
    /// The signing time, unix seconds.
    pub timestamp_unix: i64,
    /// Also add (and sign) `x-amz-content-sha256` with the body's hash.
    pub add_content_sha256: bool,
}

/// Signs `req` and returns the headers to add to it: `x-amz-date`, then
/// `x-amz-content-sha256` if asked, then `authorization`.
///
/// Every header of `req` is signed except hop-by-hop ones and `user-agent` (see
/// botocore's list). Any `authorization`, `x-amz-date` or `x-amz-content-sha256` already in
/// `req` is ignored: the caller must send the returned ones instead. `req` should carry a
/// `host` header, which [`parse`] requires to be signed.
pub fn sign(req: &Request<'_>, params: &SigningParams<'_>) -> Vec<(String, String)> {
    let amz_date = format_amz_date(params.timestamp_unix);
    let mut added = vec![("x-amz-date".to_owned(), amz_date.clone())];
    if params.add_content_sha256 {
        added.push((
            canonical::CONTENT_SHA256.to_owned(),
            hex::encode(Sha256::digest(req.body)),
        ));
    }
    let replaced = |name: &str| {
        name.eq_ignore_ascii_case("x-amz-date")
            || name.eq_ignore_ascii_case(canonical::CONTENT_SHA256)
    };
    let headers: Vec<(&str, &[u8])> = req
        .headers
        .iter()
        .copied()
        .filter(|(name, _)| !replaced(name))
        .chain(
            added
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )
        .collect();
    let mut signed_headers: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| !UNSIGNABLE_HEADERS.contains(&name.as_str()))
        .collect();
    signed_headers.sort();
    signed_headers.dedup();
    let credential = Credential {
        access_key_id: params.access_key_id.to_owned(),
        date: amz_date[..8].to_owned(),
        region: params.region.to_owned(),
        service: params.service.to_owned(),
    };
    let to_sign = Request {
        headers: &headers,
        ..*req
    };
    let signature = compute_signature(
        &to_sign,
        &signed_headers,
        &credential,
        params.timestamp_unix,
        params.secret_access_key,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
        credential.access_key_id,
        credential_scope(&credential),
        signed_headers.join(";"),
    );
    added.push(("authorization".to_owned(), authorization));
    added
}

/// The `Credential=`, `SignedHeaders=` and `Signature=` values of the header.
struct AuthorizationParts<'h> {
    credential: &'h str,
    signed_headers: &'h str,
    signature: &'h str,
}

impl<'h> AuthorizationParts<'h> {
    /// Splits `AWS4-HMAC-SHA256 Key=value, Key=value, ...`, tolerating missing or extra
    /// whitespace around the commas as AWS does. Reports every missing part at once, in
    /// AWS's words.
    fn split(header: &'h str) -> Result<AuthorizationParts<'h>, SigError> {
        let header_trimmed = header.trim();
        let (algorithm, rest) = header_trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((header_trimmed, ""));
        if algorithm != ALGORITHM {
            return Err(SigError::IncompleteSignature(format!(
                "Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is supported."
            )));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let Some((key, value)) = component.split_once('=') else {
                return Err(SigError::IncompleteSignature(format!(
                    "'{component}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
                )));
            };
            let slot = match key.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                // Unknown components are ignored, as AWS does.
                _ => continue,
            };
            *slot = Some(value.trim());
        }
        let mut missing = String::new();
        for (name, part) in [
            ("Credential", credential),
            ("Signature", signature),
            ("SignedHeaders", signed_headers),
        ] {
            if part.is_none_or(str::is_empty) {
                missing.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        match (credential, signed_headers, signature) {
            (Some(credential), Some(signed_headers), Some(signature)) if missing.is_empty() => {
                Ok(AuthorizationParts {
                    credential,
                    signed_headers,
                    signature,
                })
            }
            _ => Err(SigError::IncompleteSignature(format!(
                "{missing}Authorization={header}"
            ))),
        }
    }
}

/// Parses `AKID/YYYYMMDD/region/service/aws4_request`.
fn parse_credential(text: &str) -> Result<Credential, SigError> {
    let parts: Vec<&str> = text.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(SigError::IncompleteSignature(format!(
            "Credential should be of the form 'AccessKeyId/YYYYMMDD/region/service/{SCOPE_TERMINATOR}', got '{text}'."
        )));
    };
    if terminator != SCOPE_TERMINATOR {
        return Err(SigError::IncompleteSignature(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{terminator}'."
        )));
    }
    let empty = [access_key_id, region, service]
        .iter()
        .any(|part| part.is_empty());
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    if empty || !date_ok {
        return Err(SigError::IncompleteSignature(format!(
            "Credential should be of the form 'AccessKeyId/YYYYMMDD/region/service/{SCOPE_TERMINATOR}', got '{text}'."
        )));
    }
    Ok(Credential {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

/// `host;X-Amz-Date` → `["host", "x-amz-date"]`: lowercase, sorted, deduplicated, as the
/// canonical request lists them.
fn parse_signed_headers(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(';')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The request timestamp and the header it came from: `X-Amz-Date`, else `Date`.
fn request_timestamp(req: &Request<'_>, header: &str) -> Result<(i64, &'static str), SigError> {
    let (name, raw) = match req.header("x-amz-date") {
        Some(raw) => ("x-amz-date", raw),
        None => match req.header("date") {
            Some(raw) => ("date", raw),
            None => {
                return Err(SigError::IncompleteSignature(format!(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={header}"
                )));
            }
        },
    };
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    let parsed = if name == "x-amz-date" {
        parse_amz_date(text)
    } else {
        amz_date::parse_http_date(text)
    };
    parsed.map(|unix| (unix, name)).ok_or_else(|| {
        SigError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{text}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })
}

/// `host` and the timestamp's header must be signed (otherwise the request could be
/// replayed to another host or re-dated), and every signed header must be present.
fn check_signed_headers(
    req: &Request<'_>,
    signed_headers: &[String],
    date_header: &str,
) -> Result<(), SigError> {
    for required in ["host", date_header] {
        if !signed_headers.iter().any(|name| name == required) {
            return Err(SigError::IncompleteSignature(format!(
                "'{required}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    match signed_headers
        .iter()
        .find(|name| req.header(name).is_none())
    {
        Some(absent) => Err(SigError::IncompleteSignature(format!(
            "Signed header '{absent}' is not present in the request."
        ))),
        None => Ok(()),
    }
}

fn check_clock_skew(signed_at: i64, now: i64) -> Result<(), SigError> {
    // i128: no overflow whatever the two values are.
    let ahead = i128::from(signed_at) - i128::from(now);
    let max = i128::from(MAX_CLOCK_SKEW_SECS);
    if ahead < -max {
        Err(SigError::SignatureExpired { signed_at, now })
    } else if ahead > max {
        Err(SigError::SignatureNotYetCurrent { signed_at, now })
    } else {
        Ok(())
    }
}

fn credential_scope(credential: &Credential) -> String {
    format!(
        "{}/{}/{}/{SCOPE_TERMINATOR}",
        credential.date, credential.region, credential.service
    )
}

/// The string to sign: algorithm, timestamp, scope, hex SHA-256 of the canonical request.
pub fn string_to_sign(canonical_request: &[u8], credential: &Credential, timestamp: i64) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        format_amz_date(timestamp),
        credential_scope(credential),
        hex::encode(Sha256::digest(canonical_request))
    )
}

/// The lowercase hex signature of `req` over `signed_headers`.
fn compute_signature(
    req: &Request<'_>,
    signed_headers: &[String],
    credential: &Credential,
    timestamp: i64,
    secret_access_key: &str,
) -> String {
    let canonical = canonical_request(req, signed_headers);
    let to_sign = string_to_sign(&canonical, credential, timestamp);
    let key = signing_key(secret_access_key, credential);
    hex::encode(hmac_sha256(&key, to_sign.as_bytes()))
}

/// `"AWS4"+secret` → date → region → service → `aws4_request`.
fn signing_key(secret_access_key: &str, credential: &Credential) -> [u8; 32] {
    let secret = format!("AWS4{secret_access_key}");
    let date_key = hmac_sha256(secret.as_bytes(), credential.date.as_bytes());
    let region_key = hmac_sha256(&date_key, credential.region.as_bytes());
    let service_key = hmac_sha256(&region_key, credential.service.as_bytes());
    hmac_sha256(&service_key, SCOPE_TERMINATOR.as_bytes())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of every length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}
