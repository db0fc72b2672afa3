#!/usr/bin/env bash
# Install a single-machine Slurm (controller + node daemon + client) and munge from Debian packages.
#
# Usage: bash slurm/local_cluster/install.sh        (as root; idempotent, ~1 s when already installed)
#
# Used by CI before the test command and by tests/test_slurm.py's cluster fixture (via start.sh).
# Nothing is started here and no systemd unit is enabled: start.sh runs the daemons by hand.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0"; exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if (( ${#missing[@]} == 0 )); then
  echo "install.sh: already installed: ${PACKAGES[*]}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101 keeps the packages' postinst from starting daemons (no systemd here anyway).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "install.sh: installed: $(dpkg-query -W -f='${Package} ${Version}, ' "${PACKAGES[@]}")"
