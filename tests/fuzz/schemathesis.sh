#!/usr/bin/env bash
# Fuzzes a running integrations-service against its own OpenAPI description
# (the description it serves at /openapi.json) with schemathesis: generated requests
# for every operation, each response checked for server errors (5xx), an undocumented
# status code, content type or header, and a body that does not match its schema.
#
#   tests/fuzz/schemathesis.sh [BASE_URL] [more `schemathesis run` options...]
#
# BASE_URL defaults to $BASE_URL, then http://127.0.0.1:3000 (`spin up`). The service
# should run on a throwaway database: the fuzzer writes to the integrations.
#
# Environment:
#   ADMIN_TOKEN                 sent as `Authorization: Bearer` when the service has tokens
#                               (api_tokens, admin_token): an `admin` one reaches every
#                               operation; a `read` one gets the documented 403 beyond reads
#   SCHEMATHESIS_MAX_EXAMPLES   test cases per operation and phase (default 50)
#   SCHEMATHESIS_MODE           positive, negative or all (default all: invalid requests
#                               too, which must then get a documented 4xx)
#   SCHEMATHESIS_SEED           seed, to replay a run
#   PYTHON                      interpreter for the venv (default python3, 3.9 or later)
#
# Schemathesis is installed, pinned, in target/schemathesis-venv (reused while the pin
# holds); its output, JUnit report and cache go to target/schemathesis-report/.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
base_url=${BASE_URL:-http://127.0.0.1:3000}
if [[ $# -gt 0 && $1 != -* ]]; then
    base_url=$1
    shift
fi
base_url=${base_url%/}
venv=$repo/target/schemathesis-venv
report_dir=$repo/target/schemathesis-report

if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *" $SCHEMATHESIS_VERSION" ]]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

args=(
    run "$base_url/openapi.json"
    --url "$base_url"
    --checks "$CHECKS"
    --mode "${SCHEMATHESIS_MODE:-all}"
    --phases examples,coverage,fuzzing
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}"
    --wait-for-schema 30
    --request-timeout 10
    --generation-database none
    --report junit
    --report-junit-path "$report_dir/junit.xml"
    --no-color
)
if [[ -n ${SCHEMATHESIS_SEED:-} ]]; then
    args+=(--seed "$SCHEMATHESIS_SEED")
fi
if [[ -n ${ADMIN_TOKEN:-} ]]; then
    args+=(--header "Authorization: Bearer $ADMIN_TOKEN")
fi

echo "schemathesis $SCHEMATHESIS_VERSION against $base_url" >&2
mkdir -p "$report_dir"
# Schemathesis keeps a cache (.schemathesis/) in the working directory: keep it in target/.
cd "$report_dir"
log=$report_dir/output.txt
status=0
"$venv/bin/schemathesis" "${args[@]}" "$@" 2>&1 | tee "$log" || status=$?
cases=$(grep -Eo '[0-9]+ generated' "$log" | tail -n 1 || true)
echo "schemathesis: ${cases:-no} test cases (exit $status); JUnit report: $report_dir/junit.xml" >&2
exit "$status"
