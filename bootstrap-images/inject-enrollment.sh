#!/bin/bash
# Injects a factory enrollment directory into a built factory image, without mounting it:
#
#   bootstrap-images/inject-enrollment.sh DISK.IMG ENROLLMENT_DIR
#
# ENROLLMENT_DIR holds agent.yaml, ca.pem and (for a batch credential) enrollment.secret;
# they replace /etc/siteboot/* in the image (0644, enrollment.secret 0600, root-owned).
# Run it on a copy of the cached image (one copy per batch): debugfs edits in place.
set -euo pipefail
shopt -s inherit_errexit
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/enrollment.sh
. "$HERE/lib/enrollment.sh"

[ $# -eq 2 ] || { echo "usage: $0 DISK.IMG ENROLLMENT_DIR" >&2; exit 2; }
image=$1 dir=$2
[ -f "$image" ] || die "$image: no such image (build one with bootstrap-images/build.sh factory)"
check_enrollment_dir "$dir"
command -v debugfs >/dev/null || die "debugfs not found: apt-get install e2fsprogs"
debugfs -R "stat /usr/local/bin/siteboot-agent" "$image" 2>&1 | grep -q "Inode:" ||
  die "$image is not a siteboot factory image (no /usr/local/bin/siteboot-agent)"

cmds=$(mktemp)
trap 'rm -f "$cmds"' EXIT
{
  echo "mkdir /etc/siteboot"
  for f in $ENROLLMENT_FILES; do
    # Replace: stale files of an earlier batch never survive an injection.
    echo "rm /etc/siteboot/$f"
    if [ -e "$dir/$f" ]; then
      echo "write $dir/$f /etc/siteboot/$f"
      echo "set_inode_field /etc/siteboot/$f mode 0100$(mode_of "$f" | cut -c2-)"
      echo "set_inode_field /etc/siteboot/$f uid 0"
      echo "set_inode_field /etc/siteboot/$f gid 0"
    fi
  done
} >"$cmds"
debugfs -w -f "$cmds" "$image" >/dev/null 2>&1 || true # debugfs exits 0 even on errors: verified below

# Verify what the image now holds, byte for byte.
for f in $ENROLLMENT_FILES; do
  if [ -e "$dir/$f" ]; then
    debugfs -R "cat /etc/siteboot/$f" "$image" 2>/dev/null | cmp -s - "$dir/$f" ||
      die "injecting $f into $image failed (is the image in use or read-only?)"
    mode=$(debugfs -R "stat /etc/siteboot/$f" "$image" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')
    [ "$mode" = "$(mode_of "$f")" ] || die "/etc/siteboot/$f in $image has mode $mode, expected $(mode_of "$f")"
  elif debugfs -R "stat /etc/siteboot/$f" "$image" 2>&1 | grep -q "Inode:"; then
    die "could not remove the old /etc/siteboot/$f from $image"
  fi
done
log "enrollment from $dir injected into $image"
