"""Image bytes into a Parquet file at the speed of a file copy: pyarrow writes every column, the image bytes
as empty values; this module then puts each image file's bytes into those values with the kernel's copy
(os.sendfile, as shutil.copyfile does) and fixes the sizes and offsets in the file's footer.

Usage:
    layout = parquet_bytes_of_the_table_with_empty_image_bytes      # pyarrow, in memory (hf_shards.py)
    splice_images(layout, [[img1, img2], [img3]], [[s1, s2], [s3]], Path("out.parquet"), "images.list.element.bytes")

Why: pyarrow's writer copies every value twice before the kernel copies it a third time (the PLAIN encoder into
its buffer, then data page V1 concatenates levels and values into a fresh page buffer: apache/arrow
cpp/src/parquet/column_writer.cc, BuildDataPageV1, AllocatePageBuffer + ConcatenateBuffers), and the image had to
be read into memory first: four copies of every image byte where shutil.copy2 makes one (sendfile, page cache to
page cache). Here the image bytes are copied once, by the kernel.

What it relies on (the Parquet format, parquet.thrift of apache/parquet-format, and the Thrift compact protocol
that serialises the footer and page headers):
- file = "PAR1", column chunks (row group after row group, column after column), footer (FileMetaData), footer
  length (4 bytes LE), "PAR1"; the footer names every offset, so a column chunk may grow if every later offset
  moves with it;
- a column chunk of data page V1 pages, uncompressed: PageHeader, then repetition levels and definition levels
  (each a 4-byte LE length and the RLE/bit-packed runs), then the PLAIN values: per byte array a 4-byte LE
  length and the bytes. An empty value is 4 zero bytes, and the levels do not depend on the values' lengths,
  so the page pyarrow wrote with empty values has the levels of the real page;
- field ids: PageHeader 2 uncompressed_page_size, 3 compressed_page_size, 4 crc, 5 data_page_header (1
  num_values); FileMetaData 4 row_groups; RowGroup 1 columns, 2 total_byte_size, 5 file_offset,
  6 total_compressed_size; ColumnChunk 2 file_offset, 3 meta_data, 4/6 offset/column index offsets; ColumnMetaData
  3 path_in_schema, 4 codec, 6 total_uncompressed_size, 7 total_compressed_size, 9 data_page_offset,
  10 index_page_offset, 11 dictionary_page_offset, 14 bloom_filter_offset, 16 size_statistics (1
  unencoded_byte_array_data_bytes).
The caller writes the layout without page index, dictionary, compression or statistics on the image column;
anything else in the layout is refused (ParquetLayoutError), never guessed.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from dataset_builders.publish import PublishError

# Thrift compact protocol type codes
BOOL_TRUE, BOOL_FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)
MAGIC = b"PAR1"
DATA_PAGE = 0  # PageType.DATA_PAGE (V1)


class ParquetLayoutError(RuntimeError):
    """The layout pyarrow wrote is not the one this module rewrites (a library change): nothing is guessed."""


# --- Thrift compact protocol: a struct is {field id: [type, value]}, a list is [element type, [values]] -----

class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, ctype: int):  # the most frequent types first (a footer is mostly i32/i64, structs, lists)
        if ctype in (I32, I64, I16):
            n = self.varint()
            return (n >> 1) ^ -(n & 1)
        if ctype == STRUCT:
            return self.struct()
        if ctype == BINARY:
            n = self.varint()
            self.pos += n
            return self.data[self.pos - n:self.pos]
        if ctype in (LIST, SET):
            head = self.data[self.pos]
            self.pos += 1
            size = head >> 4 if head >> 4 != 15 else self.varint()
            return [head & 0x0F, [self.value(head & 0x0F) for _ in range(size)]]
        if ctype in (BOOL_TRUE, BOOL_FALSE, BYTE):  # a bool inside a list: one byte
            self.pos += 1
            return self.data[self.pos - 1]
        if ctype == DOUBLE:
            self.pos += 8
            return self.data[self.pos - 8:self.pos]
        raise ParquetLayoutError(f"thrift type {ctype} not expected in a Parquet footer or page header")

    def struct(self) -> dict:
        fields: dict = {}
        last = 0
        while True:
            head = self.data[self.pos]
            self.pos += 1
            if head == 0:
                return fields
            ctype, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            fields[fid] = [ctype, True if ctype == BOOL_TRUE else False if ctype == BOOL_FALSE else self.value(ctype)]


def _varint_into(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _value_into(out: bytearray, ctype: int, value) -> None:
    if ctype in (I16, I32, I64):
        _varint_into(out, (value << 1) ^ (value >> 63))  # zigzag
    elif ctype == STRUCT:
        _struct_into(out, value)
    elif ctype == BINARY:
        _varint_into(out, len(value))
        out += value
    elif ctype in (LIST, SET):
        etype, items = value
        if len(items) < 15:
            out.append((len(items) << 4) | etype)
        else:
            out.append(0xF0 | etype)
            _varint_into(out, len(items))
        for v in items:
            _value_into(out, etype, v)
    elif ctype in (BOOL_TRUE, BOOL_FALSE, BYTE):  # list elements (a struct's bools live in the field header)
        out.append(value)
    elif ctype == DOUBLE:
        out += value
    else:
        raise ParquetLayoutError(f"thrift type {ctype} not expected")


def _struct_into(out: bytearray, fields: dict) -> None:
    last = 0
    for fid, (ctype, value) in fields.items():
        if ctype in (BOOL_TRUE, BOOL_FALSE):
            ctype = BOOL_TRUE if value else BOOL_FALSE
        if 0 < fid - last <= 15:
            out.append(((fid - last) << 4) | ctype)
        else:
            out.append(ctype)
            _varint_into(out, (fid << 1) ^ (fid >> 63))
        if ctype not in (BOOL_TRUE, BOOL_FALSE):
            _value_into(out, ctype, value)
        last = fid
    out.append(0)


def encode_struct(fields: dict) -> bytes:
    """The Thrift compact encoding of a struct as decode_struct returns it (written into one buffer: the footer
    of a shard has ~10^4 values)."""
    out = bytearray()
    _struct_into(out, fields)
    return bytes(out)


def decode_struct(data: bytes, pos: int = 0) -> tuple[dict, int]:
    """(the struct at data[pos:], the position after it)."""
    reader = _Reader(data, pos)
    return reader.struct(), reader.pos


# --- the splice -----------------------------------------------------------------------------------------------

def _footer(layout: bytes) -> dict:
    if layout[:4] != MAGIC or layout[-4:] != MAGIC:
        raise ParquetLayoutError("not a Parquet file")
    size = struct.unpack("<I", layout[-8:-4])[0]
    return decode_struct(layout, len(layout) - 8 - size)[0]


def _add(fields: dict, fid: int, delta: int) -> None:
    if fid in fields:
        fields[fid][1] += delta


def _copy_file(out_fd: int, path: Path, size: int) -> None:
    """Append the file's ``size`` bytes to out_fd with the kernel's copy; the file must be exactly that long."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise PublishError(f"{path}: cannot read the image ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PublishError(f"{path}: cannot read the image (not a regular file)")
        if info.st_size != size:
            raise PublishError(f"{path}: changed size while being exported ({size} bytes expected)")
        done = 0
        while done < size:
            try:
                n = os.sendfile(out_fd, fd, done, size - done)
            except OSError as exc:  # sendfile between two files is Linux's; elsewhere copy through user space
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP) or done:
                    raise
                n = _copy_through_memory(out_fd, fd, size)
            if n == 0:
                break
            done += n
        if done != size:
            raise PublishError(f"{path}: changed size while being exported ({size} bytes expected)")
    finally:
        os.close(fd)


