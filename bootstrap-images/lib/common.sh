# Shared shell helpers for the image recipe (sourced, never run).
# shellcheck shell=bash

log() { printf '%s bootstrap-images: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# hash_inputs FILE_OR_DIR...: one sha256 over the names and contents of the inputs
# (directories recursively, sorted, with modes), so any change gives a new cache key.
hash_inputs() {
  local p
  for p in "$@"; do
    if [ -d "$p" ]; then
      (cd "$p" && find . -mindepth 1 -printf '%P %y\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
    elif [ -e "$p" ]; then
      printf '%s\n' "$(basename "$p")"
      sha256sum <"$p"
    else
      printf 'absent %s\n' "$p"
    fi
  done | sha256sum | cut -c1-16
}

# packages FILE: the package names in FILE (comments and blank lines dropped).
packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1" | tr -s ' \n' ' '; }

# with_chroot_mounts ROOT CMD...: runs CMD with /proc, /sys and /dev bound into ROOT
# (kernel and initramfs postinst scripts need them) and always unmounts them again.
with_chroot_mounts() {
  local root=$1 rc=0
  shift
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
  "$@" || rc=$?
  umount -R "$root/dev" || umount -lR "$root/dev" || true
  umount -R "$root/sys" || umount -lR "$root/sys" || true
  umount "$root/proc" || umount -l "$root/proc" || true
  return $rc
}

# in_chroot ROOT CMD...: CMD inside ROOT with a non-interactive apt and no service starts.
in_chroot() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

# apt_install ROOT FILE: installs the packages listed in FILE inside ROOT.
apt_install() {
  local root=$1 list=$2
  # Maintainer scripts must not start services in the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  # shellcheck disable=SC2046
  with_chroot_mounts "$root" sh -c "
    chroot '$root' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get update -q &&
    chroot '$root' /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get install -q -y --no-install-recommends $(packages "$list")"
  rm -f "$root/usr/sbin/policy-rc.d"
}

# scrub ROOT: removes what must not be shared by every box cloned from the image
# (machine identity, host keys, random seed, caches). Regenerated on first boot.
scrub() {
  local root=$1
  in_chroot "$root" apt-get clean
  rm -rf --one-file-system "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old
  rm -f "$root"/etc/ssh/ssh_host_* "$root"/var/lib/systemd/random-seed "$root"/var/lib/dbus/machine-id
  # An empty machine-id makes systemd generate one on first boot (ConditionFirstBoot).
  : >"$root/etc/machine-id"
  rm -rf --one-file-system "$root"/var/lib/cloud/* "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
  find "$root/var/log/journal" -mindepth 1 -delete 2>/dev/null || true
}

# tar_layer ROOT OUT: archives ROOT (owners, modes, xattrs kept) atomically to OUT.
tar_layer() {
  tar --numeric-owner --xattrs --xattrs-include='*' -C "$1" -cf "$2.tmp" . && mv -f "$2.tmp" "$2"
}

# untar_layer TAR ROOT: the inverse of tar_layer.
untar_layer() {
  mkdir -p "$2" && tar --numeric-owner --xattrs --xattrs-include='*' -C "$2" -xpf "$1"
}
