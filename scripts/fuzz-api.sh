#!/usr/bin/env bash
# Fuzz the HTTP API against its OpenAPI document with schemathesis (v4).
#
#   scripts/fuzz-api.sh [BINARY]
#
# Starts `BINARY server` (default target/debug/operon, copied first so a
# rebuild cannot swap it mid-run) on a loopback port with a fresh temporary
# data dir, seeds one of each resource (a node, a command, a user, a token, a
# policy, a role, workflows with a pending approval and a waiting task token,
# a bus, a rule, a dead letter, a webhook, an archive, a replay) so that half
# of the generated path parameters name something that exists, then runs
# schemathesis with the document the server serves (/v1/openapi.json, saved to
# the work dir first so the run reads one fixed copy), and stops the server. Bounded: examples per operation, a time budget, a
# per-request timeout. Only 127.0.0.1 is ever contacted.
#
# Exits non-zero when schemathesis reports a failure or an error, or when the
# server log shows a panic (a background task that dies answers no request,
# so only its log tells), or when the server died.
#
# Settings (environment):
#   FUZZ_PORT=17781          loopback port of the server
#   FUZZ_MAX_EXAMPLES=25     test cases per operation and phase
#   FUZZ_MAX_TIME=420        time budget of the main run, in seconds
#   FUZZ_WORKERS=2           concurrent schemathesis workers
#   FUZZ_SEED=               a seed, to replay a run
#   FUZZ_CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
#   FUZZ_REPORT_DIR=         where the JUnit/NDJSON reports and the server log
#                            go (default: a temporary directory, kept on failure)
#
# Needs python3 and schemathesis 4 (`pip install 'schemathesis>=4,<5'`).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$root/target/debug/operon}"
port="${FUZZ_PORT:-17781}"
max_examples="${FUZZ_MAX_EXAMPLES:-25}"
max_time="${FUZZ_MAX_TIME:-420}"
workers="${FUZZ_WORKERS:-2}"
checks="${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"
base="http://127.0.0.1:$port"

command -v python3 >/dev/null || { echo "fuzz-api: python3 not found" >&2; exit 2; }
command -v schemathesis >/dev/null || {
    echo "fuzz-api: schemathesis not found: pip install 'schemathesis>=4,<5'" >&2
    exit 2
}
case "$(schemathesis --version 2>&1)" in
    *" 4."*) ;;
    *) echo "fuzz-api: needs schemathesis 4, found: $(schemathesis --version 2>&1)" >&2; exit 2 ;;
esac
[ -x "$binary" ] || { echo "fuzz-api: no executable at $binary (cargo build -p operon first)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/operon-fuzz.XXXXXX")"
reports="${FUZZ_REPORT_DIR:-$work/reports}"
mkdir -p "$reports"
server_log="$reports/server.log"
server_pid=""
keep=0

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then
        echo "fuzz-api: reports, server log and fixture config kept in $reports" >&2
        cp "$work"/schemathesis.toml* "$reports"/ 2>/dev/null || true
    fi
    if [ "$keep" = 1 ] && [ -z "${FUZZ_REPORT_DIR:-}" ]; then
        rm -rf "$work/data" "$work/operon"  # the reports are inside $work
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$binary" "$work/operon"
"$work/operon" server --listen "127.0.0.1:$port" --data-dir "$work/data" >"$server_log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    if [ -s "$work/data/admin-token" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$base/v1/health" 2>/dev/null; then
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { keep=1; echo "fuzz-api: the server did not start:" >&2; tail -20 "$server_log" >&2; exit 1; }
    sleep 0.2
done
python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$base/v1/health" 2>/dev/null || {
    keep=1; echo "fuzz-api: the server did not answer $base/v1/health within 20 s" >&2; exit 1
}
token="$(cat "$work/data/admin-token")"

# The document under test: the one this binary serves.
schema="$work/openapi.json"
python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' \
    "$base/v1/openapi.json" "$schema" || { keep=1; echo "fuzz-api: could not fetch $base/v1/openapi.json" >&2; exit 1; }

# Seed fixtures and write the schemathesis config binding path parameters to them.
python3 - "$base" "$work/data/admin-token" "$work/schemathesis.toml" <<'EOF' || { keep=1; exit 1; }
import json, sys, time, urllib.request, urllib.error
base, token_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = open(token_file).read().strip()

