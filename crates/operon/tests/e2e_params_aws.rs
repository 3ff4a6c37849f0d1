//! Parameter Store through the real AWS clients: the AWS CLI (v1) and boto3
//! from the pinned virtual environment `scripts/aws-venv.sh` makes, against
//! the real server binary on loopback, signing with access keys Operon
//! issued.
//!
//! The clients decide what the wire looks like (SigV4 canonicalisation,
//! JSON 1.1 shapes, pagination tokens, error parsing), so this is where the
//! edge is checked against what the AWS tools actually send and expect.
//!
//! The virtual environment is found at `$OPERON_AWS_VENV`, else at
//! `target/aws-venv` in the workspace; without it the test fails (it never
//! passes by skipping).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::*;

/// The SecureString values: none of them may reach the log or the trail.
const CLI_SECRET: &str = "cli-secret-Vx7qPz93LmT";
const BOTO_SECRET: &str = "boto-secret-Rk4wNc81HsY";
const BULK_COUNT: usize = 25;

/// The virtual environment with `aws` and boto3, or a failure saying how to
/// make one.
fn venv() -> PathBuf {
    let path = match std::env::var_os("OPERON_AWS_VENV") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv"),
    };
    assert!(
        path.join("bin/aws").is_file() && path.join("bin/python").is_file(),
        "no AWS CLI / boto3 virtual environment at {}: run scripts/aws-venv.sh \
         (and export OPERON_AWS_VENV=<the path it prints> if it is not target/aws-venv)",
        path.display()
    );
    path
}

/// An access key pair, or none at all.
#[derive(Clone)]
struct Creds {
    key_id: String,
    secret: String,
}

/// What one AWS CLI run gave: its parsed stdout on success, else the error
/// code it printed ("An error occurred (CODE) when calling ...").
#[derive(Debug)]
enum CliOutcome {
    Ok(Value),
    Err { code: String, stderr: String },
}

impl CliOutcome {
    fn ok(self, what: &str) -> Value {
        match self {
            CliOutcome::Ok(value) => value,
            CliOutcome::Err { stderr, .. } => panic!("aws {what} failed: {stderr}"),
        }
    }

    fn code(self, what: &str) -> String {
        match self {
            CliOutcome::Ok(value) => panic!("aws {what} should have been refused: {value}"),
            CliOutcome::Err { code, .. } => code,
        }
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    home: PathBuf,
    venv: PathBuf,
    server: ServerProcess,
    log_path: PathBuf,
}

impl Harness {
    fn start() -> Harness {
        let venv = venv();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let server = ServerProcess::start_with(
            &dir.path().join("server"),
            free_port(),
            "debug",
            Stdio::from(log),
        );
        Harness {
            _dir: dir,
            home,
            venv,
            server,
            log_path,
        }
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = http(
            self.server.port,
            method,
            path,
            Some(&self.server.token),
            Some(&body),
        );
        assert_eq!(status, 200, "{method} {path} as admin: {answer}");
        answer
    }

    /// A user whose one role holds one policy of `statements`, and an access
    /// key of theirs.
    fn user_with_key(&self, name: &str, statements: Value) -> Creds {
        self.admin(
            "POST",
            "/v1/policies",
            json!({"name": name, "document": {"Version": "2012-10-17", "Statement": statements}}),
        );
        self.admin(
            "POST",
            "/v1/roles",
            json!({"name": name, "policies": [name]}),
        );
        self.admin("POST", "/v1/users", json!({"name": name, "roles": [name]}));
        self.access_key(name)
    }

    fn access_key(&self, user: &str) -> Creds {
        let key = self.admin("POST", "/v1/access-keys", json!({"user": user}));
        Creds {
            key_id: key["access_key_id"].as_str().unwrap().to_string(),
            secret: key["secret_access_key"].as_str().unwrap().to_string(),
        }
    }

