#!/usr/bin/env bash
#SBATCH --job-name=fracto-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1             # one launcher per node; torchrun starts one process per GPU
#SBATCH --gres=gpu:8                    # an 8x A100 node (40 or 80 GB); fewer: --gres=gpu:4
#SBATCH --cpus-per-task=64              # data loading + image preprocessing workers
#SBATCH --mem=0                         # all of the node's memory (ZeRO-3 offload variants need it)
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%j.out         # mkdir -p logs before the first sbatch (Slurm does not create it)
#
# Fine-tune with a LlamaFactory recipe on one or many nodes (LoRA / DeepSpeed ZeRO-3).
#
# Usage: sbatch [--nodes=N] slurm/train.sh RECIPE.yaml [--set key=value ...] [key=value ...]
#        sbatch slurm/train.sh --recipe llamafactory_configs/qwen3vl_32b/lora_sft.yaml --set num_train_epochs=1
#        bash slurm/train.sh --help
#
# Flags:
#   RECIPE | --recipe FILE   the LlamaFactory YAML (required); relative paths inside it resolve against the
#                            job's working folder (the folder you ran sbatch in, or sbatch --chdir)
#   --set key=value          override a recipe key (repeatable; bare key=value works too), as
#                            `llamafactory-cli train RECIPE key=value` reads it
#   --dry-run                check everything and print each task's launcher variables; do not train
#   -h | --help              this text
#
# What it does, in order (nothing touches a GPU before step 3):
#   1. python -m training.recipe_check RECIPE --set ...  (LlamaFactory's own parser + our rules; a bad
#      recipe fails here in seconds with the checker's message) and a check that the dataset files exist;
#   2. resume: when output_dir holds checkpoint-* folders, adds resume_from_checkpoint=<latest>
#      overwrite_output_dir=false; writes output_dir/run_card.json (python -m training.run_card);
#   3. srun, one task per node (--kill-on-bad-exit=1): NNODES from Slurm, NODE_RANK = that node's
#      SLURM_NODEID, MASTER_ADDR = the job's first host, MASTER_PORT = 20000 + job id mod 20000 (probed
#      free), FORCE_TORCHRUN=1, NPROC_PER_NODE = the node's GPUs -> `llamafactory-cli train RECIPE key=value ...`
#
# Environment: NPROC_PER_NODE (override the GPU count; e.g. 1 on a CPU-only machine), MASTER_PORT,
#   DRY_RUN=1 (as --dry-run), SIMULATE_NODES=1 (test only: every task of a one-node job plays a node:
#   NODE_RANK = SLURM_PROCID, NNODES = SLURM_NTASKS), FRACTO_REPO (the repository, if it cannot be found),
#   and the cluster settings in slurm/cluster_settings.sh (PARTITION, ACCOUNT, MODULES, VENV, HF_HOME).
set -euo pipefail
START_TS=$(date +%s)
trap 'rc=$?; echo "train.sh: finished with exit code $rc after $(( $(date +%s) - START_TS ))s"' EXIT

usage() { sed -n '/^# Fine-tune/,/^set -euo/p' "$1" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "train.sh: error: $*" >&2; exit 2; }

# --- find the repository (under sbatch, $0 is a spooled copy: ask Slurm where the script came from) -----
find_repo() {
  local cand cmd=""
  if [[ -n ${FRACTO_REPO:-} ]]; then (cd "$FRACTO_REPO" && pwd); return; fi
  if [[ -n ${SLURM_JOB_ID:-} ]] && command -v scontrol >/dev/null; then
    cmd=$(scontrol show job "$SLURM_JOB_ID" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)
  fi
  for cand in "$(dirname "${cmd:-/nonexistent/x}")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
    if [[ -f $cand/slurm/train.sh && -d $cand/training ]]; then (cd "$cand" && pwd); return; fi
  done
  echo "train.sh: cannot find the FractoVLM repository; export FRACTO_REPO=/path/to/repo" >&2; return 1
}

# --- arguments ---------------------------------------------------------------------------------------------
RECIPE=""
OVERRIDES=()
DRY_RUN=${DRY_RUN:-0}
while (( $# )); do
  case $1 in
    -h|--help) usage "${BASH_SOURCE[0]}"; trap - EXIT; exit 0 ;;
    --recipe) [[ $# -ge 2 ]] || die "--recipe needs a file"; RECIPE=$2; shift 2 ;;
    --recipe=*) RECIPE=${1#*=}; shift ;;
    --set) [[ $# -ge 2 && $2 == *=* ]] || die "--set needs key=value"; OVERRIDES+=("$2"); shift 2 ;;
    --set=*) OVERRIDES+=("${1#*=}"); shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -*) die "unknown flag $1 (see --help)" ;;
    *=*) OVERRIDES+=("$1"); shift ;;
    *) [[ -z $RECIPE ]] || die "two recipes given: $RECIPE and $1"; RECIPE=$1; shift ;;
  esac
done
[[ -n $RECIPE ]] || die "missing the recipe: sbatch slurm/train.sh RECIPE.yaml (see --help)"
[[ -f $RECIPE ]] || die "recipe $RECIPE: no such file (relative to $(pwd))"
RECIPE=$(realpath "$RECIPE")

