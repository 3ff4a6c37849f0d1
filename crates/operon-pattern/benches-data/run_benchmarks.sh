#!/bin/sh
# Reproduces crates/operon-pattern/BENCHMARKS.md: builds the release binary,
# generates the synthetic citylots data and the rule files, runs
# `operon events match --json` once per rule set (single thread), and prints
# a table with events/s and whether every per-rule count is the expected one.
#
#   sh crates/operon-pattern/benches-data/run_benchmarks.sh [WORK_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
conformance=${OPERON_CONFORMANCE_DIR:-$root/testdata/conformance}/eventbridge
work=${1:-${CARGO_TARGET_DIR:-$root/target}/citylots-bench}
mkdir -p "$work"
(cd "$root" && cargo build --release -p operon)
bin=${CARGO_TARGET_DIR:-$root/target}/release/operon
[ -f "$work/citylots.jsonl.gz" ] || python3 "$conformance/gen_citylots.py" "$work/citylots.jsonl.gz"
python3 "$here/make_rule_sets.py" "$conformance/citylots-synth.expected.json" "$work/rules"
python3 "$here/make_exact_scaling.py" "$work/scaling"
printf '%-28s %14s  %s\n' "rule set" "events/s" "counts"
for rules in "$work"/rules/*.json "$work"/scaling/*.json; do
  case $rules in *.expected.json) continue ;; esac
  name=$(basename "$rules" .json)
  "$bin" events match --rules "$rules" --events "$work/citylots.jsonl.gz" --json > "$work/$name.out.json"
  python3 - "$work/$name.out.json" "${rules%.json}.expected.json" "$name" <<'PY'
import json, os, sys
got = json.load(open(sys.argv[1]))
expected_file = sys.argv[2]
status = "-"
if os.path.exists(expected_file):
    status = "all expected" if got["matches"] == json.load(open(expected_file)) else "MISMATCH"
print(f"{sys.argv[3]:28s} {got['events_per_second']:>14,.0f}  {status}")
PY
done