    /// The environment of an AWS client: nothing from this machine's AWS
    /// configuration, one attempt per call (so one refusal is one record).
    fn client_env(&self, cmd: &mut Command, creds: Option<&Creds>) {
        let nowhere = self.home.join("no-such-aws-file");
        cmd.env_clear()
            .env("PATH", format!("{}/bin:/usr/bin:/bin", self.venv.display()))
            .env("HOME", &self.home)
            .env("AWS_CONFIG_FILE", &nowhere)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("OPERON_ENDPOINT", &self.server.url);
        if let Some(creds) = creds {
            cmd.env("AWS_ACCESS_KEY_ID", &creds.key_id)
                .env("AWS_SECRET_ACCESS_KEY", &creds.secret);
        }
    }

    /// `aws ssm ARGS` against the server.
    fn aws(&self, creds: Option<&Creds>, args: &[&str]) -> CliOutcome {
        let mut cmd = Command::new(self.venv.join("bin/aws"));
        self.client_env(&mut cmd, creds);
        cmd.args([
            "--endpoint-url",
            &self.server.url,
            "--region",
            "us-east-1",
            "--output",
            "json",
            "ssm",
        ])
        .args(args);
        let out = cmd.output().expect("run the AWS CLI");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() {
            // Operations without an answer print nothing.
            let value = if stdout.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("aws {args:?} printed invalid JSON ({e}): {stdout}"))
            };
            return CliOutcome::Ok(value);
        }
        let code = stderr
            .split_once("An error occurred (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(code, _)| code.to_string())
            .unwrap_or_else(|| panic!("aws {args:?} failed without an AWS error: {stderr}"));
        CliOutcome::Err { code, stderr }
    }

    /// Run `script` with the venv's Python (boto3), `creds` in the
    /// environment; it prints one JSON document.
    fn boto3(&self, creds: Option<&Creds>, extra_env: &[(&str, &str)], script: &str) -> Value {
        let mut cmd = Command::new(self.venv.join("bin/python"));
        self.client_env(&mut cmd, creds);
        cmd.envs(extra_env.iter().copied())
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = cmd.output().expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the boto3 script failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("the boto3 script printed invalid JSON ({e}): {stdout}"))
    }

    fn audit(&self) -> Vec<Value> {
        let trail = self.admin("GET", "/v1/audit?limit=10000", json!({}));
        trail.as_array().unwrap().clone()
    }

    fn last_seq(&self) -> i64 {
        self.audit()
            .iter()
            .filter_map(|r| r["seq"].as_i64())
            .max()
            .unwrap_or(0)
    }

    /// The audit records after `seq` whose outcome is `outcome`.
    fn audited_since(&self, seq: i64, outcome: &str) -> Vec<Value> {
        self.audit()
            .into_iter()
            .filter(|r| r["seq"].as_i64().unwrap_or(0) > seq && r["outcome"] == outcome)
            .collect()
    }
}

/// Every parameter action on `param/app/*`.
fn app_statements() -> Value {
    json!([{"Effect": "Allow", "Action": "params:*", "Resource": "param/app/*"}])
}

/// Reading and listing only: no writes, no SecureString values.
fn reader_statements() -> Value {
    json!([{"Effect": "Allow", "Action": ["params:Get", "params:List"], "Resource": "param/app/*"}])
}

