#!/usr/bin/env bash
#SBATCH --job-name=fracto-build
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8               # the builder's --workers (mining and panel splitting are parallel)
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=logs/%x-%A_%a.out      # mkdir -p logs first; %A = array job id, %a = task index
#
# Build the dataset from a PDF folder as a Slurm job array: K shards mine in parallel, one merge job
# runs the remaining stages over the whole folder.
#
# Usage: sbatch --array=0-3 slurm/build.sh --papers PDFS/ --out runs/ds1 [--manual rare/] [builder flags]
#        sbatch slurm/build.sh --papers PDFS/ --out runs/ds1              # no array: one plain build
#        bash slurm/build.sh --shard 0/4 --papers PDFS/ --out runs/ds1    # one shard by hand (no Slurm)
#        bash slurm/build.sh --merge --shards 4 --papers PDFS/ --out runs/ds1
#
# Flags:
#   --papers DIR       the PDF folder (required)          --out DIR    the builder's output folder (required)
#   --shard I/K        mine shard I of K (default inside an array: SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT)
#   --merge            merge the K shards (--shards K) into OUT and run the remaining stages
#   --shards K         number of shards, for --merge
#   --no-merge-job     in an array: do not submit the merge job (run --merge yourself later)
#   -h | --help        this text
#   Any other flag goes to `python -m dataset_builders.build` unchanged (--manual, --seed, --labeler, ...),
#   in the shards and in the merge alike; --workers defaults to the job's CPUs.
#
# How the shards work: the folder's files, sorted by their path relative to --papers (the builder's own
# order), go to shard (index mod K). A shard is a mirror of that relative tree made of symlinks in
# OUT/shards/I-of-K/papers, so every source_pdf the miner records (a path relative to the papers folder)
# is the same as in a single build; the shard builds `--to-stage panels` into OUT/shards/I-of-K. The
# first array task submits the merge job with --dependency=afterok:<array job> (cancelled if a shard fails)
# and writes its job id to OUT/merge_job_id. The merge hard-links every shard's per-paper files
# (stages/mine/<paper_id>, stages/panels/<paper_id>*; paper ids are content hashes) into OUT/stages and
# runs the full build over --papers, which resumes those papers and runs the later stages, so the dataset
# equals a single build's. A paper id found in two shards (the same PDF twice) is left to the merge to
# mine again, so the duplicate is resolved in the builder's order. Shard folders are deleted after a
# successful merge (KEEP_SHARDS=1 keeps them).
for d in "${FRACTO_REPO:-}" "$(dirname "$(scontrol show job "${SLURM_JOB_ID:-0}" -o 2>/dev/null | sed -n 's/.* Command=\([^ ]*\).*/\1/p' | head -n 1)")/.." "$(dirname "${BASH_SOURCE[0]}")/.." "${SLURM_SUBMIT_DIR:-.}"; do
  [[ -f $d/slurm/common.sh ]] && break; done  # sbatch runs a spooled copy: find the repository (common.sh)
source "$d/slurm/common.sh" build || { echo "build.sh: cannot find the FractoVLM repository: export FRACTO_REPO=/path/to/repo" >&2; exit 2; }

# --- arguments ---------------------------------------------------------------------------------------------
ORIG_ARGS=("$@")
PAPERS="" OUT="" SHARD="" MERGE=0 SHARDS="" MERGE_JOB=1
BUILDER_ARGS=()
while (( $# )); do
  case $1 in
    -h|--help) show_help ;;
    --papers) [[ $# -ge 2 ]] || die "--papers needs a folder"; PAPERS=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; OUT=$2; shift 2 ;;
    --shard) [[ $# -ge 2 ]] || die "--shard needs I/K"; SHARD=$2; shift 2 ;;
    --shards) [[ $# -ge 2 ]] || die "--shards needs K"; SHARDS=$2; shift 2 ;;
    --merge) MERGE=1; shift ;;
    --no-merge-job) MERGE_JOB=0; shift ;;
    --from-stage|--to-stage|--fresh|--papers=*|--out=*)
      die "$1 is not available here (the script chooses the stages; give --papers/--out as two words)" ;;
    *) BUILDER_ARGS+=("$1"); shift ;;
  esac
done
[[ -n $PAPERS ]] || die "missing --papers DIR (see --help)"
[[ -n $OUT ]] || die "missing --out DIR (see --help)"
[[ -d $PAPERS ]] || die "--papers $PAPERS: no such folder"
PAPERS=$(realpath "$PAPERS")
OUT=$(realpath -m "$OUT")

if [[ -z $SHARD && $MERGE == 0 && -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
  [[ ${SLURM_ARRAY_TASK_MIN:-0} == 0 && ${SLURM_ARRAY_TASK_MAX:-} == $(( SLURM_ARRAY_TASK_COUNT - 1 )) ]] \
    || die "use a contiguous array starting at 0 (--array=0-$(( SLURM_ARRAY_TASK_COUNT - 1 ))); got ${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX}"
  SHARD="$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
fi

setup_cluster_env
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]] && ! printf '%s\n' "${BUILDER_ARGS[@]}" | grep -q -- '^--workers'; then
  BUILDER_ARGS+=(--workers "$SLURM_CPUS_PER_TASK")
