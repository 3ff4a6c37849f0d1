//! botocore-generated SigV4 vectors (AWS test-suite requests plus Operon-shaped ones):
//! the canonical request, the signature, and the whole `Authorization` header must match.
//! Regenerate with `scripts/gen_vectors.py` (see its docstring).

use operon_sigv4::{
    Authorization, Request, SigningParams, canonical_request, parse, sign, string_to_sign, verify,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Suite {
    access_key_id: String,
    secret_access_key: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
    region: String,
    service: String,
    timestamp: i64,
    canonical_request: String,
    string_to_sign: String,
    signed_headers: String,
    signature: String,
    authorization: String,
}

fn suite() -> Suite {
    serde_json::from_str(include_str!("vectors.json")).expect("vectors.json parses")
}

fn with_request<T>(
    vector: &Vector,
    extra: Option<(&str, &str)>,
    run: impl FnOnce(&Request<'_>) -> T,
) -> T {
    let mut headers: Vec<(&str, &[u8])> = vector
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    if let Some((name, value)) = extra {
        headers.push((name, value.as_bytes()));
    }
    let req = Request {
        method: &vector.method,
        path: &vector.path,
        query: &vector.query,
        headers: &headers,
        body: vector.body.as_bytes(),
    };
    run(&req)
}

#[test]
fn the_suite_has_the_published_aws_signatures() {
    // Published in AWS's aws-sig-v4-test-suite; botocore agreeing with them anchors the rest.
    let suite = suite();
    let signature_of = |name: &str| {
        suite
            .vectors
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.signature.clone())
    };
    assert_eq!(
        signature_of("get-vanilla").as_deref(),
        Some("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    );
    assert_eq!(
        signature_of("get-vanilla-query-order-key-case").as_deref(),
        Some("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    );
    assert_eq!(
        signature_of("post-x-www-form-urlencoded").as_deref(),
        Some("ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
    );
    assert!(suite.vectors.len() >= 25);
}

#[test]
fn canonical_requests_and_strings_to_sign_match() {
    for vector in suite().vectors {
        with_request(&vector, None, |req| {
            let signed: Vec<String> = vector.signed_headers.split(';').map(String::from).collect();
            let canonical = canonical_request(req, &signed);
            assert_eq!(
                String::from_utf8_lossy(&canonical),
                vector.canonical_request,
                "{}",
                vector.name
            );
            let credential = operon_sigv4::Credential {
                access_key_id: "AKIDEXAMPLE".into(),
                date: "20150830".into(),
                region: vector.region.clone(),
                service: vector.service.clone(),
            };
            assert_eq!(
                string_to_sign(&canonical, &credential, vector.timestamp),
                vector.string_to_sign,
                "{}",
                vector.name
            );
        });
    }
}

#[test]
fn every_vector_parses_and_verifies() {
    let suite = suite();
    for vector in &suite.vectors {
        let authorization = ("Authorization", vector.authorization.as_str());
        with_request(vector, Some(authorization), |req| {
            let auth: Authorization = parse(req).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
            assert_eq!(auth.signature, vector.signature);
            assert_eq!(auth.signed_headers.join(";"), vector.signed_headers);
            assert_eq!(auth.timestamp, vector.timestamp);
            assert_eq!(auth.credential.access_key_id, suite.access_key_id);
            assert_eq!(auth.credential.region, vector.region);
            assert_eq!(auth.credential.service, vector.service);
            // The UNSIGNED-PAYLOAD vector's signature is right, but its body is unprotected.
            let expected = if vector.name == "operon-content-sha256-signed" {
                Err(operon_sigv4::SigError::ContentSha256Mismatch)
            } else {
                Ok(())
            };
            assert_eq!(
                verify(&auth, req, &suite.secret_access_key, vector.timestamp),
                expected,
                "{}",
                vector.name
            );
            let wrong = verify(
                &auth,
                req,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz",
                vector.timestamp,
            );
            assert_eq!(
                wrong,
                Err(operon_sigv4::SigError::SignatureMismatch),
                "{}",
                vector.name
            );
        });
    }
}

#[test]
fn sign_reproduces_every_vector() {
    let suite = suite();
    for vector in &suite.vectors {
        with_request(vector, None, |req| {
            let params = SigningParams {
                access_key_id: &suite.access_key_id,
                secret_access_key: &suite.secret_access_key,
                region: &vector.region,
                service: &vector.service,
                timestamp_unix: vector.timestamp,
                add_content_sha256: false,
            };
            let added = sign(req, &params);
            let authorization = added
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.as_str());
            // These two sign headers sign() replaces: a caller-provided
            // UNSIGNED-PAYLOAD, and a Date header instead of X-Amz-Date.
            if ["operon-content-sha256-signed", "operon-date-header"]
                .contains(&vector.name.as_str())
            {
                return;
            }
            assert_eq!(
                authorization,
                Some(vector.authorization.as_str()),
                "{}",
                vector.name
            );
            assert_eq!(
                added[0],
                ("x-amz-date".to_owned(), "20150830T123600Z".to_owned())
            );
        });
    }
}