fn names_of(parameters: &Value) -> BTreeSet<String> {
    parameters
        .as_array()
        .unwrap_or_else(|| panic!("not a list of parameters: {parameters}"))
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_aws_cli_and_boto3_drive_parameter_store() {
    let harness = Harness::start();
    let app = harness.user_with_key("app", app_statements());
    let reader = harness.user_with_key("reader", reader_statements());

    cli_round_trip(&harness, &app);
    boto3_round_trip(&harness, &app);
    refusals(&harness, &app, &reader);
    no_secret_in_log_or_trail(harness);
}

fn cli_round_trip(h: &Harness, app: &Creds) {
    let app = Some(app);
    let put = h
        .aws(
            app,
            &[
                "put-parameter",
                "--name",
                "/app/prod/db_url",
                "--value",
                "postgres://db-1/app",
                "--type",
                "String",
            ],
        )
        .ok("put-parameter String");
    assert_eq!(put["Version"], 1, "{put}");
    assert_eq!(put["Tier"], "Standard", "{put}");

    let put = h
        .aws(
            app,
            &[
                "put-parameter",
                "--name",
                "/app/prod/db_password",
                "--value",
                CLI_SECRET,
                "--type",
                "SecureString",
            ],
        )
        .ok("put-parameter SecureString");
    assert_eq!(put["Version"], 1, "{put}");

    let got = h
        .aws(
            app,
            &[
                "get-parameter",
                "--name",
                "/app/prod/db_password",
                "--with-decryption",
            ],
        )
        .ok("get-parameter --with-decryption");
    let parameter = &got["Parameter"];
    assert_eq!(parameter["Value"], CLI_SECRET, "{got}");
    assert_eq!(parameter["Type"], "SecureString", "{got}");
    assert_eq!(parameter["Name"], "/app/prod/db_password", "{got}");
    assert_eq!(parameter["Version"], 1, "{got}");
    let arn = parameter["ARN"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:ssm:")
            && arn.ends_with(":000000000000:parameter/app/prod/db_password"),
        "{got}"
    );
    assert!(parameter["LastModifiedDate"].is_number(), "{got}");

    let sealed = h
        .aws(app, &["get-parameter", "--name", "/app/prod/db_password"])
        .ok("get-parameter without decryption");
    let sealed_value = sealed["Parameter"]["Value"].as_str().unwrap();
    assert!(!sealed_value.is_empty());
    assert!(!sealed_value.contains(CLI_SECRET), "{sealed}");

    // More parameters than a page holds.
    for i in 0..BULK_COUNT {
        let name = format!("/app/prod/bulk/p{i:02}");
        let value = format!("value-{i}");
        let put = h
            .aws(
                app,
                &[
                    "put-parameter",
                    "--name",
                    &name,
                    "--value",
                    &value,
                    "--type",
                    "String",
                ],
            )
            .ok("put-parameter (bulk)");
        assert_eq!(put["Version"], 1, "{put}");
    }
    let mut expected: BTreeSet<String> = (0..BULK_COUNT)
        .map(|i| format!("/app/prod/bulk/p{i:02}"))
        .collect();
    expected.insert("/app/prod/db_url".into());
    expected.insert("/app/prod/db_password".into());

    // The server pages: one raw call gives 10 and a NextToken.
    let first = h
        .aws(
            app,
            &[
                "get-parameters-by-path",
                "--path",
                "/app/prod/",
                "--recursive",
                "--no-paginate",
                "--max-results",
                "10",
            ],
        )
        .ok("get-parameters-by-path --no-paginate");
    assert_eq!(first["Parameters"].as_array().unwrap().len(), 10, "{first}");
    assert!(first["NextToken"].is_string(), "{first}");

    // The CLI follows NextToken by itself through every page.
    let all = h
        .aws(
            app,
            &[
                "get-parameters-by-path",
                "--path",
                "/app/prod/",
                "--recursive",
                "--with-decryption",
                "--page-size",
                "10",
            ],
        )
        .ok("get-parameters-by-path --page-size 10");
    let listed = all["Parameters"].as_array().unwrap();
    assert_eq!(listed.len(), expected.len(), "no duplicates: {all}");
    assert_eq!(names_of(&all["Parameters"]), expected);
    let password = listed
        .iter()
        .find(|p| p["Name"] == "/app/prod/db_password")
        .unwrap();
    assert_eq!(password["Value"], CLI_SECRET);
    let p07 = listed
        .iter()
        .find(|p| p["Name"] == "/app/prod/bulk/p07")
        .unwrap();
    assert_eq!(p07["Value"], "value-7");

    // And by hand, --max-items / --starting-token, as a script would.
    let mut collected = Vec::new();
    let mut token: Option<String> = None;
    let mut rounds = 0;
    loop {
        let mut args = vec![
            "get-parameters-by-path",
            "--path",
            "/app/prod/",
            "--recursive",
            "--page-size",
            "10",
            "--max-items",
            "10",
        ];
        if let Some(token) = &token {
            args.extend(["--starting-token", token.as_str()]);
        }
        let page = h.aws(app, &args).ok("get-parameters-by-path --max-items");
        rounds += 1;
        collected.extend(names_of(&page["Parameters"]));
        match page["NextToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
        assert!(rounds < 10, "pagination does not end");
    }
    assert_eq!(rounds, 3, "27 parameters, 10 a page");
    assert_eq!(collected.len(), expected.len());
    assert_eq!(collected.into_iter().collect::<BTreeSet<_>>(), expected);

    // A second version, its history, a label on the first.
    let put = h
        .aws(
            app,
            &[
                "put-parameter",
                "--name",
                "/app/prod/db_url",
                "--value",
                "postgres://db-2/app",
                "--type",
                "String",
                "--overwrite",
            ],
        )
        .ok("put-parameter --overwrite");
    assert_eq!(put["Version"], 2, "{put}");
    let history = h
        .aws(
            app,
            &["get-parameter-history", "--name", "/app/prod/db_url"],
        )
        .ok("get-parameter-history");
    let versions: Vec<(i64, String)> = history["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["Version"].as_i64().unwrap(),
                p["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            (1, "postgres://db-1/app".to_string()),
            (2, "postgres://db-2/app".to_string())
        ],
        "{history}"
    );
    let labelled = h
        .aws(
            app,
            &[
                "label-parameter-version",
                "--name",
                "/app/prod/db_url",
                "--parameter-version",
                "1",
                "--labels",
                "stable",
            ],
        )
        .ok("label-parameter-version");
    assert_eq!(labelled["ParameterVersion"], 1, "{labelled}");
    assert_eq!(labelled["InvalidLabels"], json!([]), "{labelled}");
    let by_label = h
        .aws(app, &["get-parameter", "--name", "/app/prod/db_url:stable"])
        .ok("get-parameter NAME:label");
    assert_eq!(
        by_label["Parameter"]["Value"], "postgres://db-1/app",
        "{by_label}"
    );
    assert_eq!(by_label["Parameter"]["Version"], 1, "{by_label}");
    assert_eq!(by_label["Parameter"]["Selector"], ":stable", "{by_label}");
    assert_eq!(
        by_label["Parameter"]["Name"], "/app/prod/db_url",
        "{by_label}"
    );
    let history = h
        .aws(
            app,
            &["get-parameter-history", "--name", "/app/prod/db_url"],
        )
        .ok("get-parameter-history after labelling");
    assert_eq!(
        history["Parameters"][0]["Labels"],
        json!(["stable"]),
        "{history}"
    );

    // Tags.
    let tagged = h
        .aws(
            app,
            &[
                "add-tags-to-resource",
                "--resource-type",
                "Parameter",
                "--resource-id",
                "/app/prod/db_url",
                "--tags",
                "Key=team,Value=core",
                "Key=tier,Value=gold",
            ],
        )
        .ok("add-tags-to-resource");
    assert!(tagged.is_null() || tagged == json!({}), "{tagged}");
    let tags = h
        .aws(
            app,
            &[
                "list-tags-for-resource",
                "--resource-type",
                "Parameter",
                "--resource-id",
                "/app/prod/db_url",
            ],
        )
        .ok("list-tags-for-resource");
    assert_eq!(
        tags["TagList"],
        json!([{"Key": "team", "Value": "core"}, {"Key": "tier", "Value": "gold"}]),
        "{tags}"
    );

    // Deleting, one and several.
    h.aws(app, &["delete-parameter", "--name", "/app/prod/bulk/p00"])
        .ok("delete-parameter");
    let code = h
        .aws(app, &["get-parameter", "--name", "/app/prod/bulk/p00"])
        .code("get-parameter of a deleted parameter");
    assert_eq!(code, "ParameterNotFound");
    let code = h
        .aws(app, &["delete-parameter", "--name", "/app/prod/bulk/p00"])
        .code("delete-parameter twice");
    assert_eq!(code, "ParameterNotFound");
    let deleted = h
        .aws(
            app,
            &[
                "delete-parameters",
                "--names",
                "/app/prod/bulk/p01",
                "/app/prod/bulk/p02",
                "/app/prod/bulk/nope",
            ],
        )
        .ok("delete-parameters");
    assert_eq!(
        deleted["DeletedParameters"],
        json!(["/app/prod/bulk/p01", "/app/prod/bulk/p02"]),
        "{deleted}"
    );
    assert_eq!(
        deleted["InvalidParameters"],
        json!(["/app/prod/bulk/nope"]),
        "{deleted}"
    );
    let left = h
        .aws(app, &["get-parameters-by-path", "--path", "/app/prod/bulk"])
        .ok("get-parameters-by-path after deleting");
    assert_eq!(
        names_of(&left["Parameters"]).len(),
        BULK_COUNT - 3,
        "{left}"
    );
}

/// boto3 with its paginator and its error parsing; prints one JSON object.
const BOTO3_ROUND_TRIP: &str = r#"
import json, os
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ssm = boto3.client("ssm", endpoint_url=os.environ["OPERON_ENDPOINT"], region_name="us-east-1",
                   config=Config(retries={"mode": "standard", "max_attempts": 1}))
out = {}

def error(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return {"code": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                "message": e.response["Error"].get("Message", "")}
    return {"code": None}

out["put1"] = ssm.put_parameter(Name="/app/boto/name", Value="one", Type="String")["Version"]
out["put2"] = ssm.put_parameter(Name="/app/boto/name", Value="two", Type="String", Overwrite=True)["Version"]
out["put_secret"] = ssm.put_parameter(Name="/app/boto/secret", Value=os.environ["BOTO_SECRET"],
                                      Type="SecureString", Description="boto3's")["Version"]
for i in range(5):
    ssm.put_parameter(Name=f"/app/boto/deep/d{i}", Value=f"d{i}", Type="String")
got = ssm.get_parameter(Name="/app/boto/secret", WithDecryption=True)["Parameter"]
out["secret"] = {"Value": got["Value"], "Type": got["Type"], "Version": got["Version"],
                 "LastModifiedDate": str(type(got["LastModifiedDate"]).__name__)}
got = ssm.get_parameters(Names=["/app/boto/name", "/app/boto/missing"])
out["get_parameters"] = {"found": [p["Value"] for p in got["Parameters"]],
                         "invalid": got["InvalidParameters"]}

pages = ssm.get_paginator("get_parameters_by_path").paginate(
    Path="/app/boto", Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 2})
names, page_count = [], 0
for page in pages:
    page_count += 1
    names += [p["Name"] for p in page["Parameters"]]
out["by_path"] = {"names": names, "pages": page_count}

history = ssm.get_parameter_history(Name="/app/boto/name")["Parameters"]
out["history"] = [[h["Version"], h["Value"]] for h in history]
out["label"] = ssm.label_parameter_version(Name="/app/boto/name", ParameterVersion=1, Labels=["old"])["ParameterVersion"]
got = ssm.get_parameter(Name="/app/boto/name:old")["Parameter"]
out["by_label"] = [got["Version"], got["Value"]]
got = ssm.get_parameter(Name="/app/boto/name:1")["Parameter"]
out["by_version"] = [got["Version"], got["Value"]]

out["errors"] = {
    "not_found": error(ssm.get_parameter, Name="/app/boto/missing"),
    "already_exists": error(ssm.put_parameter, Name="/app/boto/secret", Value="x", Type="SecureString"),
    "version_not_found": error(ssm.get_parameter, Name="/app/boto/name:99"),
    "label_version_not_found": error(ssm.label_parameter_version, Name="/app/boto/name", ParameterVersion=99, Labels=["x"]),
    "max_results": error(ssm.get_parameters_by_path, Path="/app/boto", MaxResults=20),
}
ssm.delete_parameter(Name="/app/boto/name")
out["after_delete"] = error(ssm.get_parameter, Name="/app/boto/name")
print(json.dumps(out))
"#;

fn boto3_round_trip(h: &Harness, app: &Creds) {
    let out = h.boto3(Some(app), &[("BOTO_SECRET", BOTO_SECRET)], BOTO3_ROUND_TRIP);
    assert_eq!(out["put1"], 1, "{out}");
    assert_eq!(out["put2"], 2, "{out}");
    assert_eq!(out["put_secret"], 1, "{out}");
    assert_eq!(
        out["secret"],
        json!({"Value": BOTO_SECRET, "Type": "SecureString", "Version": 1, "LastModifiedDate": "datetime"}),
        "{out}"
    );
    assert_eq!(
        out["get_parameters"],
        json!({"found": ["two"], "invalid": ["/app/boto/missing"]}),
        "{out}"
    );
    let names: BTreeSet<&str> = out["by_path"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let expected: BTreeSet<String> = ["/app/boto/name", "/app/boto/secret"]
        .into_iter()
        .map(String::from)
        .chain((0..5).map(|i| format!("/app/boto/deep/d{i}")))
        .collect();
    assert_eq!(
        out["by_path"]["names"].as_array().unwrap().len(),
        7,
        "{out}"
    );
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{out}"
    );
    assert_eq!(out["by_path"]["pages"], 4, "7 parameters, 2 a page: {out}");
    assert_eq!(out["history"], json!([[1, "one"], [2, "two"]]), "{out}");
    assert_eq!(out["label"], 1, "{out}");
    assert_eq!(out["by_label"], json!([1, "one"]), "{out}");
    assert_eq!(out["by_version"], json!([1, "one"]), "{out}");
    let errors = &out["errors"];
    for (case, code) in [
        ("not_found", "ParameterNotFound"),
        ("already_exists", "ParameterAlreadyExists"),
        ("version_not_found", "ParameterVersionNotFound"),
        ("label_version_not_found", "ParameterVersionNotFound"),
        ("max_results", "ValidationException"),
    ] {
        assert_eq!(errors[case]["code"], code, "{case}: {out}");
        assert_eq!(errors[case]["status"], 400, "{case}: {out}");
        assert!(
            !errors[case]["message"].as_str().unwrap_or("").is_empty(),
            "{case} has a message: {out}"
        );
    }
    assert!(
        errors["max_results"]["message"]
            .as_str()
            .unwrap()
            .contains("maxResults"),
        "AWS's wording names the member: {out}"
    );
    assert_eq!(out["after_delete"]["code"], "ParameterNotFound", "{out}");
}

/// One signed call with boto3: the error code botocore parsed.
const BOTO3_ONE_CALL: &str = r#"
import json, os
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ssm = boto3.client("ssm", endpoint_url=os.environ["OPERON_ENDPOINT"], region_name="us-east-1",
                   config=Config(retries={"mode": "standard", "max_attempts": 1}))
try:
    ssm.get_parameter(Name="/app/prod/db_url")
    print(json.dumps({"code": None}))
except ClientError as e:
    print(json.dumps({"code": e.response["Error"]["Code"],
                      "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}))
"#;

fn refusals(h: &Harness, app: &Creds, reader: &Creds) {
    let get = ["get-parameter", "--name", "/app/prod/db_url"];

    // Signature refusals: each one unauthenticated in the trail.
    let seq = h.last_seq();
    let wrong_secret = Creds {
        key_id: app.key_id.clone(),
        secret: "wrongwrongwrongwrongwrongwrongwrongwrong".into(),
    };
    let code = h.aws(Some(&wrong_secret), &get).code("a wrong secret");
    assert_eq!(code, "InvalidSignatureException");
    let parsed = h.boto3(Some(&wrong_secret), &[], BOTO3_ONE_CALL);
    assert_eq!(
        parsed,
        json!({"code": "InvalidSignatureException", "status": 400}),
        "botocore parses the code"
    );
    let unknown = Creds {
        key_id: "AKIAOPERONNOSUCHKEY1".into(),
        secret: app.secret.clone(),
    };
    let code = h.aws(Some(&unknown), &get).code("an unknown access key");
    assert_eq!(code, "UnrecognizedClientException");
    let mut unsigned = vec!["--no-sign-request"];
    unsigned.extend(get);
    let code = h.aws(None, &unsigned).code("no signature");
    assert_eq!(code, "MissingAuthenticationTokenException");

    // A revoked key stops working at once.
    let spare = h.access_key("app");
    h.aws(Some(&spare), &get).ok("a fresh key");
    h.admin(
        "DELETE",
        &format!("/v1/access-keys/{}", spare.key_id),
        json!({}),
    );
    let code = h.aws(Some(&spare), &get).code("a revoked key");
    assert_eq!(code, "UnrecognizedClientException");

    let records = h.audited_since(seq, "unauthenticated");
    let details: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or_default().to_string(),
                r["detail"]["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let app_key = format!("access key {} (app)", app.key_id);
    assert_eq!(
        details,
        vec![
            (app_key.clone(), "InvalidSignatureException".to_string()),
            (app_key, "InvalidSignatureException".to_string()),
            ("anonymous".into(), "UnrecognizedClientException".into()),
            (
                "anonymous".into(),
                "MissingAuthenticationTokenException".into()
            ),
            ("anonymous".into(), "UnrecognizedClientException".into()),
        ],
        "{records:?}"
    );
    for record in &records {
        assert_eq!(
            record["detail"]["target"], "AmazonSSM.GetParameter",
            "{record}"
        );
    }

    // Authorisation refusals: denied in the trail, with the user as actor.
    let seq = h.last_seq();
    let reader = Some(reader);
    let got = h.aws(reader, &get).ok("the reader's get");
    assert_eq!(got["Parameter"]["Value"], "postgres://db-2/app", "{got}");
    let listed = h
        .aws(
            reader,
            &[
                "get-parameters-by-path",
                "--path",
                "/app/prod",
                "--recursive",
            ],
        )
        .ok("the reader's listing");
    assert!(!names_of(&listed["Parameters"]).is_empty(), "{listed}");
    let code = h
        .aws(
            reader,
            &[
                "put-parameter",
                "--name",
                "/app/prod/db_url",
                "--value",
                "evil",
                "--type",
                "String",
                "--overwrite",
            ],
        )
        .code("the reader's put");
    assert_eq!(code, "AccessDeniedException");
    let code = h
        .aws(
            reader,
            &[
                "get-parameter",
                "--name",
                "/app/prod/db_password",
                "--with-decryption",
            ],
        )
        .code("the reader's decrypting read");
    assert_eq!(code, "AccessDeniedException");
    let sealed = h
        .aws(
            reader,
            &["get-parameter", "--name", "/app/prod/db_password"],
        )
        .ok("the reader's read without decryption");
    assert_ne!(sealed["Parameter"]["Value"], CLI_SECRET, "{sealed}");
    let unchanged = h.aws(Some(app), &get).ok("the value after the refused put");
    assert_eq!(unchanged["Parameter"]["Value"], "postgres://db-2/app");

    let denied = h.audited_since(seq, "denied");
    let actions: Vec<(&str, &str)> = denied
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or_default(),
                r["action"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("reader", "params:Put")),
        "the refused put is audited: {denied:?}"
    );
    assert!(
        actions.contains(&("reader", "params:GetDecrypted")),
        "the refused decryption is audited: {denied:?}"
    );
    assert!(
        actions.iter().all(|(actor, _)| *actor == "reader"),
        "{denied:?}"
    );
}

fn no_secret_in_log_or_trail(mut h: Harness) {
    let trail = serde_json::to_string(&h.audit()).unwrap();
    h.server.kill();
    let log = std::fs::read_to_string(&h.log_path).unwrap();
    assert!(log.contains("DEBUG"), "the debug log was captured");
    for secret in [CLI_SECRET, BOTO_SECRET] {
        assert!(
            !log.contains(secret),
            "a SecureString value is in the server log"
        );
        assert!(
            !trail.contains(secret),
            "a SecureString value is in the audit trail"
        );
    }
    assert!(
        trail.contains("params:GetDecrypted"),
        "decrypting reads are audited"
    );
}
