#!/bin/sh
# siteboot first boot: gives this box its own identity. The factory image is shared by a
# whole batch; nothing per-device is in it. systemd has already generated machine-id.
set -eu
serial=$(cat /sys/class/dmi/id/product_serial 2>/dev/null || true)
# Hostname from the serial: lower case, only [a-z0-9-], at most 50 characters.
name=$(printf '%s' "$serial" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9-' '-' | cut -c1-50 | sed 's/^-*//; s/-*$//')
if [ -n "$name" ]; then
  echo "edge-$name" >/etc/hostname
  hostname "edge-$name"
fi
# Host keys, if an SSH server is part of this image variant.
if command -v ssh-keygen >/dev/null 2>&1 && [ -d /etc/ssh ]; then
  ssh-keygen -A
fi
install -d -m 0700 /var/lib/siteboot
echo "siteboot first boot: serial ${serial:-unknown}, hostname $(hostname)"
touch /var/lib/siteboot-firstboot.done
