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

Shards are streamed: a row group holds at most ``--row-group-mb`` of image bytes (and 100 rows); per data folder
one row group is read while the one before is written (ShardWriter), so memory is two row groups per folder, not
the dataset; a shard is closed at ``--max-shard-mb``. Image bytes are stored as the files' own bytes
(no re-encoding, no Parquet compression: JPEG/PNG do not compress further); the other columns use Snappy.

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
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dataset_builders.export import dataset_info_entry
from dataset_builders.hf_card import HF_SPLIT, features, readme
from dataset_builders.licences import UNKNOWN
from dataset_builders.publish import (
    DEFAULT_LICENCES,
    SPLITS,
    BuiltSample,
    PublishError,
    Selection,
    parse_licences,
    select,
    write_attribution,
)
from fracto_core.files import write_json_atomic, write_text_atomic

ROWS_PER_GROUP = 100  # rows per Parquet row group (a bound besides --row-group-mb)
MARKER = "export_hf.json"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def row(sample: BuiltSample) -> dict:
    """Every column but ``images`` (ShardWriter reads the image bytes into the row group's Arrow buffer)."""
    meta, prov = sample.meta, sample.meta["provenance"]
    aug = meta["augmentation"]
    return {
        "messages": sample.record["messages"],
        "sample_id": meta["sample_id"], "item_id": meta["item_id"], "features": meta["features"],
        "label_origin": meta["label_origin"],
        "augmentation": aug["kind"] if aug else None, "rotation_angle": float(aug["angle"]) if aug else None,
        "paper_ids": meta["paper_ids"],
        "licence": str(prov.get("licence") or UNKNOWN), "licence_url": prov.get("licence_url"),
        "doi": prov.get("doi"), "source_url": prov.get("source_url"), "source_pdf": prov.get("source_pdf"),
        "page": prov.get("page"), "figure_number": prov.get("figure_number"), "panel": prov.get("panel"),
        "caption": meta.get("caption") or "", "excerpts": meta.get("excerpts") or [],
        "technique": meta.get("technique"), "material": meta.get("material"),
        "provenance": json.dumps(prov, sort_keys=True, ensure_ascii=False),
    }


def _leaf_paths(field, prefix: str = "") -> list[str]:
    """Parquet column paths of an Arrow field (lists are written as <name>.list.element)."""
    import pyarrow as pa

    name = prefix + field.name
    if pa.types.is_list(field.type):
        return _leaf_paths(pa.field("element", field.type.value_type), name + ".list.")
    if pa.types.is_struct(field.type):
        return [p for child in field.type for p in _leaf_paths(child, name + ".")]
    return [name]


def read_into(path: Path, view: memoryview) -> None:
    """Fill view with the file's bytes (the file must be exactly that long)."""
    try:
        with open(path, "rb", buffering=0) as fh:
            done = 0
            while done < len(view):
                n = fh.readinto(view[done:])
                if not n:
                    break
                done += n
            extra = fh.read(1)
    except OSError as exc:
        raise PublishError(f"{path}: cannot read the image ({exc.strerror})") from None
    if done != len(view) or extra:
        raise PublishError(f"{path}: changed size while being exported ({len(view)} bytes expected)")


