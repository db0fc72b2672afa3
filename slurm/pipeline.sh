#!/usr/bin/env bash
#
# Submit the whole chain with one command: train -> merge -> serve + eval, linked by Slurm dependencies.
#
# Usage: bash slurm/pipeline.sh --recipe RECIPE.yaml --model-name NAME [--set key=value ...] [-- eval.run flags]
#        bash slurm/pipeline.sh --recipe llamafactory_configs/qwen3vl_32b/lora_sft_zero3.yaml --model-name fracto-32b \
#             -- --benchmark output/fracto/benchmark/labels.csv
#
# Flags:
#   --recipe FILE        the training recipe (required)
#   --model-name NAME    the name the server answers to and the eval scores (required)
#   --set key=value      recipe override, given to train, merge and serve alike (repeatable)
#   --merged-out DIR     where the merged model goes (default: <output_dir>-merged)
#   --wait S             how long eval waits for the server's endpoint file (default 7200)
#   --dry-run            print the four sbatch commands; submit nothing
#   -- ARGS              everything after -- goes to python -m eval.run
#   -h | --help          this text
#
# Jobs: train (slurm/train.sh) -> merge (--dependency=afterok:train; slurm/merge.sh) -> serve
# (--dependency=afterok:merge; slurm/serve.sh --merged) -> eval (--dependency=after:serve, i.e. once the
# server job starts; slurm/eval.sh waits for the endpoint file, scores, then cancels the server job). A failed
# step cancels the ones after it (--kill-on-invalid-dep=yes). Each step is also runnable alone (its own
# script). Extra sbatch options per step: TRAIN_SBATCH, MERGE_SBATCH, SERVE_SBATCH, EVAL_SBATCH (e.g.
# TRAIN_SBATCH="--nodes=2"); partition / account from slurm/common.sh. Prints the four job ids.
for d in "${FRACTO_REPO:-}" "$(dirname "${BASH_SOURCE[0]}")/.."; do [[ -f $d/slurm/common.sh ]] && break; done
source "$d/slurm/common.sh" pipeline || { echo "pipeline.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }

RECIPE="" NAME="" MERGED="" WAIT=7200 DRY_RUN=0
SETS=() EVAL_ARGS=()
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
    --recipe) [[ $# -ge 2 ]] || die "--recipe needs a file"; RECIPE=$2; shift 2 ;;
    --model-name) [[ $# -ge 2 ]] || die "--model-name needs a name"; NAME=$2; shift 2 ;;
    --set) [[ $# -ge 2 && $2 == *=* ]] || die "--set needs key=value"; SETS+=(--set "$2"); shift 2 ;;
    --merged-out) [[ $# -ge 2 ]] || die "--merged-out needs a folder"; MERGED=$2; shift 2 ;;
    --wait) [[ $# -ge 2 ]] || die "--wait needs seconds"; WAIT=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; EVAL_ARGS=("$@"); break ;;
    *) die "unknown argument $1 (see --help; eval.run flags go after --)" ;;
  esac
done
[[ -n $RECIPE ]] || die "missing --recipe FILE (see --help)"
[[ -n $NAME ]] || die "missing --model-name NAME (see --help)"
[[ -f $RECIPE ]] || die "--recipe $RECIPE: no such file"
setup_cluster_env
OUTPUT_DIR=$("$PYTHON" -m training.run_card --recipe "$RECIPE" "${SETS[@]}" --get output_dir)
[[ -n $OUTPUT_DIR ]] || die "the recipe has no output_dir"
OUTPUT_DIR=$(realpath -m "$OUTPUT_DIR")
MERGED=$(realpath -m "${MERGED:-$OUTPUT_DIR-merged}")
mapfile -t SITE < <(sbatch_site_args)
mkdir -p logs  # the scripts' #SBATCH --output=logs/...: Slurm does not create the folder

submit() {  # STEP_VAR_NAME sbatch-args... : prints the job id
  local extra=$1; shift
  # shellcheck disable=SC2206
  local cmd=(sbatch --parsable --kill-on-invalid-dep=yes "${SITE[@]}" ${!extra:-} "$@")
  if [[ $DRY_RUN == 1 ]]; then printf '%q ' "${cmd[@]}" >&2; echo >&2; echo "DRY"; return; fi
  local id; id=$("${cmd[@]}") || die "sbatch failed: ${cmd[*]}"
  echo "${id%%;*}"
}
TRAIN=$(submit TRAIN_SBATCH "$REPO_DIR/slurm/train.sh" "$RECIPE" "${SETS[@]}")
MERGE=$(submit MERGE_SBATCH --dependency="afterok:$TRAIN" "$REPO_DIR/slurm/merge.sh" --recipe "$RECIPE" "${SETS[@]}" \
        --adapter "$OUTPUT_DIR" --out "$MERGED")
SERVE=$(submit SERVE_SBATCH --dependency="afterok:$MERGE" "$REPO_DIR/slurm/serve.sh" --recipe "$RECIPE" "${SETS[@]}" \
        --merged "$MERGED" --model-name "$NAME")
EVAL=$(submit EVAL_SBATCH --dependency="after:$SERVE" "$REPO_DIR/slurm/eval.sh" --model "$NAME" --wait "$WAIT" \
       --stop-job "$SERVE" -- "${EVAL_ARGS[@]}")
echo "pipeline.sh: train $TRAIN -> merge $MERGE -> serve $SERVE + eval $EVAL (squeue -u ${USER:-$(id -un)}; logs in logs/)"
trap - EXIT
