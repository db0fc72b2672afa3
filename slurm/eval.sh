#!/usr/bin/env bash
#SBATCH --job-name=fracto-eval
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4               # the eval is a client: requests to the server, metrics on the CPU
#SBATCH --mem=16G
#SBATCH --time=06:00:00
#SBATCH --output=logs/%x-%j.out
#
# Score a model served by slurm/serve.sh on a benchmark (python -m eval.run against its endpoint).
#
# Usage: sbatch --dependency=after:<serve job> slurm/eval.sh --model NAME [--endpoint FILE] [-- eval.run flags]
#
# Flags:
#   --model NAME       the served model's name (serve.sh prints it; default endpoint: $ENDPOINT_DIR/NAME.json)
#   --endpoint FILE    the endpoint file serve.sh wrote (OUT/endpoint.json or the well-known copy)
#   --wait S           seconds to wait for the endpoint file to appear (default 0: it must exist already;
#                      useful with --dependency=after:<serve job>, which starts eval as the server starts)
#   --stop-job ID      cancel this job (the server's) when the eval ends, passed or failed (slurm/pipeline.sh)
#   -- ARGS            everything after -- goes to python -m eval.run unchanged
#   -h | --help        this text
# ENDPOINT_DIR defaults to <repository>/output/endpoints (where serve.sh writes).
for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
  [[ -f $d/slurm/common.sh ]] && break; done  # sbatch runs a spooled copy: find the repository (common.sh)
source "$d/slurm/common.sh" eval || { echo "eval.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }

MODEL="" ENDPOINT="" WAIT=0 STOP_JOB=""
EVAL_ARGS=()
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
    --model) [[ $# -ge 2 ]] || die "--model needs a name"; MODEL=$2; shift 2 ;;
    --endpoint) [[ $# -ge 2 ]] || die "--endpoint needs a file"; ENDPOINT=$2; shift 2 ;;
    --wait) [[ $# -ge 2 ]] || die "--wait needs seconds"; WAIT=$2; shift 2 ;;
    --stop-job) [[ $# -ge 2 ]] || die "--stop-job needs a job id"; STOP_JOB=$2; shift 2 ;;
    --) shift; EVAL_ARGS=("$@"); break ;;
    *) die "unknown argument $1 (see --help; eval.run flags go after --)" ;;
  esac
done
[[ -n $MODEL ]] || die "missing --model NAME (see --help)"
job_cleanup() { [[ -z $STOP_JOB ]] || { scancel "$STOP_JOB" && echo "eval.sh: cancelled the server job $STOP_JOB"; }; }

ENDPOINT=${ENDPOINT:-${ENDPOINT_DIR:-$REPO_DIR/output/endpoints}/$MODEL.json}
deadline=$((SECONDS + WAIT))
until [[ -f $ENDPOINT ]]; do
  (( SECONDS < deadline )) || die "no endpoint file $ENDPOINT: start the server first (sbatch slurm/serve.sh ...; it writes the file once it answers)"
  sleep 5
done
setup_cluster_env
BASE_URL=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['base_url'])" "$ENDPOINT") \
  || die "$ENDPOINT: not an endpoint file (expected JSON with base_url)"
echo "eval.sh: $MODEL at $BASE_URL"
"$PYTHON" -m eval.run --model "$MODEL" --base-url "$BASE_URL" "${EVAL_ARGS[@]}"