class ImageReader:
    """Reads row groups' image files into two reused buffers, on one thread, for every data folder in turn.

    A row group's images are read straight into a buffer (readinto: one copy from the page cache, none through
    Python bytes objects) that becomes the ``images`` column without another copy. The two buffers take turns:
    the thread fills one with the next row group while the caller writes the other (readinto and Parquet's
    write release the GIL); a buffer is refilled only after the row group in it was written, since a
    ShardWriter submits a read only after it has written the row group read before (write_table writes whole
    row groups and keeps no reference). The folders are written one after the other, so the two buffers are all
    the image memory of the export, allocated (and their pages faulted in) once.
    """

    def __init__(self, row_group_bytes: int):
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        self.row_group_bytes = row_group_bytes
        self.buffers = [np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.uint8)]
        self.slot = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-images")

    def submit(self, writer: ShardWriter, rows: list[dict], images: list[tuple[Path, int]], n_bytes: int):
        """A Future of (the row group as an Arrow table, its image bytes), read into the next buffer."""
        future = self.pool.submit(self._table, writer, rows, images, n_bytes, self.slot)
        self.slot = 1 - self.slot
        return future

    def _table(self, writer: ShardWriter, rows: list[dict], images: list[tuple[Path, int]], n_bytes: int,
               slot: int):
        import numpy as np
        import pyarrow as pa

        if self.buffers[slot].size < n_bytes:  # reused: no fresh pages to fault in for every row group
            self.buffers[slot] = np.empty(max(n_bytes, self.row_group_bytes), dtype=np.uint8)
        buffer = self.buffers[slot]
        view = memoryview(buffer)
        offsets = np.zeros(len(images) + 1, dtype=np.int32)
        offsets[1:] = np.cumsum([size for _, size in images])
        for (path, size), start in zip(images, offsets[:-1].tolist()):
            read_into(path, view[start:start + size])
        data = pa.py_buffer(buffer[:n_bytes])  # no copy
        blobs = pa.Array.from_buffers(pa.binary(), len(images), [None, pa.py_buffer(offsets), data])
        names = pa.array([path.name for path, _ in images], pa.string())
        struct = pa.StructArray.from_arrays([blobs, names], fields=list(writer.image_type.value_type))
        column = pa.ListArray.from_arrays(pa.array(np.arange(len(images) + 1, dtype=np.int32)), struct,
                                          type=writer.image_type)
        others = pa.Table.from_pylist(rows, schema=writer.other)
        columns = [column if f.name == "images" else others.column(f.name) for f in writer.schema]
        return pa.Table.from_arrays(columns, schema=writer.schema), n_bytes

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class ShardWriter:
    """Parquet shards of one folder, written one bounded row group at a time (images read by an ImageReader).

    The Parquet writer copies each image once into its pages (PLAIN, uncompressed, no statistics, no
    dictionary on any column). ``write_batch_size=8``: the column writer checks the page size only after each
    batch of write_batch_size values (default 1,024; pyarrow/parquet/core.py documents the option: "If pages are
    exceeding the data_page_size due to large column values, lowering the batch size can help keep page sizes
    closer to the intended size"), so with the default a row group's images (up to 100 x ~170 KB) became one
    ~17 MB page, its buffer grown by reallocation and copying; with 8 a page is about 1 MB (data_page_size) and
    its buffer is reused. Measured on the heavy corpus's row groups: Parquet's write CPU 0.70 -> 0.40 s
    (a raw write of the same bytes: 0.26 s); the file is the same size.
    """

    def __init__(self, folder: Path, stem: str, max_shard_bytes: int, row_group_bytes: int, reader: ImageReader):
        import pyarrow as pa

        self.folder, self.stem, self.reader = folder, stem, reader
        self.max_shard_bytes, self.row_group_bytes = max_shard_bytes, row_group_bytes
        self.schema: pa.Schema = features(decode=False).arrow_schema
        self.other = pa.schema([f for f in self.schema if f.name != "images"])
        self.image_type = self.schema.field("images").type
        paths = [p for f in self.schema for p in _leaf_paths(f)]
        self.compression = {p: "NONE" if p == "images.list.element.bytes" else "SNAPPY" for p in paths}
        self.rows: list[dict] = []
        self.images: list[tuple[Path, int]] = []
        self.pending = 0
        self.inflight = None  # the Future of the row group being read
        self.files: list[Path] = []
        self.writer = None
        self.shard_bytes = 0
        self.n_rows = 0
        self.image_bytes = 0

    def add(self, record: dict, image: Path) -> None:
        try:
            size = image.stat().st_size
        except OSError as exc:
            raise PublishError(f"{image}: cannot read the image of sample {record['sample_id']} "
                               f"({exc.strerror})") from None
        self.rows.append(record)
        self.images.append((image, size))
        self.pending += size
        if len(self.rows) >= ROWS_PER_GROUP or self.pending >= self.row_group_bytes:
            self.flush()

    def flush(self) -> None:
        """Start reading the pending rows' images (other buffer), then write the row group read before."""
        if not self.rows:
            return
        future = self.reader.submit(self, self.rows, self.images, self.pending)
        self.rows, self.images, self.pending = [], [], 0
        self._write_inflight()
        self.inflight = future

    def _write_inflight(self) -> None:
        import pyarrow.parquet as pq

        if self.inflight is None:
            return
        table, n_bytes = self.inflight.result()
        self.inflight = None
        if self.writer is not None and self.shard_bytes >= self.max_shard_bytes:
            self.writer.close()
            self.writer = None
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.files.append(self.folder / f"{self.stem}-{len(self.files):05d}.parquet")
            self.writer = pq.ParquetWriter(self.files[-1], self.schema, compression=self.compression,
                                           use_dictionary=False, write_statistics=False, write_batch_size=8)
            self.shard_bytes = 0
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.shard_bytes += n_bytes
        self.n_rows += table.num_rows
        self.image_bytes += n_bytes

    def abort(self) -> None:
        """Wait for a read in flight (after an error elsewhere); the staging folder is deleted by the caller."""
        if self.inflight is not None:
            self.inflight.exception()
        if self.writer is not None:
            self.writer.close()

    def close(self) -> list[str]:
        """Write what is left, close the last shard, and name every shard <stem>-NNNNN-of-MMMMM.parquet."""
        self.flush()
        self._write_inflight()
        if self.writer is not None:
            self.writer.close()
        names = []
        for i, f in enumerate(self.files):
            name = f"{self.stem}-{i:05d}-of-{len(self.files):05d}.parquet"
            f.rename(f.with_name(name))
            names.append(name)
        return names


