"""Export a built dataset as a Hugging Face dataset: Parquet shards with embedded images, a Hub dataset card,
an attribution file, and a LlamaFactory dataset_info.json -- only the images whose licences allow it.

Usage:
    python -m dataset_builders.export_hf hf_out --build runs/ds1 --licences cc-by,cc-by-sa,cc0
    python -m dataset_builders.export_hf hf_out --build runs/ds1 --licences cc-by,unknown    # also unstated ones
    HF_TOKEN=... python -m dataset_builders.export_hf hf_out --build runs/ds1 --push lab/fracto-sem
    python -c "import datasets; print(datasets.load_dataset('hf_out'))"

Layout of OUT (docs/publishing.md):
    README.md                    Hub dataset card: YAML metadata (license, task_categories, size_categories,
                                 configs per split and per ablation, features) + the card (hf_card.py)
    ATTRIBUTION.md, attribution.json   every source paper of the published images (publish.py)
    dataset_info.json            LlamaFactory entries, one per folder below (file_name = that folder)
    export_hf.json               what was exported: licences, counts per part, shards, bytes
    data/train/<part>/<part>-NNNNN-of-MMMMM.parquet   part: original, augmented, manual_original,
                                 manual_augmented (disjoint; the train split and its ablations are unions)
    data/validation/*.parquet, data/test/*.parquet

Shards are streamed (hf_shards.py): a data folder is cut into shards of about equal size (at most about
``--max-shard-mb``), a shard into row groups of at most ``--row-group-mb`` of image bytes (and 100 rows);
``--workers`` processes write different shards at once (forked; the bytes do not depend on their number).
pyarrow writes the columns with empty image values, then each image file's bytes are put into its value by the
kernel's copy (parquet_images.py): the images are stored as the files' own bytes (no re-encoding, no compression:
JPEG/PNG do not compress further), copied once, and never held in memory; the other columns use Snappy.

Why the shards' own schema says ``Image(decode=False)`` while README.md says ``Image()``: ``datasets.load_dataset(OUT)``
takes the features from README.md (datasets 4.0.0 load.py: ``info = dataset_module.dataset_infos.get(config_name)``,
then the parquet builder keeps ``self.info.features`` when set), so Hub users get PIL images. LlamaFactory 0.9.5
loads the shards of one folder with ``load_dataset("parquet", data_files=...)`` (data/loader.py, load_from
"file"), i.e. with the shards' schema; decoded images would then be re-encoded by its conversion map
(``datasets.features.image.encode_pil_image`` saves a decoded JPEG again at Pillow's default quality: measured
here 5,206 -> 3,384 bytes). Undecoded, each image reaches LlamaFactory's ``_regularize_images`` (mm_plugin.py)
as {"bytes", "path"} and is opened from the original bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

from dataset_builders.hf_card import readme
from dataset_builders.hf_shards import ROWS_PER_GROUP, write_shards  # noqa: F401  (ROWS_PER_GROUP: the tests' bound)
from dataset_builders.publish import (
    DEFAULT_LICENCES,
    SPLITS,
    PublishError,
    parse_licences,
    select,
    write_attribution,
)
from dataset_builders.sharegpt import dataset_info_entry
from fracto_core.files import write_json_atomic, write_text_atomic

MARKER = "export_hf.json"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def llamafactory_info(folders: dict[str, dict], name: str) -> dict:
    """dataset_info.json: one entry per data folder; LlamaFactory 0.9.5 reads every file of a folder given as
    file_name (data/loader.py, load_from "file") and only one folder per entry, so the train split is the list
    of its parts' entries (docs/publishing.md gives the `dataset:` lines)."""
    info = {}
    for folder in folders:
        split = folder.split("/")[1]
        key = f"{name}_{'val' if split == 'validation' else split}"
        if split == "train":
            key += "_" + folder.split("/")[2]
        info[key] = dataset_info_entry(folder)  # the same ShareGPT columns and tags as the JSON export
    return info


