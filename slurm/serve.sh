#!/usr/bin/env bash
#SBATCH --job-name=fracto-serve
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:4                    # tensor parallel size = the GPUs you get (32B bf16: 4x A100 40 GB or 2x 80 GB)
#SBATCH --cpus-per-task=16
#SBATCH --mem=0
#SBATCH --time=1-00:00:00
#SBATCH --output=logs/%x-%j.out
#
# Serve a trained model behind an OpenAI-compatible API (vLLM), where slurm/eval.sh and eval.run find it.
#
# Usage: sbatch slurm/serve.sh --recipe RECIPE.yaml --adapter saves/run          # base + LoRA adapter
#        sbatch slurm/serve.sh --recipe RECIPE.yaml --merged saves/run-merged    # merged (slurm/merge.sh)
#        bash slurm/serve.sh --recipe RECIPE.yaml --adapter saves/run --dry-run  # print the command only
#
# Flags:
#   --recipe FILE          the training recipe: base model, template and pixel budget (required)
#   --adapter DIR | --merged DIR   what to serve (one of them; neither: the recipe's base model)
#   --set key=value        recipe override, as in training (repeatable)
#   --model-name NAME      the name clients ask for (default: the adapter's / merged model's folder name)
#   --port N               default: 8000 + job id mod 1000, probed free
#   --max-model-len N      default: the recipe's cutoff_len
#   --out DIR              where endpoint.json and the server log go (default: logs/serve-<job id>)
#   --health-timeout S     seconds to wait for the server to answer (default 1800: weights take a while)
#   --dry-run              print the server command line and exit
#   -h | --help            this text
#
# The command comes from `python -m training.serving` (one template, tested in Python): vLLM from its
# own environment (VLLM_VENV in slurm/common.sh), --tensor-parallel-size = the allocation's
# GPUs, --max-lora-rank >= the adapter's rank, the recipe's image_max_pixels as the processor's max_pixels,
# --limit-mm-per-prompt.video 0. SERVE_BACKEND=llamafactory serves with `llamafactory-cli api` instead
# (the CPU stand-in used by the tests; same template and pixel budget).
#
# Endpoint: once the server answers (vLLM: GET /health; llamafactory: GET /v1/models), the script writes
#   OUT/endpoint.json and the well-known copy $ENDPOINT_DIR/<model name>.json (ENDPOINT_DIR defaults to
#   <repository>/output/endpoints), each {"base_url": "http://<host>:<port>/v1", "model": <name>, ...}.
#   slurm/eval.sh --model <name> reads the well-known file. Both files are removed when the server stops.
#   SERVE_HOST (default 0.0.0.0; the endpoint then names this node) sets the bind address.
for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
  [[ -f $d/slurm/common.sh ]] && break; done  # sbatch runs a spooled copy: find the repository (common.sh)