REPO_DIR=$(find_repo)
# shellcheck source=cluster_settings.sh
source "$REPO_DIR/slurm/cluster_settings.sh"
setup_cluster_env

SET_ARGS=()
for kv in "${OVERRIDES[@]}"; do SET_ARGS+=(--set "$kv"); done
echo "train.sh: job ${SLURM_JOB_ID:-none} on ${SLURM_JOB_NODELIST:-$(hostname -s)}, recipe $RECIPE ${OVERRIDES[*]}"

# --- 1. checks before any GPU is spent ---------------------------------------------------------------------
"$PYTHON" -m training.recipe_check "$RECIPE" "${SET_ARGS[@]}" \
  || die "recipe check failed (messages above); nothing was trained"
"$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --check-data \
  || die "dataset files missing (listed above); nothing was trained"

# --- 2. resume + run card ----------------------------------------------------------------------------------
OUTPUT_DIR=$("$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --get output_dir)
[[ -n $OUTPUT_DIR ]] || die "the recipe has no output_dir"
LATEST=""
if [[ -d $OUTPUT_DIR ]]; then
  LATEST=$(find "$OUTPUT_DIR" -maxdepth 1 -type d -name 'checkpoint-*' -printf '%f\n' | sort -t- -k2,2n | tail -1)
fi
if [[ -n $LATEST ]]; then
  echo "train.sh: resuming from $OUTPUT_DIR/$LATEST"
  OVERRIDES+=("resume_from_checkpoint=$OUTPUT_DIR/$LATEST" "overwrite_output_dir=false")
  SET_ARGS+=(--set "resume_from_checkpoint=$OUTPUT_DIR/$LATEST" --set "overwrite_output_dir=false")
fi

# --- 3. launcher layout ------------------------------------------------------------------------------------
if [[ ${SIMULATE_NODES:-0} == 1 ]]; then
  NNODES=${SLURM_NTASKS:-1}; RANK_VAR=SLURM_PROCID; SRUN_LAYOUT=(--ntasks="$NNODES")
else
  NNODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}; RANK_VAR=SLURM_NODEID
  SRUN_LAYOUT=(--nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1)
fi
if [[ -n ${SLURM_JOB_NODELIST:-} ]]; then
  MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
else
  MASTER_ADDR=127.0.0.1
fi
if [[ -z ${NPROC_PER_NODE:-} ]]; then
  if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then
    NPROC_PER_NODE=$SLURM_GPUS_ON_NODE
  elif [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    NPROC_PER_NODE=$(tr ',' '\n' <<< "$CUDA_VISIBLE_DEVICES" | grep -c .)
  else
    die "no GPUs in the allocation: request --gres=gpu:N, or set NPROC_PER_NODE=1 for a CPU run"
  fi
fi
if [[ -z ${MASTER_PORT:-} ]]; then
  # Derived from the job id so that two jobs on one node differ; probed here (this is the first host).
  MASTER_PORT=$(( 20000 + ${SLURM_JOB_ID:-$$} % 20000 ))
  for _ in $(seq 1 50); do
    "$PYTHON" -c "import socket,sys; s=socket.socket(); s.bind(('', int(sys.argv[1])))" "$MASTER_PORT" 2>/dev/null && break
    MASTER_PORT=$(( MASTER_PORT + 1 ))
  done
fi
export NNODES MASTER_ADDR MASTER_PORT NPROC_PER_NODE FORCE_TORCHRUN=1

if [[ $DRY_RUN != 1 ]]; then
  mkdir -p "$OUTPUT_DIR"
  "$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --out "$OUTPUT_DIR/run_card.json"
fi

LAUNCH=(llamafactory-cli train "$RECIPE" "${OVERRIDES[@]}")
[[ $DRY_RUN == 1 ]] && LAUNCH=(true)
# Evaluated inside each task: \$ keeps the variable for the task's own shell.
TASK_SCRIPT="export NODE_RANK=\$$RANK_VAR
echo \"launcher: task=\$SLURM_PROCID host=\$(hostname -s) NNODES=\$NNODES NODE_RANK=\$NODE_RANK MASTER_ADDR=\$MASTER_ADDR MASTER_PORT=\$MASTER_PORT NPROC_PER_NODE=\$NPROC_PER_NODE FORCE_TORCHRUN=\$FORCE_TORCHRUN\"
exec $(printf '%q ' "${LAUNCH[@]}")"

if [[ -n ${SLURM_JOB_ID:-} ]]; then
  srun "${SRUN_LAYOUT[@]}" --kill-on-bad-exit=1 bash -c "$TASK_SCRIPT"
else
  echo "train.sh: not inside a Slurm job: running one local task"
  SLURM_PROCID=0 SLURM_NODEID=0 bash -c "$TASK_SCRIPT"
fi
[[ $DRY_RUN == 1 ]] && echo "train.sh: dry run: checks passed, nothing trained" || echo "train.sh: training done: $OUTPUT_DIR"
