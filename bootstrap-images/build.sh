#!/bin/bash
# Builds a siteboot appliance disk image from Debian bookworm packages, cached by content.
#
#   bootstrap-images/build.sh factory --agent BIN [--enrollment DIR] [options]
#   bootstrap-images/build.sh plain [options]
#
# Prints the image directory (disk.img, vmlinuz, initrd.img, manifest.json) on stdout.
# See bootstrap-images/README.md for the layers, the cache and the enrollment directory.
set -euo pipefail
shopt -s inherit_errexit
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/layers.sh
. "$HERE/lib/layers.sh"
# shellcheck source=lib/enrollment.sh
. "$HERE/lib/enrollment.sh"

usage() {
  cat >&2 <<USAGE
usage: $0 factory|plain [--agent BIN] [--enrollment DIR] [--site-kubeconfig FILE]
                        [--cache-dir DIR] [--size SIZE]
  factory            appliance image: agent, first-boot unit, enrollment config (if given)
  plain              plain cloud-init Debian image (NoCloud), no agent
  --agent BIN        siteboot-agent binary to install (factory; required)
  --enrollment DIR   factory enrollment config (agent.yaml, ca.pem, enrollment.secret);
                     may instead be injected later with inject-enrollment.sh
  --site-kubeconfig F  kubeconfig of the box's local cluster, installed as
                     /etc/kubernetes/admin.conf and /root/.kube/config
  --cache-dir DIR    cache (default: \$SITEBOOT_IMAGE_CACHE or <repo>/target/siteboot-images)
  --size SIZE        filesystem size for mkfs.ext4 (default 2G, sparse)
USAGE
  exit 2
}

[ $# -ge 1 ] || usage
KIND=$1
shift
case "$KIND" in factory | plain) ;; *) usage ;; esac
AGENT= ENROLLMENT= KUBECONFIG_FILE= SIZE=2G
CACHE=${SITEBOOT_IMAGE_CACHE:-$HERE/../target/siteboot-images}
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) AGENT=${2:?--agent needs a file}; shift 2 ;;
    --enrollment) ENROLLMENT=${2:?--enrollment needs a directory}; shift 2 ;;
    --site-kubeconfig) KUBECONFIG_FILE=${2:?--site-kubeconfig needs a file}; shift 2 ;;
    --cache-dir) CACHE=${2:?--cache-dir needs a directory}; shift 2 ;;
    --size) SIZE=${2:?--size needs a size}; shift 2 ;;
    -h | --help) usage ;;
    *) log "unknown argument $1"; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and file ownership need it)"
for tool in debootstrap mkfs.ext4 tar flock sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install debootstrap e2fsprogs"
done
if [ "$KIND" = factory ]; then
  [ -n "$AGENT" ] || die "factory images need --agent BIN (the siteboot-agent binary)"
fi
[ -z "$AGENT" ] || [ -x "$AGENT" ] || die "--agent $AGENT: not an executable file"
[ -z "$KUBECONFIG_FILE" ] || [ -f "$KUBECONFIG_FILE" ] || die "--site-kubeconfig $KUBECONFIG_FILE: no such file"
[ -z "$ENROLLMENT" ] || check_enrollment_dir "$ENROLLMENT"

mkdir -p "$CACHE/work" "$CACHE/images"
CACHE=$(cd "$CACHE" && pwd)
# One build at a time per cache: concurrent callers wait, then find the result cached.
exec 9>"$CACHE/lock"
flock 9

start=$(date +%s)
BASE_KEY=$(base_key)
if [ "$KIND" = plain ]; then LAYER_KEY=$(cloud_key); else LAYER_KEY=$BASE_KEY; fi
TOP_KEY=$(printf '%s %s %s\n' "$KIND" "$LAYER_KEY" "$(hash_inputs "$HERE/build.sh" "$HERE/lib/enrollment.sh" \
  "$HERE/rootfs/common" "$HERE/rootfs/$KIND" "${AGENT:-/nonexistent}" "${ENROLLMENT:-/nonexistent}" \
  "${KUBECONFIG_FILE:-/nonexistent}")" "$SIZE" | sha256sum | cut -c1-16)
OUT="$CACHE/images/$KIND-$TOP_KEY"
if [ -s "$OUT/disk.img" ]; then
  log "$KIND image cached ($OUT)"
  printf '%s\n' "$OUT"
  exit 0
fi

base_tar=$(ensure_layer base "$BASE_KEY" build_base)
layer_tar=$base_tar
if [ "$KIND" = plain ]; then
  layer_tar=$(ensure_layer cloud "$LAYER_KEY" build_cloud "$base_tar")
fi

log "$KIND image: top layer (key $TOP_KEY)"
work=$(mktemp -d "$CACHE/work/$KIND.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
root="$work/root"
untar_layer "$layer_tar" "$root"
cp -a --no-preserve=ownership "$HERE/rootfs/common/." "$HERE/rootfs/$KIND/." "$root/"
chown -R 0:0 "$root/etc/systemd" "$root/usr/local"
units="systemd-networkd.service"
if [ "$KIND" = factory ]; then
  install -m 0755 -o 0 -g 0 "$AGENT" "$root/usr/local/bin/siteboot-agent"
  chmod 0755 "$root/usr/local/lib/siteboot/firstboot.sh"
  units="$units siteboot-firstboot.service siteboot-agent.service"
  mkdir -p "$root/etc/siteboot"
  [ -z "$ENROLLMENT" ] || install_enrollment_dir "$ENROLLMENT" "$root/etc/siteboot"
fi
if [ -n "$KUBECONFIG_FILE" ]; then
  install -D -m 0600 -o 0 -g 0 "$KUBECONFIG_FILE" "$root/etc/kubernetes/admin.conf"
  mkdir -p -m 0700 "$root/root/.kube"
  ln -sf /etc/kubernetes/admin.conf "$root/root/.kube/config"
fi
# shellcheck disable=SC2086
in_chroot "$root" systemctl enable $units >/dev/null 2>&1 || die "systemctl enable $units failed in the image"

mkdir -p "$work/out"
cp "$(readlink -f "$root/vmlinuz")" "$work/out/vmlinuz"
cp "$(readlink -f "$root/initrd.img")" "$work/out/initrd.img"
mkfs.ext4 -q -F -L siteboot-root -d "$root" "$work/out/disk.img" "$SIZE" ||
  die "mkfs.ext4 -d failed: is $SIZE large enough for the root filesystem?"
kernel=$(basename "$(readlink -f "$root/vmlinuz")")
cat >"$work/out/manifest.json" <<JSON
{"kind": "$KIND", "key": "$TOP_KEY", "layerKey": "$LAYER_KEY", "kernel": "$kernel",
 "cmdline": "root=/dev/vda rw console=ttyS0", "size": "$SIZE",
 "enrollment": $([ -n "$ENROLLMENT" ] && echo true || echo false),
 "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
rm -rf --one-file-system "$OUT"
mv "$work/out" "$OUT"
# Keep the two newest images of this kind; older ones only fill the disk.
ls -1dt "$CACHE/images/$KIND"-* 2>/dev/null | tail -n +3 | while read -r old; do
  log "pruning old $KIND image $old"
  rm -rf --one-file-system "$old"
done
log "$KIND image built in $(($(date +%s) - start)) s: $(du -h --apparent-size "$OUT/disk.img" | cut -f1) apparent, $(du -h "$OUT/disk.img" | cut -f1) allocated ($OUT)"
printf '%s\n' "$OUT"
