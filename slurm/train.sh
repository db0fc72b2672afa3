#!/usr/bin/env bash
#SBATCH --job-name=fracto-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1             # one launcher per node; torchrun starts one process per GPU
#SBATCH --gres=gpu:4                    # the 32B recipe's 4 GPUs (its effective batch 4 = 4 GPUs x 1 x 1)
#SBATCH --cpus-per-task=32              # data loading + image preprocessing workers (every srun gets them)
#SBATCH --mem=0                         # all of the node's memory (ZeRO-3 offload variants need it)
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%j.out         # mkdir -p logs before the first sbatch (Slurm does not create it)
#SBATCH --open-mode=append              # a requeued job appends to its log
#SBATCH --requeue
#SBATCH --signal=B:USR1@600             # 10 min before the time limit: save, then requeue (see below)
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
# What it does, in order (nothing touches a GPU before step 4):
#   1. python -m training.recipe_check RECIPE --set ...  (LlamaFactory's own parser + our rules; a bad
#      recipe fails here in seconds with the checker's message) and a check that the dataset files exist;
#   2. python -m training.launch_plan: gradient_accumulation_steps = the recipe's target effective batch
#      (`# fracto: effective_batch=N` line) / (nodes x GPUs per node x per_device_train_batch_size), refused
#      when not exact; resume from the newest COMPLETE checkpoint-* in output_dir (incomplete ones are named
#      and skipped; a ZeRO checkpoint saved at another world size is refused);
#   3. writes output_dir/run_card.json (python -m training.run_card: data file hashes, model revision, git,
#      allocation, effective batch);
#   4. srun, one task per node, with the job's CPUs (--cpus-per-task; srun does not inherit them since Slurm
#      22.05) and --kill-on-bad-exit=1: NNODES from Slurm, NODE_RANK = that node's SLURM_NODEID,
#      MASTER_ADDR = the job's first host, MASTER_PORT = 20000 + job id mod 20000 (probed free), RDZV_ID =
#      job id, NPROC_PER_NODE = the node's GPUs -> `python -m training.launch RECIPE key=value ...` (torchrun
#      with c10d rendezvous -> LlamaFactory's run_exp, as `llamafactory-cli train` with FORCE_TORCHRUN=1).
#
# Time limit / preemption: Slurm sends USR1 to this script 10 min before the limit (--signal, or
#   `scancel --batch --signal=USR1 JOB`); the trap writes output_dir/.preempt_requested, every rank saves a
#   checkpoint at the next step and stops, then the script runs `scontrol requeue` on its own job: the job
#   starts again (same id, log appended) and resumes from that checkpoint.
# Compute nodes run offline (HF_HUB_OFFLINE=1 ...; FRACTO_ONLINE=1 turns it off): download the base model on
#   a login node first, pinned to the recipe's model_revision: python -m training.predownload RECIPE.
#
# Environment: NPROC_PER_NODE (override the GPU count; e.g. 1 on a CPU-only machine), MASTER_PORT,
#   EFFECTIVE_BATCH (override the recipe's target), DRY_RUN=1 (as --dry-run), SIMULATE_NODES=1 (test only:
#   every task of a one-node job plays a node: NODE_RANK = SLURM_PROCID, NNODES = SLURM_NTASKS),
#   FRACTO_REPO (the repository, if it cannot be found), and the cluster settings in slurm/common.sh
#   (PARTITION, ACCOUNT, MODULES, VENV, HF_HOME).
for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
  [[ -f $d/slurm/common.sh ]] && break; done  # sbatch runs a spooled copy: find the repository (common.sh)
