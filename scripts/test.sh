#!/usr/bin/env bash
# The whole siteboot test suite: the README's test command, and what .ci/run runs.
#
# On a fresh Debian machine (as root) it first installs the Debian packages the tests
# drive for real (git servers, sshd, cloud-init's and Ignition's validators, Chromium for
# the dashboard, debootstrap and QEMU for the VM tests), then runs
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
  [chromium]=chromium
  [debootstrap]=debootstrap
  [isoinfo]=genisoimage
  [mkfs.ext4]=e2fsprogs
  [cpio]=cpio
)
# qemu-utils ships from bookworm-backports on these machines, so qemu-system-x86 must
# come from there too (same mirror as the existing sources).
BACKPORTS_PKGS=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || BACKPORTS_PKGS+=(qemu-system-x86)
missing=()
for cmd in "${!PKG_FOR[@]}"; do
  if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] || missing+=("${PKG_FOR[$cmd]}")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}"); fi
done
if ((${#missing[@]} + ${#BACKPORTS_PKGS[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: missing Debian packages: ${missing[*]} ${BACKPORTS_PKGS[*]}; run this script as root so it can install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ((${#BACKPORTS_PKGS[@]})) && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The first active Debian mirror (deb822 `URIs:` or one-line `deb` entries).
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
    echo "==> adding bookworm-backports from ${mirror:-http://deb.debian.org/debian}"
    echo "deb ${mirror:-http://deb.debian.org/debian} bookworm-backports main" >/etc/apt/sources.list.d/siteboot-backports.list
  fi
  apt-get update -q
  if ((${#missing[@]})); then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get install -y -q --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
  fi
  if ((${#BACKPORTS_PKGS[@]})); then
    echo "==> installing from bookworm-backports: ${BACKPORTS_PKGS[*]}"
    apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS_PKGS[@]}"
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo test (unit, integration, e2e)"
# Build first so that test timeouts measure tests, not compilation.
cargo build --workspace --all-targets --locked
cargo test --workspace --all-targets --locked "$@"
