# shellcheck shell=bash
# Sourced by every script in slurm/ after it has found the repository (REPO_DIR).
#
# ======================= CLUSTER-SPECIFIC SETTINGS: the one place to adapt to your cluster ===================
# Every value can be overridden from the environment: `export VAR=...` before sbatch (Slurm passes the
# submitting shell's environment into the job).
# Partition and account of a job itself: #SBATCH lines cannot read variables, so give them on the sbatch
# line (`sbatch -p gpu -A myproj slurm/train.sh ...`) or export SBATCH_PARTITION / SBATCH_ACCOUNT, which
# sbatch reads. Jobs that these scripts submit themselves (build.sh's merge step) get PARTITION / ACCOUNT.
PARTITION=${PARTITION:-${SBATCH_PARTITION:-}}              # e.g. "gpu"; empty: the cluster's default
ACCOUNT=${ACCOUNT:-${SBATCH_ACCOUNT:-}}                    # e.g. "proj123"; empty: your default account
MODULES=${MODULES:-}                                       # e.g. "cuda/12.4 nccl/2.21"; `module load`ed if set
VENV=${VENV:-$REPO_DIR/.venv}                              # LlamaFactory + builder env (pip install -e .)
VLLM_VENV=${VLLM_VENV:-$REPO_DIR/.venv-vllm}               # vLLM's own env (README: serving environment)
export HF_HOME=${HF_HOME:-$HOME/.cache/huggingface}        # model weights cache: a shared file system
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
# =============================================================================================================

# Load the modules and put VENV first on PATH (no `activate`: it is not needed and not `set -u` safe).
setup_cluster_env() {
  if [[ -n $MODULES ]]; then
    command -v module >/dev/null 2>&1 || { echo "MODULES=$MODULES is set but \`module\` is not available" >&2; return 1; }
    # shellcheck disable=SC2086
    module load $MODULES
  fi
  if [[ ! -x $VENV/bin/python ]]; then
    echo "VENV=$VENV has no bin/python: create it (README quickstart) or export VENV=/path/to/venv" >&2
    return 1
  fi
  export PATH="$VENV/bin:$PATH"
  export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
  PYTHON=$VENV/bin/python
}

# Extra sbatch options for jobs submitted from inside a job (partition / account from above).
sbatch_site_args() {
  [[ -z $PARTITION ]] || echo "--partition=$PARTITION"
  [[ -z $ACCOUNT ]] || echo "--account=$ACCOUNT"
  return 0
}