def check_out(out: Path) -> None:
    """Refuse an OUT that is not a folder, or a non-empty folder that no export of export_hf wrote."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise PublishError(f"{out}: exists and is not a folder; choose another OUT")
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise PublishError(f"{out}: exists and is not an export of export_hf (no {MARKER}); choose another OUT")


def replace_folder(staging: Path, out: Path) -> None:
    """Put the finished export at out (an earlier export there is replaced; any other folder is refused)."""
    check_out(out)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def export(build: Path, out: Path, licences: tuple[str, ...] = DEFAULT_LICENCES, max_shard_mb: float = 500,
           row_group_mb: float = 64, progress: bool = True, workers: int = 2) -> dict:
    """Write the Hugging Face export of the build in ``build`` to ``out``; returns the export summary."""
    enabled = gc.isenabled()
    gc.disable()  # the export makes ~10^5 long-lived dicts and lists (meta lines, rows, Parquet footers) and no
    try:  # garbage cycles; the cyclic collector re-scanned them: 13 % of the export's CPU (perf, heavy corpus)
        return _export(Path(build), Path(out), licences, max_shard_mb, row_group_mb, progress, workers)
    finally:
        if enabled:
            gc.enable()


def _export(build: Path, out: Path, licences: tuple[str, ...], max_shard_mb: float, row_group_mb: float,
            progress: bool, workers: int) -> dict:
    check_out(out)  # before the work (replace_folder checks again at the end)
    selection = select(build, licences)
    if not any(selection.samples[s] for s in SPLITS):
        found = ", ".join(f"{lic} {row['samples']}" for lic, row in selection.excluded.items()) or "no samples"
        raise PublishError(f"{build}: no sample is published under --licences {','.join(licences)} "
                           f"(samples by licence: {found})")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    for leftover in (staging, out.with_name(f".{out.name}.old")):  # what a killed export left
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir()
    try:
        name = json.loads((build / "build_config.json").read_text(encoding="utf-8"))["dataset_name"] \
            if (build / "build_config.json").is_file() else "fracto"
        sources: list = []

        # no fsync in staging (as cp, and as the shards): the folder appears at OUT by one rename, whole
        def cards(folders: dict[str, dict]) -> None:  # in this thread, while the workers write the shards
            write_json_atomic(staging / "dataset_info.json", llamafactory_info(folders, name), durable=False)
            sources.extend(write_attribution(selection, staging, durable=False))
            write_text_atomic(staging / "README.md", readme(build, selection, folders, name), durable=False)

        folders = write_shards(selection, staging, int(max_shard_mb * 2**20), int(row_group_mb * 2**20), progress,
                               workers, while_writing=cards)
        summary = {"build": str(build.resolve()), "licences": list(licences), "folders": folders,
                   "published": selection.published, "excluded": selection.excluded,
                   "sources": len(sources), "samples": sum(f["rows"] for f in folders.values())}
        write_json_atomic(staging / MARKER, summary, durable=False)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


# --- push (optional) ---------------------------------------------------------------------------------

def hub_token() -> str | None:
    """The token from the environment at call time (never stored, never printed)."""
    return next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)


def push(out: Path, repo_id: str, private: bool) -> str:
    """Upload OUT to the Hub dataset repo repo_id with huggingface_hub; returns the commit URL."""
    token = hub_token()
    if token is None:
        raise PublishError(f"--push {repo_id}: no token in {' or '.join(TOKEN_VARIABLES)}; nothing was uploaded")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(out), repo_id=repo_id, repo_type="dataset",
                             ignore_patterns=[MARKER], commit_message="FractoVLM export")
    return str(getattr(info, "commit_url", info))


# --- command line ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.export_hf", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the Hugging Face dataset to")
    parser.add_argument("--build", type=Path, default=Path("output/sample_build"),
                        help="the build's output folder (python -m dataset_builders.build --out)")
    parser.add_argument("--licences", default=",".join(DEFAULT_LICENCES),
                        help="licence ids allowed for publication (dataset_builders.licences); an image is published "
                             "only if every paper it appears in has one; add 'unknown' for papers stating none and "
                             "for manual images")
    parser.add_argument("--max-shard-mb", type=float, default=500, help="shard size: a data folder is cut into shards of about equal size, at most about this many MB")
    parser.add_argument("--row-group-mb", type=float, default=64,
                        help="image MB per Parquet row group (at most 100 rows)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes writing shards at the same time (1: in this process); the output is the same "
                             "bytes for any number")
    parser.add_argument("--push", metavar="REPO_ID", help="then upload to this Hub dataset repo (token from HF_TOKEN)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (with --push)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        licences = parse_licences(ns.licences)
        if not (0 < ns.row_group_mb <= 1024 and ns.max_shard_mb > 0 and ns.workers > 0):  # offsets are int32
            raise PublishError("--row-group-mb must be in (0, 1024], --max-shard-mb and --workers above 0")
        if ns.push and hub_token() is None:  # fail before the work, and before any network call
            raise PublishError(f"--push {ns.push}: no token in {' or '.join(TOKEN_VARIABLES)}; export not started")
        summary = export(ns.build, ns.out, licences, ns.max_shard_mb, ns.row_group_mb, progress=not ns.quiet,
                         workers=ns.workers)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = None
    if ns.push:
        try:
            url = push(ns.out, ns.push, ns.private)
        except Exception as exc:  # the export is on disk; the message is the library's first line (no headers)
            print(f"error: push to {ns.push} failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); "
                  f"the export in {ns.out} is complete", file=sys.stderr)
            return 1
    excluded = ", ".join(f"{lic} {row['samples']}" for lic, row in summary["excluded"].items()) or "none"
    print(f"exported {summary['samples']} samples from {summary['sources']} sources to {ns.out} "
          f"({len(summary['folders'])} folders, {sum(len(f['shards']) for f in summary['folders'].values())} shards); "
          f"excluded by licence: {excluded}" + (f"; pushed: {url}" if url else "")
          + f"; {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
