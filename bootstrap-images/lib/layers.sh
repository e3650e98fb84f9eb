# The two slow, cached layers: the Debian base (debootstrap + packages/base.txt) and the
# cloud layer (base + packages/cloud.txt). Each is a rootfs tarball named by its key.
# shellcheck shell=bash

# The mirror: SITEBOOT_IMAGE_MIRROR, else the host's first active Debian mirror (the one
# apt already reaches here), else deb.debian.org.
host_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security |
    head -n1 | tr -d ' ' | sed 's:/*$::' || true # missing files or no match: fall back
}
MIRROR=${SITEBOOT_IMAGE_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

# base_key / cloud_key: the cache keys of the slow layers (recipe + package lists).
base_key() { printf 'base %s %s %s\n' "$MIRROR" "$SUITE" "$(hash_inputs "$HERE/lib/layers.sh" "$HERE/lib/common.sh" "$HERE/packages/base.txt")" | sha256sum | cut -c1-16; }
cloud_key() { printf 'cloud %s %s\n' "$(base_key)" "$(hash_inputs "$HERE/packages/cloud.txt")" | sha256sum | cut -c1-16; }

# build_base OUT_TAR: debootstrap minbase, then the base packages with apt-get.
build_base() {
  local out=$1 root
  root=$(mktemp -d "$CACHE/work/base.XXXXXX")
  log "base layer: debootstrap $SUITE from $MIRROR (minbase, about 3 minutes)"
  debootstrap --variant=minbase --components=main "$SUITE" "$root" "$MIRROR" >"$root.debootstrap.log" 2>&1 ||
    { tail -30 "$root.debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  rm -f "$root.debootstrap.log"
  cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
SRC
  # Initramfs with the virtio, ext4 and iso9660 drivers for QEMU's direct kernel boot.
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  echo 'MODULES=most' >"$root/etc/initramfs-tools/conf.d/siteboot.conf"
  log "base layer: apt-get install $(packages "$HERE/packages/base.txt")"
  apt_install "$root" "$HERE/packages/base.txt" || die "apt-get install of the base packages failed"
  scrub "$root"
  tar_layer "$root" "$out"
  rm -rf --one-file-system "$root"
}

# build_cloud BASE_TAR OUT_TAR: the base plus cloud-init.
build_cloud() {
  local base=$1 out=$2 root
  root=$(mktemp -d "$CACHE/work/cloud.XXXXXX")
  untar_layer "$base" "$root"
  log "cloud layer: apt-get install $(packages "$HERE/packages/cloud.txt")"
  apt_install "$root" "$HERE/packages/cloud.txt" || die "apt-get install of cloud-init failed"
  scrub "$root"
  tar_layer "$root" "$out"
  rm -rf --one-file-system "$root"
}

# ensure_layer NAME KEY BUILDER ARGS...: the cached tarball for NAME/KEY, built once
# under the cache lock by `BUILDER ARGS... OUT`.
ensure_layer() {
  local name=$1 key=$2 out
  shift 2
  out="$CACHE/layers/$name-$key.tar"
  if [ ! -s "$out" ]; then
    mkdir -p "$CACHE/layers"
    "$@" "$out" >&2
    log "$name layer built: $(du -h "$out" | cut -f1) ($out)"
  fi
  printf '%s\n' "$out"
}
