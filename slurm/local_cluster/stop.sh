#!/usr/bin/env bash
# Stop the test cluster that start.sh started from STATE_DIR (each slurmd, slurmctld, munged).
#
# Usage: bash slurm/local_cluster/stop.sh STATE_DIR [--purge]     (--purge also deletes STATE_DIR)
#
# Only the daemons whose pid files are in STATE_DIR are stopped. Idempotent.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,6p' "$0"; [[ $# -ge 1 ]] && exit 0 || exit 2
fi
STATE_DIR=$(realpath -m "$1")
PURGE=0
[[ "${2:-}" == "--purge" ]] && PURGE=1

stop_pid_file() {  # name pid_file: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 file=$2 pid
  if [[ -s $file ]] && pid=$(cat "$file") && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; echo "stop.sh: killed $name (pid $pid)"
    else echo "stop.sh: stopped $name (pid $pid)"; fi
  else
    echo "stop.sh: $name not running"
  fi
  rm -f "$file"
}

# Jobs still running (a failed test leaves some) would outlive the daemons as orphaned slurmstepd trees:
# cancel them first and give Slurm up to 15 s to end them.
if [[ -s $STATE_DIR/run/slurmctld.pid ]] && kill -0 "$(cat "$STATE_DIR/run/slurmctld.pid")" 2>/dev/null; then
  export SLURM_CONF=$STATE_DIR/etc/slurm.conf
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 30); do [[ -z $(squeue -h -t R,CG -o %i 2>/dev/null) ]] && break; sleep 0.5; done
    echo "stop.sh: cancelled job(s) $(echo $jobs)"
  fi
fi
for f in "$STATE_DIR"/run/slurmd*.pid; do
  [[ -e $f ]] && stop_pid_file "slurmd ($(basename "$f" .pid))" "$f"
done
stop_pid_file slurmctld "$STATE_DIR/run/slurmctld.pid"
stop_pid_file munged "$STATE_DIR/munge/munged.pid"
if (( PURGE )); then
  rm -rf "$STATE_DIR"; echo "stop.sh: deleted $STATE_DIR"
fi
