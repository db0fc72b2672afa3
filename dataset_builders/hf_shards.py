"""The Parquet shards of the Hugging Face export (export_hf.py): rows, shard plan, and the writers.

Usage:
    from dataset_builders.hf_shards import write_shards
    folders = write_shards(selection, Path("hf_out.partial"), max_shard_bytes=500 << 20, row_group_bytes=64 << 20)

Every published sample becomes one row; the rows of a data folder (folder_of) are cut, in the build's order, into
shards of about equal image bytes (as many as --max-shard-mb asks for, at least MIN_SHARDS in a folder of
several row groups), named <stem>-NNNNN-of-MMMMM.parquet, and a shard into row groups of at most --row-group-mb
image bytes and ROWS_PER_GROUP rows. ``workers`` forked processes write different shards at the same time (the
plan does not depend on their number, so neither do the bytes). A shard is
written in two steps (_Writers.write): pyarrow writes every column with empty image values (a small "layout" in
memory: the rows' texts and ids), then parquet_images.splice_images writes it to the shard, putting each image file's bytes
into its value with the kernel's copy (sendfile, as shutil.copy2 does) and moving the footer's sizes and offsets.
So every image byte is copied once, by the kernel; letting pyarrow write the bytes cost four copies (the read,
Parquet's PLAIN encoder, its page concatenation, the kernel's write: see parquet_images.py), measured 1.2-1.5 s of
CPU for the heavy benchmark corpus (783 MiB of JPEGs) against 0.55-0.65 s for shutil.copytree of the same files.
The image bytes are never in memory: per worker, one row group of the other columns and the shard's
layout (~170 bytes a row, Snappy).
The image column has no compression (JPEG/PNG do not compress further), no statistics, no dictionary.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from tqdm import tqdm

from dataset_builders.hf_card import HF_SPLIT, arrow_schema
from dataset_builders.licences import UNKNOWN
from dataset_builders.parquet_images import ParquetLayoutError, splice_images
from dataset_builders.publish import SPLITS, BuiltSample, PublishError, Selection
from dataset_builders.workers import init_worker, no_thread_at_fork

ROWS_PER_GROUP = 100  # rows per Parquet row group (a bound besides --row-group-mb)
IMAGE_BYTES_COLUMN = "images.list.element.bytes"
MIN_SHARDS = 2  # a folder of more row groups than this is cut into at least this many shards (was: --workers,
# whose default is 2: the same shards as the default export of 7cf71f6)


_PROVENANCE_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode  # = json.dumps(p, sort_keys=True,
# ensure_ascii=False), without making an encoder per row


def columns(samples: list[BuiltSample]) -> dict[str, list]:
    """Every column but ``images`` (its bytes are spliced in by parquet_images, its path is the file name), one
    list per column: pyarrow converts a list per column without the per-row dicts of Table.from_pylist."""
    metas = [s.meta for s in samples]
    provs = [m["provenance"] for m in metas]
    augs = [m["augmentation"] for m in metas]
    return {
        "messages": [s.record["messages"] for s in samples],
        "sample_id": [m["sample_id"] for m in metas], "item_id": [m["item_id"] for m in metas],
        "features": [m["features"] for m in metas], "label_origin": [m["label_origin"] for m in metas],
        "augmentation": [a["kind"] if a else None for a in augs],
        "rotation_angle": [float(a["angle"]) if a else None for a in augs],
        "paper_ids": [m["paper_ids"] for m in metas],
        "licence": [str(p.get("licence") or UNKNOWN) for p in provs],
        **{key: [p.get(key) for p in provs] for key in ("licence_url", "doi", "source_url", "source_pdf", "page",
                                                          "figure_number", "panel")},
        "caption": [m.get("caption") or "" for m in metas], "excerpts": [m.get("excerpts") or [] for m in metas],
        "technique": [m.get("technique") for m in metas], "material": [m.get("material") for m in metas],
        "provenance": [_PROVENANCE_JSON(p) for p in provs],
    }


def to_arrow(values: list, type_):
    """pa.array(values, type_) for the types of this schema (string, int64, float64, lists and structs of them),
    built from buffers: pa.array of a Python list imports pandas (pyarrow's _is_array_like asks its pandas shim,
    which imports pandas when installed: 0.45 s of CPU, once per process, for a command that never uses it).
    Where pandas is already imported (a process that uses datasets), pa.array itself: 22 instead of 42 ms for the
    heavy corpus's columns."""
    import numpy as np
    import pyarrow as pa

    if "pandas" in sys.modules:
        return pa.array(values, type_)
    n = len(values)
    valid = [v is not None for v in values]
    nulls = n - sum(valid)
    validity = pa.py_buffer(np.packbits(np.array(valid, dtype=bool), bitorder="little")) if nulls else None
    if pa.types.is_string(type_):
        data = [v.encode() if v is not None else b"" for v in values]
        return pa.Array.from_buffers(type_, n, [validity, _offsets(map(len, data), n), pa.py_buffer(b"".join(data))],
                                     null_count=nulls)
    if pa.types.is_int64(type_) or pa.types.is_float64(type_):
        numbers = np.array([0 if v is None else v for v in values], dtype=type_.to_pandas_dtype())
        return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(numbers)], null_count=nulls)
    if pa.types.is_list(type_):
        child = to_arrow([x for v in values if v is not None for x in v], type_.value_type)
        return pa.Array.from_buffers(type_, n, [validity, _offsets((len(v) if v is not None else 0 for v in values), n)],
                                     null_count=nulls, children=[child])
    if pa.types.is_struct(type_):
        children = [to_arrow([v.get(f.name) if v is not None else None for v in values], f.type) for f in type_]
        return pa.Array.from_buffers(type_, n, [validity], null_count=nulls, children=children)
    raise TypeError(f"no conversion to {type_}")