source "$d/slurm/common.sh" serve || { echo "serve.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }
SERVER_PID=""
job_cleanup() {  # run by common.sh's exit trap: the endpoint files go, the server stops
  [[ -n ${ENDPOINT_FILES[*]:-} ]] && rm -f "${ENDPOINT_FILES[@]}"
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
  fi
  return 0
}
trap 'exit 143' TERM INT

RECIPE="" OUT="" PORT="${PORT:-}" DRY_RUN=0 TIMEOUT=1800
SERVING_ARGS=()
OVERRIDES=()
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
    --recipe) [[ $# -ge 2 ]] || die "--recipe needs a file"; RECIPE=$2; shift 2 ;;
    --adapter|--merged|--model-name|--max-model-len)
      [[ $# -ge 2 ]] || die "$1 needs a value"; SERVING_ARGS+=("$1" "$2"); shift 2 ;;
    --set) [[ $# -ge 2 && $2 == *=* ]] || die "--set needs key=value"; OVERRIDES+=(--set "$2"); shift 2 ;;
    --port) [[ $# -ge 2 ]] || die "--port needs a number"; PORT=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; OUT=$2; shift 2 ;;
    --health-timeout) [[ $# -ge 2 ]] || die "--health-timeout needs seconds"; TIMEOUT=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ -n $RECIPE ]] || die "missing --recipe FILE (see --help)"
[[ -f $RECIPE ]] || die "--recipe $RECIPE: no such file"

setup_cluster_env
BACKEND=${SERVE_BACKEND:-vllm}
HOST=${SERVE_HOST:-0.0.0.0}
ENDPOINT_DIR=${ENDPOINT_DIR:-$REPO_DIR/output/endpoints}
OUT=${OUT:-logs/serve-${SLURM_JOB_ID:-$$}}

# Tensor parallel size: the GPUs of the allocation (TP_SIZE overrides).
TP_SIZE=${TP_SIZE:-$(allocation_gpus)}
TP_SIZE=${TP_SIZE:-1}
[[ -n $PORT ]] || PORT=$(free_port_from $(( 8000 + ${SLURM_JOB_ID:-$$} % 1000 )))

SERVING=("$PYTHON" -m training.serving --recipe "$RECIPE" "${OVERRIDES[@]}" "${SERVING_ARGS[@]}" --backend "$BACKEND")
MODEL_NAME=$("${SERVING[@]}" --print-model-name)
HEALTH_PATH=$("${SERVING[@]}" --print-health-path)
WEIGHTS=$("${SERVING[@]}" --print-weights)  # local weight folders: eval fingerprints them (eval/identity.py)
if [[ $BACKEND == vllm ]]; then
  CMD_TEXT=$("${SERVING[@]}" --tensor-parallel-size "$TP_SIZE" --host "$HOST" --port "$PORT" \
             --vllm-bin "$VLLM_VENV/bin/vllm" --print-args)
else
  mkdir -p "$OUT"
  CMD_TEXT=$("${SERVING[@]}" --api-config "$(realpath -m "$OUT")/api_config.yaml" --print-args)
  export API_HOST=$HOST API_PORT=$PORT API_MODEL_NAME=$MODEL_NAME
fi
mapfile -t CMD <<< "$CMD_TEXT"
echo "serve.sh: $BACKEND command:"
printf '%q ' "${CMD[@]}"; echo
if [[ $DRY_RUN == 1 ]]; then
  trap - EXIT; exit 0
fi
if [[ $BACKEND == vllm && ! -x $VLLM_VENV/bin/vllm ]]; then
  die "no vLLM at $VLLM_VENV/bin/vllm: install it in its own environment (docs/training.md) or export VLLM_VENV"
fi

mkdir -p "$OUT" "$ENDPOINT_DIR"
OUT=$(realpath "$OUT")
"${CMD[@]}" > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
ADVERTISED=$HOST
[[ $HOST == 0.0.0.0 ]] && ADVERTISED=$(hostname -f 2>/dev/null || hostname)
BASE_URL="http://$ADVERTISED:$PORT/v1"
HEALTH_URL="http://$([[ $HOST == 0.0.0.0 ]] && echo 127.0.0.1 || echo "$HOST"):$PORT$HEALTH_PATH"
echo "serve.sh: waiting up to ${TIMEOUT}s for $HEALTH_URL (server log: $OUT/server.log)"
deadline=$((SECONDS + TIMEOUT))
until "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" "$HEALTH_URL" 2>/dev/null; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -20 "$OUT/server.log" >&2; die "the server exited before answering (log: $OUT/server.log)"
  fi
  if (( SECONDS >= deadline )); then
    tail -20 "$OUT/server.log" >&2; die "no answer from $HEALTH_URL after ${TIMEOUT}s"
  fi
  sleep 2
done

ENDPOINT_FILES=("$OUT/endpoint.json" "$ENDPOINT_DIR/$MODEL_NAME.json")
"$PYTHON" - "$BASE_URL" "$MODEL_NAME" "$BACKEND" "$WEIGHTS" "${ENDPOINT_FILES[@]}" <<'PY'
import json, os, sys
base_url, model, backend, weights, *files = sys.argv[1:]
card = {"base_url": base_url, "model": model, "backend": backend, "job_id": os.environ.get("SLURM_JOB_ID"),
        "host": os.uname().nodename, "weights": [w for w in weights.splitlines() if w]}
for f in files:
    tmp = f + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(card, indent=1) + "\n")
    os.replace(tmp, f)
PY
echo "serve.sh: serving $MODEL_NAME at $BASE_URL (endpoint: $OUT/endpoint.json, $ENDPOINT_DIR/$MODEL_NAME.json)"
echo "serve.sh: ready after $(( $(date +%s) - START_TS ))s"
wait "$SERVER_PID"
