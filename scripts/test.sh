#!/usr/bin/env bash
# The whole siteboot test suite: the README's test command, and what .ci/run runs.
#
# On a fresh Debian machine (as root) it first installs the Debian packages the tests
# drive for real (git servers, sshd, cloud-init's and Ignition's validators), then runs
# the formatting check and every unit, integration and end-to-end test of the workspace.
# Exits non-zero on any failure. No test is skipped: a test whose tool is missing fails
# and says which package to install.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, by the command each provides.
declare -A PKG_FOR=(
  [git]=git
  [/usr/lib/git-core/git-daemon]=git
  [/usr/lib/git-core/git-http-backend]=git
  [/usr/sbin/sshd]=openssh-server
  [cloud-init]=cloud-init
  [ignition-validate]=ignition
  [ip]=iproute2
)
missing=()
for cmd in "${!PKG_FOR[@]}"; do
  if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] || missing+=("${PKG_FOR[$cmd]}")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}"); fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing Debian packages: ${missing[*]}; run this script as root so it can install them" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo test (unit, integration, e2e)"
# Build first so that test timeouts measure tests, not compilation.
cargo build --workspace --all-targets --locked
cargo test --workspace --all-targets --locked "$@"
