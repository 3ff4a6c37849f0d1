//! Every way a request can be refused, with the AWS code, status and message it gives.

use operon_sigv4::{Request, SigError, SigningParams, parse, sign, verify};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SIGNED_AT: i64 = 1_440_938_160; // 20150830T123600Z
const BODY: &[u8] = br#"{"Name":"/app/x"}"#;

/// A correctly signed SSM call: its `Authorization` value and all its headers.
fn signed_headers() -> Vec<(String, String)> {
    let base: Vec<(&str, &[u8])> = vec![
        ("Host", b"ssm.example.internal"),
        ("X-Amz-Target", b"AmazonSSM.GetParameter"),
        ("User-Agent", b"aws-cli/2"),
    ];
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &base,
        body: BODY,
    };
    let params = SigningParams {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: SECRET,
        region: "us-east-1",
        service: "ssm",
        timestamp_unix: SIGNED_AT,
        add_content_sha256: false,
    };
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    headers.extend(sign(&req, &params));
    headers
}

fn authorization_of(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone())
        .expect("signed")
}

/// Runs `check` on the signed request after `edit` changed its headers.
fn with_headers<T>(
    edit: impl FnOnce(&mut Vec<(String, String)>),
    check: impl FnOnce(&Request<'_>) -> T,
) -> T {
    let mut headers = signed_headers();
    edit(&mut headers);
    let raw: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    check(&Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &raw,
        body: BODY,
    })
}

fn set_authorization(headers: &mut Vec<(String, String)>, value: Option<String>) {
    headers.retain(|(n, _)| n != "authorization");
    if let Some(value) = value {
        headers.push(("Authorization".into(), value));
    }
}

fn parse_with_authorization(value: Option<String>) -> Result<(), SigError> {
    with_headers(
        |h| set_authorization(h, value),
        |req| parse(req).map(|_| ()),
    )
}

#[test]
fn the_signed_request_itself_is_accepted() {
    with_headers(
        |_| {},
        |req| {
            let auth = parse(req).expect("parses");
            assert_eq!(verify(&auth, req, SECRET, SIGNED_AT), Ok(()));
        },
    );
}