fi
build() { "$PYTHON" -m dataset_builders.build --quiet "$@" "${BUILDER_ARGS[@]}"; }

# --- one shard ---------------------------------------------------------------------------------------------
run_shard() {
  local i=${SHARD%/*} k=${SHARD#*/} dir files rel n=0 idx=0
  [[ $i =~ ^[0-9]+$ && $k =~ ^[0-9]+$ && $k -ge 1 && $i -lt $k ]] || die "--shard $SHARD: expected I/K with 0 <= I < K"
  dir=$OUT/shards/$i-of-$k
  rm -rf "$dir/papers"; mkdir -p "$dir/papers"
  # Sorted like the builder sorts (relative POSIX path, code-point order = C-locale byte order in UTF-8).
  while IFS= read -r -d '' rel; do
    if (( idx % k == i )); then
      mkdir -p "$dir/papers/$(dirname "$rel")"
      ln -s "$PAPERS/$rel" "$dir/papers/$rel"
      n=$((n + 1))
    fi
    idx=$((idx + 1))
  done < <(cd "$PAPERS" && find . \( -type f -o -type l \) -printf '%P\0' | LC_ALL=C sort -z)
  echo "build.sh: shard $i/$k: $n of $idx files -> $dir"
  build --papers "$dir/papers" --out "$dir" --to-stage panels
}

# --- the merge ---------------------------------------------------------------------------------------------
link_tree() {  # hard links when possible (same file system), else a copy
  cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }
}

run_merge() {
  local k=$SHARDS i pid d linked=0 dup=0
  [[ $k =~ ^[0-9]+$ && $k -ge 1 ]] || die "--merge needs --shards K"
  for i in $(seq 0 $((k - 1))); do
    [[ -f $OUT/shards/$i-of-$k/stages/results/panels.json ]] || die "shard $i-of-$k has not finished (no $OUT/shards/$i-of-$k/stages/results/panels.json)"
  done
  mkdir -p "$OUT/stages/mine" "$OUT/stages/panels"
  declare -A count=()
  for d in "$OUT"/shards/*-of-"$k"/stages/mine/*/; do
    [[ -d $d ]] || continue
    pid=$(basename "$d"); count[$pid]=$(( ${count[$pid]:-0} + 1 ))
  done
  for i in $(seq 0 $((k - 1))); do
    for d in "$OUT/shards/$i-of-$k/stages/mine"/*/; do
      [[ -d $d ]] || continue
      pid=$(basename "$d")
      if (( count[$pid] > 1 )); then dup=$((dup + 1)); continue; fi
      [[ -e $OUT/stages/mine/$pid ]] || link_tree "$d" "$OUT/stages/mine/$pid"
      local p=$OUT/shards/$i-of-$k/stages/panels/$pid
      [[ -e $p && ! -e $OUT/stages/panels/$pid ]] && link_tree "$p" "$OUT/stages/panels/$pid"
      [[ -e $p.json && ! -e $OUT/stages/panels/$pid.json ]] && link_tree "$p.json" "$OUT/stages/panels/$pid.json"
      linked=$((linked + 1))
    done
  done
  echo "build.sh: merge: linked $linked paper(s) from $k shard(s) into $OUT/stages" \
       "($dup copies of duplicate PDFs left to the merge build)"
  build --papers "$PAPERS" --out "$OUT"
  [[ ${KEEP_SHARDS:-0} == 1 ]] || { rm -rf "$OUT/shards"; echo "build.sh: removed $OUT/shards"; }
}

submit_merge_job() {
  local log_dir args=() site
  log_dir=$(scontrol show job "$SLURM_JOB_ID" -o | sed -n 's/.* StdOut=\([^ ]*\).*/\1/p' | head -n 1)
  log_dir=$(dirname "${log_dir:-logs/x}")
  mapfile -t site < <(sbatch_site_args)
  args=(--parsable --job-name="${SLURM_JOB_NAME:-fracto-build}-merge" --output="$log_dir/%x-%j.out"
        --dependency="afterok:$SLURM_ARRAY_JOB_ID" --kill-on-invalid-dep=yes
        --ntasks=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "${site[@]}")
  [[ -n ${SLURM_MEM_PER_NODE:-} ]] && args+=(--mem="${SLURM_MEM_PER_NODE}M")
  local id
  id=$(sbatch "${args[@]}" "$REPO_DIR/slurm/build.sh" --merge --shards "$SLURM_ARRAY_TASK_COUNT" \
       --papers "$PAPERS" --out "$OUT" "${BUILDER_ARGS[@]}")
  id=${id%%;*}
  mkdir -p "$OUT"; echo "$id" > "$OUT/merge_job_id"
  echo "build.sh: submitted the merge job $id (after array job $SLURM_ARRAY_JOB_ID succeeds)"
}

if [[ $MERGE == 1 ]]; then
  SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-}}
  run_merge
elif [[ -n $SHARD ]]; then
  if [[ -n ${SLURM_ARRAY_TASK_ID:-} && $MERGE_JOB == 1 && $SLURM_ARRAY_TASK_ID == "${SLURM_ARRAY_TASK_MIN:-0}" ]]; then
    submit_merge_job
  fi
  run_shard
else
  echo "build.sh: one plain build of $PAPERS"
  build --papers "$PAPERS" --out "$OUT"
fi
