#!/usr/bin/env bash
# Installs Debian's Prometheus when the binary is absent (the dashboard tests start their
# own instance on 127.0.0.1; the Debian service is never started). Prints the binary path.
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "prometheus is not installed and apt-get is not usable here; dashboard query tests will skip" >&2
    exit 0
  fi
  # The package would start its service (invoke-rc.d and deb-systemd-invoke ask
  # policy-rc.d first); 101 = "not allowed". Containers often ship this file already.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then  # nor start at the next boot
    systemctl disable prometheus >/dev/null 2>&1 || true
  fi
fi
command -v prometheus