def _offsets(lengths, n: int):
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=n), out=offsets[1:])
    return pa.py_buffer(offsets)


def folder_of(split: str, part: str) -> str:
    """The data folder of a split's part (relative to OUT)."""
    return f"data/{HF_SPLIT[split]}/{part}" if split == "train" else f"data/{HF_SPLIT[split]}"


def _leaf_paths(field, prefix: str = "") -> list[str]:
    """Parquet column paths of an Arrow field (lists are written as <name>.list.element)."""
    import pyarrow as pa

    name = prefix + field.name
    if pa.types.is_list(field.type):
        return _leaf_paths(pa.field("element", field.type.value_type), name + ".list.")
    if pa.types.is_struct(field.type):
        return [p for child in field.type for p in _leaf_paths(child, name + ".")]
    return [name]


@dataclass
class Shard:
    """One Parquet file to write: its folder, name and samples (with their image sizes)."""

    folder: str
    name: str
    samples: list[BuiltSample]
    sizes: list[int]


def plan(selection: Selection, max_shard_bytes: int, row_group_bytes: int) -> list[Shard]:
    """The shards of every data folder: the folder's samples in the build's order, cut into shards of about equal
    image bytes: ceil(image bytes / max_shard_bytes) of them, but at least MIN_SHARDS when the folder holds more
    than that many row groups' worth, so that two workers share a big folder (the largest is most of the work).
    The plan does not depend on --workers: the export is the same bytes whatever the worker count."""
    by_folder: dict[str, list[BuiltSample]] = {}
    for split in SPLITS:
        for sample in selection.samples[split]:
            by_folder.setdefault(folder_of(split, sample.part), []).append(sample)
    shards = []
    for folder, samples in sorted(by_folder.items()):
        sizes = []
        for sample in samples:
            try:
                sizes.append(sample.image.stat().st_size)
            except OSError as exc:
                raise PublishError(f"{sample.image}: cannot read the image of sample {sample.meta['sample_id']} "
                                   f"({exc.strerror})") from None
        stem = samples[0].part if samples[0].split == "train" else HF_SPLIT[samples[0].split]
        total = sum(sizes)
        wanted = max(1, math.ceil(total / max_shard_bytes), min(MIN_SHARDS, math.ceil(total / row_group_bytes)))
        cuts, done = [0], 0
        for i, size in enumerate(sizes[:-1]):  # cut after the sample that reaches the next 1/wanted of the bytes
            done += size
            if done * wanted >= total * len(cuts) and len(cuts) < wanted:
                cuts.append(i + 1)
        cuts.append(len(samples))  # fewer than wanted only if single images exceed a shard's share
        for j in range(len(cuts) - 1):
            shards.append(Shard(folder, f"{stem}-{j:05d}-of-{len(cuts) - 1:05d}.parquet",
                                samples[cuts[j]:cuts[j + 1]], sizes[cuts[j]:cuts[j + 1]]))
    return shards


