#!/bin/sh
# Rendered by siteboot-provider: installs the siteboot agent{% if k3s.is_some() %} and k3s{% endif %}, then
# starts them. Every value below was validated and single-quoted by the renderer.
set -eu
umask 022

# install_verified URL SHA256 DEST: download to a temporary file next to DEST, check the
# digest, and only then move it into place. A mismatch leaves DEST untouched and fails.
install_verified() {
  mkdir -p "$(dirname "$3")"
  tmp="$(mktemp "$3.download.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --location --retry 10 --retry-delay 5 --retry-connrefused --output "$tmp" "$1"
  else
    wget -q -O "$tmp" "$1"
  fi
  echo "$2  $tmp" | sha256sum -c -
  chmod 0755 "$tmp"
  mv -f "$tmp" "$3"
  trap - EXIT
}

mkdir -p {{ data_dir }}
chmod 0700 {{ data_dir }}
{%- if let Some(a) = agent %}
install_verified {{ a.url }} {{ a.sha256 }} {{ agent_binary }}
{%- else %}
test -x {{ agent_binary }} || { echo "siteboot: preinstalled agent missing at "{{ agent_binary }} >&2; exit 1; }
{%- endif %}
{%- if let Some(k) = k3s %}
{%- if let Some(d) = k.download %}
install_verified {{ d.url }} {{ d.sha256 }} {{ k3s_binary }}
{%- endif %}
systemctl daemon-reload
systemctl enable --now k3s.service
{%- else %}
systemctl daemon-reload
{%- endif %}
systemctl enable --now {{ agent_unit }}