def _copy_through_memory(out_fd: int, fd: int, size: int) -> int:
    done = 0
    while done < size:
        chunk = os.pread(fd, min(size - done, 1 << 20), done)
        if not chunk:
            break
        os.write(out_fd, chunk)
        done += len(chunk)
    return done


def splice_images(layout, images: list[list[Path]], sizes: list[list[int]], out: Path, column: str,
                  done: Callable[[int], None] = lambda n: None) -> int:
    """Write ``layout`` (the bytes of a Parquet file whose ``column`` holds one empty value per image,
    row group after row group) to ``out`` with the images' bytes in place of the empty values; ``done(n)`` after
    each row group of n images; returns the bytes written."""
    meta = _footer(layout)
    row_groups = meta[4][1][1]
    if len(row_groups) != len(images):
        raise ParquetLayoutError(f"{len(row_groups)} row groups for {len(images)} groups of images")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pos = shift = 0  # next layout byte to copy; how much later everything is in out than in layout
        for rg, paths, lengths in zip(row_groups, images, sizes):
            _add(rg, 5, shift)
            rg_delta = 0
            for chunk in rg[1][1][1]:
                cmeta = chunk[3][1]
                for fid in (2, 4, 6):  # ColumnChunk offsets (2: deprecated, 0 when unset)
                    if fid in chunk and chunk[fid][1]:
                        chunk[fid][1] += shift
                if b".".join(p for p in cmeta[3][1][1]).decode() != column:
                    for fid in (9, 10, 11, 14):
                        _add(cmeta, fid, shift)
                    continue
                if any(f in cmeta for f in (10, 11, 14)) or cmeta[4][1] != 0 or 4 in chunk or 6 in chunk:
                    raise ParquetLayoutError(f"{column}: dictionary, index, bloom filter or compression present")
                start, end = cmeta[9][1], cmeta[9][1] + cmeta[7][1]
                os.write(fd, layout[pos:start])
                cmeta[9][1] += shift
                added = _splice_chunk(layout, start, end, fd, paths, lengths)
                pos = end
                _add(cmeta, 6, added)
                _add(cmeta, 7, added)
                if 16 in cmeta:
                    _add(cmeta[16][1], 1, sum(lengths))
                rg_delta += added
                shift += added
            _add(rg, 2, rg_delta)
            _add(rg, 6, rg_delta)
            done(len(paths))
        footer_start = len(layout) - 8 - struct.unpack("<I", layout[-8:-4])[0]
        os.write(fd, layout[pos:footer_start])
        footer = encode_struct(meta)
        os.write(fd, footer + struct.pack("<I", len(footer)) + MAGIC)
        return footer_start + shift + len(footer) + 8
    finally:
        os.close(fd)


