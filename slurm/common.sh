# shellcheck shell=bash
# The shared preamble of every job script in slurm/ (sourced; not a job itself).
#
# Usage (the first lines of a job script; sbatch runs a spooled copy, so the script cannot use its own
# folder: it asks Slurm for the submitted path, then tries its own folder and the submit folder):
#   for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
#     [[ -f $d/slurm/common.sh ]] && break; done
#   source "$d/slurm/common.sh" NAME || { echo "cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }
#
# It gives: `set -euo pipefail`; REPO_DIR; the cluster settings below; die / show_help / setup_cluster_env /
# sbatch_site_args / free_port_from / allocation_gpus; a finish line "NAME.sh: finished with exit code RC
# after Ns" on exit (a script's own clean-up goes in a function named job_cleanup, run first); and the
# job's CPUs for every srun it starts (SRUN_CPUS_PER_TASK, below).
set -euo pipefail
JOB_NAME_SHORT=${1:?common.sh needs the job script name}
JOB_SCRIPT=${BASH_SOURCE[1]:-}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
START_TS=$(date +%s)

# ======================= CLUSTER-SPECIFIC SETTINGS: the one place to adapt to your cluster ===================
# Every value can be overridden from the environment: `export VAR=...` before sbatch (Slurm passes the
# submitting shell's environment into the job).
# Partition and account of a job itself: #SBATCH lines cannot read variables, so give them on the sbatch
# line (`sbatch -p gpu -A myproj slurm/train.sh ...`) or export SBATCH_PARTITION / SBATCH_ACCOUNT, which
# sbatch reads. Jobs that these scripts submit themselves (build.sh's merge step, pipeline.sh) get
# PARTITION / ACCOUNT.
PARTITION=${PARTITION:-${SBATCH_PARTITION:-}}              # e.g. "gpu"; empty: the cluster's default
ACCOUNT=${ACCOUNT:-${SBATCH_ACCOUNT:-}}                    # e.g. "proj123"; empty: your default account
MODULES=${MODULES:-}                                       # e.g. "cuda/12.4 nccl/2.21"; `module load`ed if set
VENV=${VENV:-$REPO_DIR/.venv}                              # LlamaFactory + builder env (pip install -e .)
VLLM_VENV=${VLLM_VENV:-$REPO_DIR/.venv-vllm}               # vLLM's own env (docs/training.md "Serving environment")
export HF_HOME=${HF_HOME:-$HOME/.cache/huggingface}        # model weights cache: a shared file system
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
# Compute nodes are often without internet: inside a job the hub is off unless FRACTO_ONLINE=1 (download the
# base model first on a login node: python -m training.predownload RECIPE; docs/training.md).
if [[ -n ${SLURM_JOB_ID:-} && ${FRACTO_ONLINE:-0} != 1 ]]; then
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
fi
# =============================================================================================================

# Since Slurm 22.05 srun neither inherits the job's --cpus-per-task nor reads SLURM_CPUS_PER_TASK; it reads
# SRUN_CPUS_PER_TASK (`man srun`, INPUT ENVIRONMENT VARIABLES). Without it each srun task gets one CPU.
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
  export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
fi

_fracto_finish() {
  local rc=$?
  if declare -F job_cleanup >/dev/null; then job_cleanup || true; fi
  echo "$JOB_NAME_SHORT.sh: finished with exit code $rc after $(( $(date +%s) - START_TS ))s"
}
trap _fracto_finish EXIT

die() { echo "$JOB_NAME_SHORT.sh: error: $*" >&2; exit 2; }

# The job script's header comment (from its second line to the first non-comment line), #SBATCH lines left out.
show_help() {
  awk 'NR == 1 || /^#SBATCH/ { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$JOB_SCRIPT"
  trap - EXIT
  exit 0
}

# Load the modules and put VENV first on PATH (no `activate`: it is not needed and not `set -u` safe).
setup_cluster_env() {
  if [[ -n $MODULES ]]; then
    command -v module >/dev/null 2>&1 || die "MODULES=$MODULES is set but \`module\` is not available"
    # shellcheck disable=SC2086
    module load $MODULES
  fi
  [[ -x $VENV/bin/python ]] || die "VENV=$VENV has no bin/python: create it (README.md "Quickstart") or export VENV=/path/to/venv"
  export PATH="$VENV/bin:$PATH"
  export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
  PYTHON=$VENV/bin/python
}

# Extra sbatch options for jobs submitted from inside a job or by pipeline.sh (partition / account from above).
sbatch_site_args() {
  [[ -z $PARTITION ]] || echo "--partition=$PARTITION"
  [[ -z $ACCOUNT ]] || echo "--account=$ACCOUNT"
  return 0
}

# The first port from $1 upwards (50 tries) that can be bound on this host.
free_port_from() {
  local port=$1
  for _ in $(seq 1 50); do
    "$PYTHON" -c "import socket,sys; s=socket.socket(); s.bind(('', int(sys.argv[1])))" "$port" 2>/dev/null && break
    port=$(( port + 1 ))
  done
  echo "$port"
}

# GPUs of this node's allocation (SLURM_GPUS_ON_NODE, else CUDA_VISIBLE_DEVICES); empty when none.
allocation_gpus() {
  if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then echo "$SLURM_GPUS_ON_NODE"
  elif [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then tr ',' '\n' <<< "$CUDA_VISIBLE_DEVICES" | grep -c .
  fi
  return 0
}