def call(method, path, body=None, auth=True):
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(3):
        req = urllib.request.Request(base + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", "Bearer " + TOKEN)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read().decode()[:300]
            if e.code < 500 or attempt == 2:
                sys.exit(f"seeding failed: {method} {path} answered {e.code}: {text}")
            # A server error is a finding: retried so the run can go on, and it fails the run.
            print(f"fuzz-api: seeding: {method} {path} answered {e.code}: {text} (retrying)", file=sys.stderr)
            open(out + ".server-errors", "a").write(f"{method} {path} -> {e.code} {text}\n")
            time.sleep(0.5)

def wait_for(what, probe, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"seeding failed: no {what} after {seconds} s")

# Fleet: a node enrolled without an agent (it stays offline), a document, a cancelled command.
enroll = call("POST", "/v1/enroll-tokens", {"tags": {"env": "fuzz"}, "uses": 1})
inventory = {"hostname": "fuzz-node", "os_name": "Linux", "os_version": "0", "kernel": "0", "arch": "x86_64",
             "cpus": 1, "memory_bytes": 1, "agent_version": "0"}
node = call("POST", "/v1/agent/enroll", {"enroll_token": enroll["token"], "name": "fuzz-node", "inventory": inventory}, auth=False)
call("POST", "/v1/documents", {"name": "fuzz-doc", "content": {"schemaVersion": "2.2", "mainSteps": [
    {"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}})
command = call("POST", "/v1/commands", {"node_ids": ["fuzz-node"], "parameters": {"commands": ["true"]}})
call("POST", f"/v1/commands/{command['id']}/cancel")  # final, so its event stream ends at once
# Identity.
call("POST", "/v1/policies", {"name": "fuzz-policy", "document": {"Statement": [{"Effect": "Allow", "Action": "nodes:List", "Resource": "*"}]}})
call("POST", "/v1/roles", {"name": "fuzz-role", "policies": ["fuzz-policy"]})
call("POST", "/v1/users", {"name": "fuzz-user", "roles": ["fuzz-role"]})
api_token = call("POST", "/v1/tokens", {"name": "fuzz-token", "user": "fuzz-user"})
# Events: a bus, an archive, a replay, a webhook, and a rule whose webhook target (a closed
# loopback port, no retries) turns every matching event into a dead letter.
call("POST", "/v1/buses", {"name": "fuzz-bus"})
call("POST", "/v1/archives", {"name": "fuzz-archive", "bus": "fuzz-bus"})
call("POST", "/v1/replays", {"name": "fuzz-replay", "archive": "fuzz-archive", "from": "2020-01-01", "to": "2020-01-02"})
call("POST", "/v1/webhooks", {"name": "fuzz-hook", "bus": "fuzz-bus"})
call("PUT", "/v1/rules/fuzz-rule", {"bus": "fuzz-bus", "pattern": {"source": ["fuzz.task"]}, "targets": [
    {"Id": "dead-end", "Kind": "webhook", "Url": "http://127.0.0.1:9/", "RetryPolicy": {"MaximumRetryAttempts": 0}}]})
# Workflows: one waiting for an approval, one waiting for a task token (published as an
# event, so it is read back from the dead letter), one finished.
call("POST", "/v1/workflows", {"name": "fuzz-approval", "definition": {"StartAt": "A", "States": {
    "A": {"Type": "Task", "Resource": "operon:approval", "Parameters": {"Message": "fuzz"}, "End": True}}}})
call("POST", "/v1/workflows", {"name": "fuzz-waiter", "definition": {"StartAt": "T", "States": {
    "T": {"Type": "Task", "Resource": "operon:publishEvent.waitForTaskToken", "Parameters": {
        "Source": "fuzz.task", "DetailType": "Task Token", "EventBusName": "fuzz-bus",
        "Detail": {"token.$": "$$.Task.Token"}}, "End": True}}}})
call("POST", "/v1/workflows", {"name": "fuzz-pass", "definition": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}})
approval_run = call("POST", "/v1/workflows/fuzz-approval/executions", {"name": "fuzz-approval-run"})
waiter_run = call("POST", "/v1/workflows/fuzz-waiter/executions", {"name": "fuzz-waiter-run"})
pass_run = call("POST", "/v1/workflows/fuzz-pass/executions", {"name": "fuzz-pass-run"})
approval = wait_for("approval", lambda: call("GET", "/v1/approvals?status=Pending"))[0]
letter = wait_for("dead letter", lambda: call("GET", "/v1/dlq?rule=fuzz-rule"))[0]
task_token = letter["event"]["detail"]["token"]

values = {
    "node": [node["name"], node["node_id"]],
    "document": ["fuzz-doc", "AWS-RunShellScript"],
    "command": [command["id"]],
    "user": ["fuzz-user"],
    "token": [api_token["id"]],
    "policy": ["fuzz-policy"],
    "role": ["fuzz-role"],
    "workflow": ["fuzz-approval", "fuzz-waiter", "fuzz-pass"],
    "execution": [approval_run["executionId"], waiter_run["executionId"], pass_run["executionId"]],
    "approval": [approval["id"]],
    "task_token": [task_token],
    "bus": ["fuzz-bus"],
    "rule": ["fuzz-rule"],
    "dead_letter": [letter["id"]],
    "webhook": ["fuzz-hook"],
    "archive": ["fuzz-archive"],
    "replay": ["fuzz-replay"],
}
# Operations whose path parameter (or body field) names a fixture half of the time.
# Not GET /v1/buses/{name}/tail: a tail of an existing bus never ends.
bindings = [
    (r"^/v1/nodes/\{key\}", "path.key", "node"),
    (r"^/v1/documents/\{name\}$", "path.name", "document"),
    (r"^/v1/commands/\{id\}", "path.id", "command"),
    (r"^/v1/users/\{name\}", "path.name", "user"),
    (r"^/v1/tokens/\{id\}/revoke$", "path.id", "token"),
    (r"^/v1/policies/\{name\}$", "path.name", "policy"),
    (r"^/v1/roles/\{name\}", "path.name", "role"),
    (r"^/v1/workflows/\{name\}", "path.name", "workflow"),
    (r"^/v1/executions/\{id\}", "path.id", "execution"),
    (r"^/v1/approvals/\{id\}", "path.id", "approval"),
    (r"^/v1/tasks/", "body.taskToken", "task_token"),
    (r"^/v1/buses/\{name\}$", "path.name", "bus"),
    (r"^/v1/rules/\{name\}", "path.name", "rule"),
    (r"^/v1/dlq/\{id\}$", "path.id", "dead_letter"),
    (r"^/v1/webhooks/\{name\}$", "path.name", "webhook"),
    (r"^/v1/hooks/\{name\}$", "path.name", "webhook"),
    (r"^/v1/archives/\{name\}$", "path.name", "archive"),
    (r"^/v1/replays/\{name\}$", "path.name", "replay"),
]
toml = []
for name, entries in values.items():
    toml.append(f"[dictionaries.{name}]\nvalues = {json.dumps(entries)}\n")
for regex, key, name in bindings:
    toml.append(f"[[operations]]\ninclude-path-regex = {json.dumps(regex)}\n"
                f"parameters = {{ {json.dumps(key)} = {{ dictionary = {json.dumps(name)}, probability = 0.5 }} }}\n")
open(out, "w").write("\n".join(toml))
print(f"fuzz-api: seeded node {node['name']}, command {command['id']}, approval {approval['id']}, "
      f"dead letter {letter['id']} and a task token")
EOF

common=(
    --url "$base"
    -H "Authorization: Bearer $token"
    --checks "$checks"
    --request-timeout 10
    --workers "$workers"
    --no-color
)
[ -n "${FUZZ_SEED:-}" ] && common+=(--seed "$FUZZ_SEED")

status=0
# Every operation but the admin-token rotation, which would lock the run out.
schemathesis --config-file "$work/schemathesis.toml" run "$schema" "${common[@]}" \
    --exclude-path /v1/admin-token/rotate \
    --max-examples "$max_examples" --max-time "$max_time" \
    --report junit,ndjson --report-dir "$reports/main" || status=$?
# Then the rotation alone: the first call rotates, the others get the documented 401.
schemathesis run "$schema" "${common[@]}" \
    --include-path /v1/admin-token/rotate \
    --max-examples 5 \
    --report junit,ndjson --report-dir "$reports/rotate" || status=$?

if [ -s "$work/schemathesis.toml.server-errors" ]; then
    echo "fuzz-api: server errors while seeding:" >&2
    cat "$work/schemathesis.toml.server-errors" >&2
    status=1
fi
if grep -q "panicked at" "$server_log"; then
    echo "fuzz-api: the server panicked:" >&2
    grep -A1 "panicked at" "$server_log" | grep -v '^--' | sort | uniq -c >&2
    status=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "fuzz-api: the server died during the run" >&2
    status=1
fi
if [ "$status" != 0 ]; then
    keep=1
    echo "fuzz-api: FAILED (schemathesis output above; reproduce with the curl lines it printed)" >&2
else
    echo "fuzz-api: passed"
fi
exit "$status"
