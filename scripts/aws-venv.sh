#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment the AWS end-to-end
# test (crates/operon/tests/e2e_params_aws.rs) drives Operon with: the real
# AWS CLI (v1, from PyPI) and boto3, at pinned versions. Prints its path.
#
#   OPERON_AWS_VENV   where to create it (default: target/aws-venv)
#   PYTHON            the interpreter to create it with (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

AWSCLI_VERSION=1.45.11
BOTO3_VERSION=1.43.11
BOTOCORE_VERSION=1.43.11

venv="${OPERON_AWS_VENV:-target/aws-venv}"
python="${PYTHON:-python3}"
stamp="$venv/.operon-pins"
pins="awscli==$AWSCLI_VERSION boto3==$BOTO3_VERSION botocore==$BOTOCORE_VERSION"

# Already made with these pins: nothing to do.
if [[ -x "$venv/bin/python" && -x "$venv/bin/aws" && -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then
    cd "$venv" && pwd
    exit 0
fi

command -v "$python" >/dev/null || { echo "$python not found: the AWS test venv needs Python 3" >&2; exit 1; }
rm -rf "$venv"
"$python" -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins >&2
"$venv/bin/aws" --version >&2
echo "$pins" > "$stamp"
cd "$venv" && pwd
