"""parquet_images: the Thrift compact codec on real pyarrow footers and page headers, and splice_images against
pyarrow's own writer (same rows read back, by pyarrow, for several row groups and pages), its refusals."""

from __future__ import annotations

import errno
import itertools
import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_builders.parquet_images import (
    ParquetLayoutError,
    decode_struct,
    encode_struct,
    splice_images,
)
from dataset_builders.publish import PublishError

IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
COLUMN = "images.list.element.bytes"
OPTIONS = {"compression": {COLUMN: "NONE", "images.list.element.path": "SNAPPY", "name": "SNAPPY", "n": "SNAPPY"},
           "use_dictionary": False, "write_statistics": False, "write_page_index": False, "data_page_version": "1.0"}


def _table(blobs: list[bytes], names: list[str]) -> pa.Table:
    n = len(blobs)
    struct_ = pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.array(names)], fields=list(IMAGES.value_type))
    images = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), struct_, type=IMAGES)
    return pa.table({"name": pa.array(names), "images": images, "n": pa.array(range(n), pa.int64())})


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [0, 1, 300, 70_000, 5, 1_000_000, 17, 2_500]  # an empty file too; 1 MB: longer varints in the header
    paths = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"img{i}.jpg"
        p.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        paths.append(p)
    return paths, sizes


def _layout(tmp_path, names: list[str], groups: list[tuple[int, int]], **extra) -> bytes:
    f = tmp_path / "layout.parquet"
    with pq.ParquetWriter(f, _table([b""], ["x"]).schema, **{**OPTIONS, **extra}) as w:
        for a, b in groups:
            w.write_table(_table([b""] * (b - a), names[a:b]), row_group_size=b - a)
    return f.read_bytes()


def test_thrift_codec_round_trips_pyarrow_footer_and_page_header(tmp_path, files):
    paths, _ = files
    layout = _layout(tmp_path, [p.name for p in paths], [(0, 8)])
    size = struct.unpack("<I", layout[-8:-4])[0]
    footer, end = decode_struct(layout, len(layout) - 8 - size)
    assert end == len(layout) - 8 and encode_struct(footer) == layout[-8 - size:-8]
    header, body = decode_struct(layout, 4)  # the first page of the first column chunk
    assert encode_struct(header) == layout[4:body] and header[1][1] == 0  # DATA_PAGE


@pytest.mark.parametrize("groups,batch", [([(0, 8)], None), ([(0, 3), (3, 4), (4, 8)], None), ([(0, 8)], 2)])
def test_splice_equals_pyarrow_writing_the_bytes(tmp_path, files, groups, batch):
    paths, sizes = files
    names = [p.name for p in paths]
    extra = {"write_batch_size": batch, "data_page_size": 1} if batch else {}  # 5 pages in the image column
    layout = _layout(tmp_path, names, groups, **extra)
    out = tmp_path / "out.parquet"
    seen = []
    written = splice_images(layout, [paths[a:b] for a, b in groups], [sizes[a:b] for a, b in groups], out, COLUMN,
                            seen.append)
    assert written == out.stat().st_size and seen == [b - a for a, b in groups]
    got = pq.read_table(out)
    assert got.column("images").to_pylist() == [[{"bytes": p.read_bytes(), "path": p.name}] for p in paths]
    assert got.column("name").to_pylist() == names and got.column("n").to_pylist() == [
        i for a, b in groups for i in range(b - a)]
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups == len(groups)
    for g in range(meta.num_row_groups):  # the footer's sizes add up to the file's bytes
        rg = meta.row_group(g)
        cols = [rg.column(c) for c in range(rg.num_columns)]
        assert rg.total_byte_size == sum(c.total_uncompressed_size for c in cols)
        for c, nxt in itertools.pairwise(cols):
            assert c.data_page_offset + c.total_compressed_size == nxt.data_page_offset


def test_refusals(tmp_path, files):
    paths, sizes = files
    names = [p.name for p in paths]
    out = tmp_path / "out.parquet"
    with pytest.raises(ParquetLayoutError, match="dictionary, index, bloom filter or compression"):
        splice_images(_layout(tmp_path, names, [(0, 8)], use_dictionary=True), [paths], [sizes], out, COLUMN)
    with pytest.raises(ParquetLayoutError, match="row groups"):
        splice_images(_layout(tmp_path, names, [(0, 8)]), [paths[:4], paths[4:]], [sizes[:4], sizes[4:]], out, COLUMN)
    layout = _layout(tmp_path, names, [(0, 8)])
    with open(paths[3], "ab") as fh:  # grew since its size was taken
        fh.write(b"x")
    with pytest.raises(PublishError, match=f"{paths[3]}: changed size while being exported"):
        splice_images(layout, [paths], [sizes], out, COLUMN)
    os.truncate(paths[3], 10)  # shrank
    with pytest.raises(PublishError, match=f"{paths[3]}: changed size while being exported"):
        splice_images(layout, [paths], [sizes], out, COLUMN)
    paths[2].unlink()
    with pytest.raises(PublishError, match=f"{paths[2]}: cannot read the image"):
        splice_images(layout, [paths], [sizes], out, COLUMN)


def test_without_sendfile_between_files_the_bytes_go_through_memory(tmp_path, files, monkeypatch):
    """macOS's sendfile writes only to sockets (ENOTSOCK): the copy falls back to pread/write, same file."""
    paths, sizes = files
    layout = _layout(tmp_path, [p.name for p in paths], [(0, 8)])
    splice_images(layout, [paths], [sizes], tmp_path / "kernel.parquet", COLUMN)

    def no_sendfile(*args):
        raise OSError(errno.ENOTSOCK, "Socket operation on non-socket")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    splice_images(layout, [paths], [sizes], tmp_path / "memory.parquet", COLUMN)
    assert (tmp_path / "memory.parquet").read_bytes() == (tmp_path / "kernel.parquet").read_bytes()
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(PublishError, match=f"{folder}: cannot read the image \\(not a regular file\\)"):
        splice_images(layout, [[*paths[:7], folder]], [sizes], tmp_path / "x.parquet", COLUMN)