#[test]
fn malformed_authorization_headers_give_the_right_code() {
    let good = authorization_of(&signed_headers());
    let (credential, rest) = good.split_once(", ").expect("has parts");
    let (signed, signature) = rest.split_once(", ").expect("has parts");
    let credential = credential.trim_start_matches("AWS4-HMAC-SHA256 ");
    let scope = "20150830/us-east-1/ssm/aws4_request";
    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        (
            "no header",
            None,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        (
            "empty",
            Some(String::new()),
            "IncompleteSignatureException",
            "Unsupported AWS 'algorithm'",
        ),
        (
            "wrong algorithm",
            Some(good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")),
            "IncompleteSignatureException",
            "'AWS4-HMAC-SHA1'",
        ),
        (
            "algorithm only",
            Some("AWS4-HMAC-SHA256".into()),
            "IncompleteSignatureException",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
        ),
        (
            "no credential",
            Some(format!("AWS4-HMAC-SHA256 {signed}, {signature}")),
            "IncompleteSignatureException",
            "requires 'Credential' parameter",
        ),
        (
            "no signature",
            Some(format!("AWS4-HMAC-SHA256 {credential}, {signed}")),
            "IncompleteSignatureException",
            "requires 'Signature' parameter",
        ),
        (
            "no signed headers",
            Some(format!("AWS4-HMAC-SHA256 {credential}, {signature}")),
            "IncompleteSignatureException",
            "requires 'SignedHeaders' parameter",
        ),
        (
            "empty signature",
            Some(format!(
                "AWS4-HMAC-SHA256 {credential}, {signed}, Signature="
            )),
            "IncompleteSignatureException",
            "requires 'Signature' parameter",
        ),
        (
            "part without =",
            Some(format!(
                "AWS4-HMAC-SHA256 {credential}, {signed}, Signature"
            )),
            "IncompleteSignatureException",
            "missing equal-sign",
        ),
        (
            "credential too short",
            Some(good.replace(
                &format!("AKIDEXAMPLE/{scope}"),
                "AKIDEXAMPLE/20150830/us-east-1/ssm",
            )),
            "IncompleteSignatureException",
            "Credential should be of the form",
        ),
        (
            "credential too long",
            Some(good.replace("AKIDEXAMPLE/", "AKID/EXAMPLE/")),
            "IncompleteSignatureException",
            "Credential should be of the form",
        ),
        (
            "bad terminator",
            Some(good.replace("aws4_request", "aws5_request")),
            "IncompleteSignatureException",
            "valid terminator: 'aws4_request', not 'aws5_request'",
        ),
        (
            "bad scope date",
            Some(good.replace("/20150830/", "/2015-08-30/")),
            "IncompleteSignatureException",
            "Credential should be of the form",
        ),
        (
            "empty access key",
            Some(good.replace("AKIDEXAMPLE/", "/")),
            "IncompleteSignatureException",
            "Credential should be of the form",
        ),
        (
            "other scope date",
            Some(good.replace("/20150830/", "/20150831/")),
            "InvalidSignatureException",
            "'20150831' != '20150830', from '20150830T123600Z'",
        ),
        (
            "host not signed",
            Some(good.replace("SignedHeaders=host;", "SignedHeaders=")),
            "IncompleteSignatureException",
            "'host' must be a 'SignedHeader'",
        ),
        (
            "date not signed",
            Some(good.replace(";x-amz-date", "")),
            "IncompleteSignatureException",
            "'x-amz-date' must be a 'SignedHeader'",
        ),
        (
            "signed header absent",
            Some(good.replace("host;", "host;x-absent;")),
            "IncompleteSignatureException",
            "Signed header 'x-absent' is not present",
        ),
    ];
    for (name, header, code, message) in cases {
        let err = parse_with_authorization(header).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(err.message().contains(message), "{name}: {}", err.message());
        assert_eq!(err.status(), 400, "{name}");
    }
}

#[test]
fn whitespace_variations_are_tolerated() {
    let good = authorization_of(&signed_headers());
    for variant in [
        good.replace(", ", ","),
        good.replace(", ", " ,  "),
        good.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256   "),
        format!("  {good}  "),
        good.replace("SignedHeaders=host;", "SignedHeaders=Host;"),
        format!("{good}, Extra=ignored"),
    ] {
        with_headers(
            |h| set_authorization(h, Some(variant.clone())),
            |req| {
                let auth = parse(req).unwrap_or_else(|e| panic!("{variant}: {e}"));
                assert_eq!(verify(&auth, req, SECRET, SIGNED_AT), Ok(()), "{variant}");
            },
        );
    }
}

#[test]
fn timestamp_headers_must_be_present_and_well_formed() {
    let missing = with_headers(|h| h.retain(|(n, _)| n != "x-amz-date"), parse);
    let err = missing.expect_err("no date");
    assert_eq!(err.code(), "IncompleteSignatureException");
    assert!(
        err.message()
            .contains("either a 'X-Amz-Date' or a 'Date' header")
    );

    let bad = with_headers(
        |h| {
            for (n, v) in h.iter_mut() {
                if n == "x-amz-date" {
                    *v = "2015-08-30T12:36:00Z".into();
                }
            }
        },
        parse,
    );
    let err = bad.expect_err("bad date");
    assert_eq!(err.code(), "IncompleteSignatureException");
    assert!(err.message().contains("Got '2015-08-30T12:36:00Z'"));
}

#[test]
fn clock_skew_boundaries() {
    with_headers(
        |_| {},
        |req| {
            let auth = parse(req).expect("parses");
            for now in [SIGNED_AT - 300, SIGNED_AT, SIGNED_AT + 300] {
                assert_eq!(verify(&auth, req, SECRET, now), Ok(()), "now = {now}");
            }
            let late = verify(&auth, req, SECRET, SIGNED_AT + 301).expect_err("expired");
            assert_eq!(
                late,
                SigError::SignatureExpired {
                    signed_at: SIGNED_AT,
                    now: SIGNED_AT + 301
                }
            );
            let early = verify(&auth, req, SECRET, SIGNED_AT - 301).expect_err("future");
            assert!(matches!(early, SigError::SignatureNotYetCurrent { .. }));
            for err in [&late, &early] {
                assert_eq!(err.code(), "InvalidSignatureException");
                assert_eq!(err.status(), 400);
            }
            // Extreme clocks must not overflow.
            assert!(verify(&auth, req, SECRET, i64::MAX).is_err());
            assert!(verify(&auth, req, SECRET, i64::MIN).is_err());
        },
    );
}

#[test]
fn skew_messages_read_like_aws() {
    let expired = SigError::SignatureExpired {
        signed_at: SIGNED_AT,
        now: SIGNED_AT + 600,
    };
    assert_eq!(
        expired.message(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T124600Z - 5 min.)"
    );
    let future = SigError::SignatureNotYetCurrent {
        signed_at: SIGNED_AT,
        now: SIGNED_AT - 600,
    };
    assert_eq!(
        future.message(),
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123100Z (20150830T122600Z + 5 min.)"
    );
}

#[test]
fn mismatch_and_unknown_key_messages_hide_secrets() {
    with_headers(
        |_| {},
        |req| {
            let auth = parse(req).expect("parses");
            let err = verify(&auth, req, "another-secret", SIGNED_AT).expect_err("mismatch");
            assert_eq!(err.code(), "InvalidSignatureException");
            assert_eq!(
                err.message(),
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
            );
            assert!(!err.message().contains(SECRET));
            assert!(!err.message().contains("another-secret"));
            assert!(!format!("{err:?}").contains(&auth.signature));
        },
    );
    let unknown = SigError::unknown_access_key();
    assert_eq!(unknown.code(), "UnrecognizedClientException");
    assert_eq!(
        unknown.message(),
        "The security token included in the request is invalid."
    );
    assert_eq!(unknown.status(), 400);
}

#[test]
fn non_utf8_authorization_is_incomplete() {
    let headers: Vec<(&str, &[u8])> = vec![("Authorization", b"AWS4-HMAC-SHA256 \xff\xfe")];
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        parse(&req).expect_err("bad").code(),
        "IncompleteSignatureException"
    );
}