source "$d/slurm/common.sh" train || { echo "train.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }

# --- arguments ---------------------------------------------------------------------------------------------
RECIPE=""
OVERRIDES=()
DRY_RUN=${DRY_RUN:-0}
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
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
setup_cluster_env
set_args() { SET_ARGS=(); for kv in "${OVERRIDES[@]}"; do SET_ARGS+=(--set "$kv"); done; }
set_args
echo "train.sh: job ${SLURM_JOB_ID:-none} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname -s)}," \
     "recipe $RECIPE ${OVERRIDES[*]}"

# --- 1. checks before any GPU is spent ---------------------------------------------------------------------
"$PYTHON" -m training.recipe_check "$RECIPE" "${SET_ARGS[@]}" \
  || die "recipe check failed (messages above); nothing was trained"
"$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --check-data \
  || die "dataset files missing (listed above); nothing was trained"
OUTPUT_DIR=$("$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --get output_dir)
[[ -n $OUTPUT_DIR ]] || die "the recipe has no output_dir"

# --- launcher layout ---------------------------------------------------------------------------------------
if [[ ${SIMULATE_NODES:-0} == 1 ]]; then
  NNODES=${SLURM_NTASKS:-1}; RANK_VAR=SLURM_PROCID; SRUN_LAYOUT=(--ntasks="$NNODES")
else
  NNODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}; RANK_VAR=SLURM_NODEID
  SRUN_LAYOUT=(--nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1)
fi
# Every task gets the job's CPUs: srun does not inherit --cpus-per-task since Slurm 22.05 (see common.sh).
[[ -n ${SLURM_CPUS_PER_TASK:-} ]] && SRUN_LAYOUT+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
if [[ -n ${SLURM_JOB_NODELIST:-} ]]; then  # the first node's address as Slurm knows it (NodeAddr)
  FIRST_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
  MASTER_ADDR=$(scontrol show node "$FIRST_NODE" -o | sed -n 's/.* NodeAddr=\([^ ]*\).*/\1/p')
  MASTER_ADDR=${MASTER_ADDR:-$FIRST_NODE}
else
  MASTER_ADDR=127.0.0.1
fi
NPROC_PER_NODE=${NPROC_PER_NODE:-$(allocation_gpus)}
[[ -n $NPROC_PER_NODE ]] || die "no GPUs in the allocation: request --gres=gpu:N, or set NPROC_PER_NODE=1 for a CPU run"
# Derived from the job id so that two jobs on one node differ; probed here (this is the first host).
MASTER_PORT=${MASTER_PORT:-$(free_port_from $(( 20000 + ${SLURM_JOB_ID:-$$} % 20000 )))}
RDZV_ID=${SLURM_JOB_ID:-$$}
PREEMPT_FLAG=$(realpath -m "$OUTPUT_DIR")/.preempt_requested
export NNODES MASTER_ADDR MASTER_PORT NPROC_PER_NODE RDZV_ID FRACTO_PREEMPT_FLAG=$PREEMPT_FLAG

# --- 2. effective batch and resume -------------------------------------------------------------------------
PLAN=$("$PYTHON" -m training.launch_plan --recipe "$RECIPE" "${SET_ARGS[@]}" --nodes "$NNODES" \
       --gpus-per-node "$NPROC_PER_NODE" ${EFFECTIVE_BATCH:+--effective-batch "$EFFECTIVE_BATCH"}) \
  || die "cannot launch as allocated (reason above); nothing was trained"
[[ -n $PLAN ]] && mapfile -t -O "${#OVERRIDES[@]}" OVERRIDES <<< "$PLAN"
set_args

# --- 3. run card -------------------------------------------------------------------------------------------
if [[ $DRY_RUN != 1 ]]; then
  mkdir -p "$OUTPUT_DIR"
  rm -f "$PREEMPT_FLAG" "$PREEMPT_FLAG.saved"
  "$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --out "$OUTPUT_DIR/run_card.json"
fi

# --- 4. one launcher task per node -------------------------------------------------------------------------
LAUNCH=("$PYTHON" -m training.launch "$RECIPE" "${OVERRIDES[@]}")
[[ $DRY_RUN == 1 ]] && LAUNCH=(true)
# Evaluated inside each task: \$ keeps the variable for the task's own shell.
TASK_SCRIPT="export NODE_RANK=\$$RANK_VAR
echo \"launcher: task=\$SLURM_PROCID host=\${SLURMD_NODENAME:-\$(hostname -s)} NNODES=\$NNODES NODE_RANK=\$NODE_RANK MASTER_ADDR=\$MASTER_ADDR MASTER_PORT=\$MASTER_PORT NPROC_PER_NODE=\$NPROC_PER_NODE RDZV_ID=\$RDZV_ID cpus=\$(nproc) SLURM_CPUS_PER_TASK=\${SLURM_CPUS_PER_TASK:-}\"
exec $(printf '%q ' "${LAUNCH[@]}")"

on_usr1() {
  echo "train.sh: got USR1 (time limit or preemption ahead): asking the trainer to save and stop"
  touch "$PREEMPT_FLAG"
}
if [[ -n ${SLURM_JOB_ID:-} ]]; then
  trap on_usr1 USR1
  srun "${SRUN_LAYOUT[@]}" --kill-on-bad-exit=1 bash -c "$TASK_SCRIPT" &
  SRUN_PID=$!
  rc=0
  # `wait` returns early when the trap runs; wait again until srun itself has ended.
  while :; do
    wait "$SRUN_PID" && rc=0 || rc=$?
    kill -0 "$SRUN_PID" 2>/dev/null || break
  done
  trap - USR1
  (( rc == 0 )) || die "training failed (srun exit code $rc)"
else
  echo "train.sh: not inside a Slurm job: running one local task"
  SLURM_PROCID=0 SLURM_NODEID=0 bash -c "$TASK_SCRIPT"
fi
if [[ -f $PREEMPT_FLAG.saved ]]; then
  echo "train.sh: checkpoint saved at step $(cat "$PREEMPT_FLAG.saved"); requeueing job $SLURM_JOB_ID"
  rm -f "$PREEMPT_FLAG" "$PREEMPT_FLAG.saved"
  scontrol requeue "$SLURM_JOB_ID" || die "scontrol requeue $SLURM_JOB_ID failed: resubmit by hand (it resumes)"
  sleep 30 & wait $!  # Slurm ends this run now; the requeued job starts again from the top
  exit 0
fi
rm -f "$PREEMPT_FLAG"
[[ $DRY_RUN == 1 ]] && echo "train.sh: dry run: checks passed, nothing trained" || echo "train.sh: training done: $OUTPUT_DIR"
