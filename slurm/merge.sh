#!/usr/bin/env bash
#SBATCH --job-name=fracto-merge
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=0                         # the merge holds the full model in CPU memory (32B bf16: ~65 GB)
#SBATCH --time=04:00:00
#SBATCH --output=logs/%x-%j.out
#
# Merge a LoRA adapter into its base model (llamafactory-cli export on the CPU), for serving without LoRA.
#
# Usage: sbatch slurm/merge.sh --recipe RECIPE.yaml --adapter saves/run --out saves/run-merged [--set key=value ...]
#
# Flags:
#   --recipe FILE      the training recipe (base model, template, pixel budget: the same as in training)
#   --adapter DIR      the trained adapter (the recipe's output_dir)
#   --out DIR          where the merged model goes (export_dir)
#   --set key=value    override a recipe key, as in training (repeatable)
#   --shard-size SIZE  export_size in GB per safetensors file (default 5)
#   -h | --help        this text
# The export runs with export_device: cpu (no GPU needed); OUT/merge_config.yaml, the file it exports from, records
# the inputs of the merge (base model and revision, adapter, template, pixel budget).
for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
  [[ -f $d/slurm/common.sh ]] && break; done  # sbatch runs a spooled copy: find the repository (common.sh)
source "$d/slurm/common.sh" merge || { echo "merge.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }

RECIPE="" ADAPTER="" OUT="" SIZE=5
OVERRIDES=()
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
    --recipe) [[ $# -ge 2 ]] || die "--recipe needs a file"; RECIPE=$2; shift 2 ;;
    --adapter) [[ $# -ge 2 ]] || die "--adapter needs a folder"; ADAPTER=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; OUT=$2; shift 2 ;;
    --set) [[ $# -ge 2 && $2 == *=* ]] || die "--set needs key=value"; OVERRIDES+=("$2"); shift 2 ;;
    --shard-size) [[ $# -ge 2 ]] || die "--shard-size needs a number"; SIZE=$2; shift 2 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ -n $RECIPE ]] || die "missing --recipe FILE (see --help)"
[[ -n $ADAPTER ]] || die "missing --adapter DIR (see --help)"
[[ -n $OUT ]] || die "missing --out DIR (see --help)"
[[ -f $RECIPE ]] || die "--recipe $RECIPE: no such file"
[[ -f $ADAPTER/adapter_config.json ]] || die "--adapter $ADAPTER: no adapter_config.json (not a LoRA adapter folder)"

setup_cluster_env

SET_ARGS=()
for kv in "${OVERRIDES[@]}"; do SET_ARGS+=(--set "$kv"); done
get() { "$PYTHON" -m training.run_card --recipe "$RECIPE" "${SET_ARGS[@]}" --get "$1"; }
MODEL=$(get model_name_or_path)
REVISION=$(get model_revision)  # the base commit the adapter was trained on (a pinned recipe)
TEMPLATE=$(get template)
MAX_PIXELS=$(get image_max_pixels)
MIN_PIXELS=$(get image_min_pixels)
TRUST=$(get trust_remote_code)
mkdir -p "$OUT"
CONFIG=$(realpath "$OUT")/merge_config.yaml
{
  echo "# written by slurm/merge.sh from $RECIPE"
  echo "model_name_or_path: $MODEL"
  [[ -n $REVISION ]] && echo "model_revision: $REVISION"
  echo "adapter_name_or_path: $(realpath "$ADAPTER")"
  echo "template: ${TEMPLATE:-qwen3_vl_nothink}"
  echo "finetuning_type: lora"
  echo "trust_remote_code: ${TRUST:-true}"
  [[ -n $MAX_PIXELS ]] && echo "image_max_pixels: $MAX_PIXELS"
  [[ -n $MIN_PIXELS ]] && echo "image_min_pixels: $MIN_PIXELS"
  echo "export_dir: $(realpath "$OUT")"
  echo "export_size: $SIZE"
  echo "export_device: cpu"
  echo "export_legacy_format: false"
} > "$CONFIG"
echo "merge.sh: $MODEL + $ADAPTER -> $OUT"
llamafactory-cli export "$CONFIG"
[[ -f $OUT/config.json ]] || die "export finished but $OUT/config.json is missing"
echo "merge.sh: merged model in $OUT"
