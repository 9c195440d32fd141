#!/usr/bin/env bash
# Installs the Debian packages mlstore needs to build and test, if any are missing.
set -euo pipefail
# chromium, chromium-driver and python3-selenium: the web UI's browser tests (never a downloaded browser).
packages=(zlib1g-dev libssl-dev openssl libsqlite3-dev pkg-config git python3 skopeo chromium chromium-driver python3-selenium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
