#!/usr/bin/env bash
# Installs everything the test-suite needs on a fresh machine, then runs all checks and tests.
# Used by .ci/run and by developers: `bash scripts/test.sh [pytest args]`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_apt+=(sox)
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)      # SIP peer (tests/sip)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)    # dashboard browser tests
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)      # multi-node harness balancer
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# Exact versions from constraints.txt (pyproject.toml only states compatible ranges).
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'
# The Smart Turn end-of-turn model ships inside the pipecat-ai wheel; only the file is used
# (providers/vad/smart_turn.py), so none of the framework's dependencies are installed.
.venv/bin/python -m pip install -q --no-deps -c constraints.txt pipecat-ai

echo "== ruff"; .venv/bin/ruff check src tests benchmarks
echo "== mypy"; .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"; .venv/bin/pytest "$@"