def _splice_chunk(layout: bytes, start: int, end: int, fd: int, paths: list[Path], lengths: list[int]) -> int:
    """Write the column chunk layout[start:end] with the images in place of its empty values; returns the growth."""
    pos, i, added = start, 0, 0
    while pos < end:
        header, body_start = decode_struct(layout, pos)
        if header[1][1] != DATA_PAGE or 4 in header or header[2][1] != header[3][1]:
            raise ParquetLayoutError("image column: not an uncompressed data page V1 without checksum")
        n = header[5][1][1][1]  # num_values: one image per row, none null
        body_end = body_start + header[3][1]
        values_start = body_end - 4 * n
        if i + n > len(paths) or layout[values_start:body_end] != bytes(4 * n):
            raise ParquetLayoutError("image column: the page does not hold one empty value per image")
        grow = sum(lengths[i:i + n])
        header[2][1] += grow
        header[3][1] += grow
        new_header = encode_struct(header)
        os.write(fd, new_header + layout[body_start:values_start])
        for path, size in zip(paths[i:i + n], lengths[i:i + n]):
            os.write(fd, struct.pack("<I", size))
            _copy_file(fd, path, size)
        added += grow + len(new_header) - (body_start - pos)
        pos, i = body_end, i + n
    if i != len(paths):
        raise ParquetLayoutError(f"image column: {i} values for {len(paths)} images")
    return added