class _Writers:
    """What the shard writers share: the Arrow schema and the Parquet options."""

    def __init__(self, staging: Path, row_group_bytes: int):
        import pyarrow as pa

        self.staging, self.row_group_bytes = staging, row_group_bytes
        self.schema: pa.Schema = arrow_schema(decode=False)  # = features(decode=False).arrow_schema
        self.image_type = self.schema.field("images").type
        paths = [p for f in self.schema for p in _leaf_paths(f)]
        self.compression = {p: "NONE" if p == IMAGE_BYTES_COLUMN else "SNAPPY" for p in paths}

    def table(self, samples: list[BuiltSample]):
        """One row group as an Arrow table whose image bytes are empty values (splice_images fills them in)."""
        import numpy as np
        import pyarrow as pa

        n = len(samples)
        empty = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(np.zeros(n + 1, dtype=np.int32)),
                                                       pa.py_buffer(b"")])
        names = to_arrow([sample.image.name for sample in samples], pa.string())
        struct = pa.StructArray.from_arrays([empty, names], fields=list(self.image_type.value_type))
        column = pa.Array.from_buffers(self.image_type, n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32))],
                                       children=[struct])  # one image per row (pa.array imports pandas: to_arrow)
        values = columns(samples)
        arrays = [column if f.name == "images" else to_arrow(values[f.name], f.type) for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def groups(self, shard: Shard) -> list[tuple[int, int]]:
        """The shard's row groups: at most row_group_bytes of images (the last image may pass it), ROWS_PER_GROUP."""
        out, start = [], 0
        while start < len(shard.samples):
            end, n_bytes = start, 0
            while end < len(shard.samples) and end - start < ROWS_PER_GROUP and n_bytes < self.row_group_bytes:
                n_bytes += shard.sizes[end]
                end += 1
            out.append((start, end))
            start = end
        return out

    def write(self, shard: Shard, done: Callable[[int], None]) -> None:
        """Write one shard (in this process or a worker process; ``done(n)`` after each row group): pyarrow writes every column, the image bytes as empty values,
        into a layout in memory (no dictionary, statistics, page index or compression on the image column; data
        page V1; ~170 bytes a row: the heavy corpus's largest shard, 1,680 rows, has a 0.3 MB layout); then
        splice_images writes the shard: the layout with each image file's bytes put in by the kernel (sendfile)
        and the footer's sizes and offsets moved to match. (A layout file cost a create, ~10^2 small writes, a
        read-back and an unlink per shard.)"""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.staging / shard.folder
        folder.mkdir(parents=True, exist_ok=True)
        groups = self.groups(shard)
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, self.schema, compression=self.compression, use_dictionary=False,
                              write_statistics=False, write_page_index=False, data_page_version="1.0") as writer:
            for start, end in groups:
                writer.write_table(self.table(shard.samples[start:end]), row_group_size=end - start)
        splice_images(sink.getvalue().to_pybytes(), [[s.image for s in shard.samples[a:b]] for a, b in groups],
                      [shard.sizes[a:b] for a, b in groups], folder / shard.name, IMAGE_BYTES_COLUMN, done)


def _take(order: list[Shard], taken) -> Shard | None:
    """The next shard of ``order`` that no writer has taken (``taken``: a counter shared with the children)."""
    with taken.get_lock():
        i = taken.value
        taken.value += 1
    return order[i] if i < len(order) else None


def _worker(writers: _Writers, order: list[Shard], taken, conn, parent_pid: int, unused_end) -> None:
    """A forked writer: takes the next shard until none is left; reports each row group ("rows", n), then ("ok",)
    or ("error", kind, message) on ``conn``. It dies with ``parent_pid`` (a killed export leaves no writer behind
    to write on into the next run's staging folder) and closes its copy of the pipe's read end, so that a send
    fails once the parent is gone."""
    init_worker(parent_pid)
    unused_end.close()
    try:
        while (shard := _take(order, taken)) is not None:
            writers.write(shard, lambda n: conn.send(("rows", n)))
        conn.send(("ok",))
    except (PublishError, ParquetLayoutError) as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except BaseException:  # noqa: BLE001  (anything else: its traceback, raised in the parent)
        conn.send(("error", "RuntimeError", traceback.format_exc()))


