#!/usr/bin/env python3
"""Regenerate tests/vectors.json with botocore's SigV4 signer (the reference).

    python3 -m venv /work/venv-sigv4 && /work/venv-sigv4/bin/pip install botocore
    /work/venv-sigv4/bin/python scripts/gen_vectors.py > tests/vectors.json

The requests are the AWS SigV4 test-suite cases (aws-sig-v4-test-suite), written as they
travel on the wire (percent-encoded path and query), plus a few Operon-shaped ones (an SSM
JSON 1.1 call, a signed x-amz-content-sha256). botocore's pieces (canonical_request,
string_to_sign, signature) are called directly so the timestamp is fixed.

get-vanilla, get-vanilla-query-order-key-case and post-x-www-form-urlencoded give the
signatures AWS published in its suite. get-utf8 and get-space differ from the suite's
files on purpose: the suite writes those paths unencoded, while on the wire they arrive
percent-encoded and non-S3 services encode them once more (`%20` -> `%2520`), as here.
"""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
STAMP = "20150830T123600Z"
UNIX = 1440938160  # 2015-08-30T12:36:00Z
HOST = ("Host", "example.amazonaws.com")
DATE = ("X-Amz-Date", STAMP)

CASES = [
    ("get-vanilla", "GET", "/", "", [HOST, DATE], ""),
    ("get-vanilla-empty-query-key", "GET", "/", "Param1=value1", [HOST, DATE], ""),
    ("get-vanilla-query", "GET", "/", "", [HOST, DATE], ""),
    ("get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1", [HOST, DATE], ""),
    ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", [HOST, DATE], ""),
    ("get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1", [HOST, DATE], ""),
    ("get-vanilla-query-unreserved", "GET", "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     [HOST, DATE], ""),
    ("get-vanilla-utf8-query", "GET", "/", "%E1%88%B4=bar", [HOST, DATE], ""),
    ("get-utf8", "GET", "/%E1%88%B4", "", [HOST, DATE], ""),
    ("get-space", "GET", "/example%20space/", "", [HOST, DATE], ""),
    ("get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", [HOST, DATE], ""),
    ("normalize-path/get-relative", "GET", "/example/..", "", [HOST, DATE], ""),
    ("normalize-path/get-relative-relative", "GET", "/example1/example2/../..", "", [HOST, DATE], ""),
    ("normalize-path/get-slash", "GET", "//", "", [HOST, DATE], ""),
    ("normalize-path/get-slash-dot-slash", "GET", "/./", "", [HOST, DATE], ""),
    ("normalize-path/get-slash-pointless-dot", "GET", "/./example", "", [HOST, DATE], ""),
    ("normalize-path/get-slashes", "GET", "//example//", "", [HOST, DATE], ""),
    ("get-header-key-duplicate", "GET", "/", "",
     [HOST, ("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1"), DATE], ""),
    ("get-header-value-order", "GET", "/", "",
     [HOST, ("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2"), DATE], ""),
    ("get-header-value-trim", "GET", "/", "",
     [HOST, ("My-Header1", " value1"), ("My-Header2", ' "a   b   c"'), DATE], ""),
    ("post-vanilla", "POST", "/", "", [HOST, DATE], ""),
    ("post-vanilla-query", "POST", "/", "Param1=value1", [HOST, DATE], ""),
    ("post-header-key-case", "POST", "/", "", [HOST, DATE], ""),
    ("post-header-key-sort", "POST", "/", "", [HOST, ("My-Header1", "value1"), DATE], ""),
    ("post-header-value-case", "POST", "/", "", [HOST, ("My-Header1", "VALUE1"), DATE], ""),
    ("post-x-www-form-urlencoded", "POST", "/", "",
     [("Content-Type", "application/x-www-form-urlencoded"), HOST, DATE], "Param1=value1"),
    ("post-x-www-form-urlencoded-parameters", "POST", "/", "",
     [("Content-Type", "application/x-www-form-urlencoded; charset=utf8"), HOST, DATE], "Param1=value1"),
    ("operon-ssm-get-parameter", "POST", "/", "",
     [HOST, ("X-Amz-Target", "AmazonSSM.GetParameter"),
      ("Content-Type", "application/x-amz-json-1.1"), DATE],
     '{"Name": "/app/db/password", "WithDecryption": true}'),
    ("operon-date-header", "GET", "/", "",
     [HOST, ("Date", "Sun, 30 Aug 2015 12:36:00 GMT")], ""),
    ("operon-content-sha256-signed", "PUT", "/a/b%2Fc", "k=v%20w&empty=",
     [HOST, DATE, ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")], "ignored body"),
]


def main():
    creds = Credentials(AKID, SECRET)
    out = []
    for name, method, path, query, headers, body in CASES:
        service, region = "service", "us-east-1"
        if name.startswith("operon-ssm"):
            service = "ssm"
        url = "http://example.amazonaws.com" + path + ("?" + query if query else "")
        req = AWSRequest(method=method, url=url, data=body.encode())
        for k, v in headers:
            req.headers[k] = v  # HTTPHeaders appends, so repeated names are kept
        req.context["timestamp"] = STAMP
        signer = SigV4Auth(creds, service, region)
        cr = signer.canonical_request(req)
        sts = signer.string_to_sign(req, cr)
        sig = signer.signature(sts, req)
        signed = signer.signed_headers(signer.headers_to_sign(req))
        auth = (f"AWS4-HMAC-SHA256 Credential={AKID}/{STAMP[:8]}/{region}/{service}/aws4_request, "
                f"SignedHeaders={signed}, Signature={sig}")
        out.append({
            "name": name, "method": method, "path": path, "query": query,
            "headers": [[k, v] for k, v in headers], "body": body,
            "region": region, "service": service, "timestamp": UNIX,
            "canonical_request": cr, "string_to_sign": sts,
            "signed_headers": signed, "signature": sig, "authorization": auth,
        })
    json.dump({"access_key_id": AKID, "secret_access_key": SECRET,
               "generated_by": "scripts/gen_vectors.py with botocore", "vectors": out},
              sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