def folder_of(split: str, part: str) -> str:
    """The data folder of a split's part (relative to OUT)."""
    return f"data/{HF_SPLIT[split]}/{part}" if split == "train" else f"data/{HF_SPLIT[split]}"


def write_shards(selection: Selection, staging: Path, max_shard_bytes: int, row_group_bytes: int,
                 progress: bool) -> dict[str, dict]:
    """Every published sample into its folder's shards, folder after folder (each keeps the build's order of
    its samples); {folder: {rows, image_bytes, shards}}."""
    by_folder: dict[str, list[BuiltSample]] = {}
    for split in SPLITS:
        for sample in selection.samples[split]:
            by_folder.setdefault(folder_of(split, sample.part), []).append(sample)
    reader = ImageReader(row_group_bytes)
    bar = tqdm(total=sum(map(len, by_folder.values())), desc="parquet shards", unit="image", disable=not progress)
    folders: dict[str, dict] = {}
    writer = None
    try:
        for folder, samples in sorted(by_folder.items()):
            stem = samples[0].part if samples[0].split == "train" else HF_SPLIT[samples[0].split]
            writer = ShardWriter(staging / folder, stem, max_shard_bytes, row_group_bytes, reader)
            for sample in samples:
                writer.add(row(sample), sample.image)
                bar.update(1)
            shards = writer.close()
            folders[folder] = {"rows": writer.n_rows, "image_bytes": writer.image_bytes, "shards": shards}
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        reader.shutdown()
        bar.close()
    return folders


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


def replace_folder(staging: Path, out: Path) -> None:
    """Put the finished export at out (an earlier export there is replaced; any other folder is refused)."""
    if out.exists():
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise PublishError(f"{out}: exists and is not an export of export_hf (no {MARKER}); choose another OUT")
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def export(build: Path, out: Path, licences: tuple[str, ...] = DEFAULT_LICENCES, max_shard_mb: float = 500,
           row_group_mb: float = 64, progress: bool = True) -> dict:
    """Write the Hugging Face export of the build in ``build`` to ``out``; returns the export summary."""
    build, out = Path(build), Path(out)
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
        folders = write_shards(selection, staging, int(max_shard_mb * 2**20), int(row_group_mb * 2**20), progress)
        name = json.loads((build / "build_config.json").read_text(encoding="utf-8"))["dataset_name"] \
            if (build / "build_config.json").is_file() else "fracto"
        write_json_atomic(staging / "dataset_info.json", llamafactory_info(folders, name))
        attributions = write_attribution(selection, staging)
        summary = {"build": str(build.resolve()), "licences": list(licences), "folders": folders,
                   "published": selection.published, "excluded": selection.excluded,
                   "sources": len(attributions), "samples": sum(f["rows"] for f in folders.values())}
        write_text_atomic(staging / "README.md", readme(build, selection, folders, name))
        write_json_atomic(staging / MARKER, summary)
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
    parser.add_argument("--max-shard-mb", type=float, default=500, help="close a Parquet shard after this many MB")
    parser.add_argument("--row-group-mb", type=float, default=64,
                        help="image MB per Parquet row group (at most 100 rows); each data folder holds two in "
                             "memory: one being read, one being written")
    parser.add_argument("--push", metavar="REPO_ID", help="then upload to this Hub dataset repo (token from HF_TOKEN)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private (with --push)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        licences = parse_licences(ns.licences)
        if not (0 < ns.row_group_mb <= 1024 and ns.max_shard_mb > 0):  # binary offsets are int32: < 2 GiB a group
            raise PublishError("--row-group-mb must be in (0, 1024] and --max-shard-mb above 0")
        if ns.push and hub_token() is None:  # fail before the work, and before any network call
            raise PublishError(f"--push {ns.push}: no token in {' or '.join(TOKEN_VARIABLES)}; export not started")
        summary = export(ns.build, ns.out, licences, ns.max_shard_mb, ns.row_group_mb, progress=not ns.quiet)
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