def _fan_out(writers: _Writers, order: list[Shard], workers: int, done: Callable[[int], None],
             meanwhile: Callable[[], None]) -> None:
    """Write the shards with ``workers`` writers: this process and workers - 1 forked ones, each taking the next
    shard until none is left (this process first runs ``meanwhile``); the first failure stops the others and is
    raised here. Processes, not threads: a thread coming back from the kernel's copy (sendfile) waits for the GIL
    while the other runs Python (the columns, the splice loop), so threads shared two cores badly. Forked: the
    selection is not pickled; a fork and its exit cost ~4,000-6,000 page faults (copy-on-write), so this process is
    a writer too, not a waiting parent."""
    ctx = multiprocessing.get_context("fork")
    taken = ctx.Value("i", 0)
    procs, live = [], {}

    def reports(timeout: float | None) -> None:  # the children's reports so far (timeout None: until one comes)
        for conn in wait(list(live), timeout):
            try:
                msg = conn.recv()
            except EOFError:
                proc = live.pop(conn)
                proc.join()
                raise RuntimeError(f"shard writer process {proc.pid} ended without a result "
                                   f"(exit code {proc.exitcode})") from None
            if msg[0] == "rows":
                done(msg[1])
            elif msg[0] == "ok":
                live.pop(conn).join()
            else:
                raise {"PublishError": PublishError, "ParquetLayoutError": ParquetLayoutError}.get(
                    msg[1], RuntimeError)(msg[2])

    def done_here(n: int) -> None:
        done(n)
        reports(0)  # a child's failure stops this writer too, at its next row group

    try:
        if workers > 1:
            no_thread_at_fork()  # the progress bar's tqdm monitor thread would be alive at the fork
        for _ in range(workers - 1):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(writers, order, taken, send, os.getpid(), recv),
                               name="parquet-shard", daemon=True)
            proc.start()
            send.close()
            procs.append(proc)
            live[recv] = proc
        meanwhile()
        while (shard := _take(order, taken)) is not None:
            writers.write(shard, done_here)
        while live:
            reports(None)
    except BaseException:  # a failure (or Ctrl-C): the other writers are stopped; their files go with the staging
        for proc in procs:  # folder
            if proc.exitcode is None:
                proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
        for conn in live:
            conn.close()


def write_shards(selection: Selection, staging: Path, max_shard_bytes: int, row_group_bytes: int,
                 progress: bool = False, workers: int = 2,
                 while_writing: Callable[[dict[str, dict]], None] | None = None) -> dict[str, dict]:
    """Every published sample into its folder's shards; {folder: {rows, image_bytes, shards}}.

    The shards are written by ``workers`` processes (this one and workers - 1 forked ones; only this one when
    workers is 1 or the platform cannot fork), the largest first (so that the last to finish is small); meanwhile this process runs
    ``while_writing(folders)`` (the card and the attribution need only the plan). The bytes written do not
    depend on ``workers``."""
    shards = plan(selection, max_shard_bytes, row_group_bytes)
    folders: dict[str, dict] = {}
    for s in shards:
        entry = folders.setdefault(s.folder, {"rows": 0, "image_bytes": 0, "shards": []})
        entry["rows"] += len(s.samples)
        entry["image_bytes"] += sum(s.sizes)
        entry["shards"].append(s.name)
    order = sorted(shards, key=lambda s: -sum(s.sizes))
    writers = _Writers(staging, row_group_bytes)
    with tqdm(total=sum(len(s.samples) for s in shards), desc="parquet shards", unit="image",
              disable=not progress) as bar:
        meanwhile = (lambda: while_writing(folders)) if while_writing is not None else (lambda: None)
        workers = min(workers, len(order))
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            _fan_out(writers, order, workers, bar.update, meanwhile)
        else:
            meanwhile()
            for shard in order:
                writers.write(shard, bar.update)
    return folders
