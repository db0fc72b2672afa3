"""Check an exported LlamaFactory dataset before anyone trains on it.

LlamaFactory forgives too much (DESIGN §6): a missing image only warns, a wrong role order drops the
sample with a log line, a mismatch between <image> tags and images crashes deep in preprocessing, and a
too small cutoff_len silently truncates image tokens. So the builder checks its own output here, for every
file listed in dataset_info.json:
- every image exists under the dataset folder (relative path), opens and has a size. A JPEG is checked
  by its header (Pillow's verify() reads nothing more for JPEG); any other format is also verify()'d
  (for PNG that reads every chunk and checks its CRC). Each file is opened once;
- exactly one "<image>" tag per image;
- roles alternate user/assistant, starting with user and ending with assistant;
- the assistant answer parses with answer_format.parse_answer to status "ok";
- image tokens (image_tokens()) + text tokens fit config.cutoff_len. Text tokens are bounded without a
  tokenizer: the UTF-8 byte count of the texts (byte-level BPE never uses more tokens than bytes) plus the
  chat template's overhead.

Usage:
    from dataset_builders.validate import validate_dataset
    problems = validate_dataset(Path("output/sample_build/dataset"), BuildConfig())
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from PIL import Image, UnidentifiedImageError

from fracto_core.answer_format import ParsedAnswer, parse_answer
from dataset_builders.config import BuildConfig
from fracto_core.image_budget import VISION_MARKER_TOKENS, image_tokens
from dataset_builders.records import Problem
from fracto_core.files import open_text_atomic
from dataset_builders.validate_verdicts import Verdict, Verdicts

IMAGE_TAG = "<image>"
# <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n ... <|im_end|>\n plus a default system turn
# if the template adds one: ~30 tokens is a generous bound for qwen3_vl_nothink.
CHAT_TEMPLATE_OVERHEAD_TOKENS = 30


@dataclass
class DatasetCheck:
    """What validation found: the problems, plus numbers the dataset card reports."""

    problems: list[Problem] = field(default_factory=list)
    samples: int = 0
    max_image_tokens: int = 0
    max_sample_tokens: int = 0


def text_token_bound(texts: list[str]) -> int:
    """An upper bound on the tokens of these texts for a byte-level BPE tokenizer (no tokenizer needed)."""
    return sum(len(t.replace(IMAGE_TAG, "").encode("utf-8")) for t in texts) + CHAT_TEMPLATE_OVERHEAD_TOKENS


class _AnswerCache:
    """parse_answer once per distinct answer text (a dataset repeats a few hundred label sets)."""

    def __init__(self) -> None:
        self.parsed: dict[str, ParsedAnswer] = {}

    def parse(self, text: str) -> ParsedAnswer:
        if text not in self.parsed:
            self.parsed[text] = parse_answer(text)
        return self.parsed[text]


# (width, height, inode, bytes, mtime_ns) of a file that opened, packed: 65 bytes a file as a bytes object,
# ~210 as a tuple of five ints (50,000 images of a 2,000-paper build: ~10 vs ~16 MiB with their paths)
_CHECKED = struct.Struct("<IIQqq")


class ImageCache:
    """Opens each image file once even when several dataset files (variants) share it.

    known: a file of the sizes an earlier check found (save() writes it). An image whose file is still the
    same one -- same inode, byte count and modification time, as make and rsync decide it -- is not opened
    again: a rebuild after adding papers links the old images unchanged, and reading 50,000 JPEG headers
    from a cold page cache took ~40 s of the export's 111 s in a 2,100-PDF update (issue 24). A file
    rewritten or replaced (export links a new file under the same name) has a new inode or time: opened.
    """

    def __init__(self, root: Path, known: Path | None = None):
        self.root = root
        self._root = os.path.join(root, "")  # the folder's text ending in one separator
        self.sizes: dict[str, bytes | str] = {}  # rel path -> packed (w, h, inode, bytes, mtime_ns) or error text
        self.known = read_checked(known) if known is not None else {}

    def size(self, rel: str) -> tuple[int, int] | str:
        if rel not in self.sizes:
            self.sizes[rel] = self._open(rel)
        found = self.sizes[rel]
        return found if isinstance(found, str) else _CHECKED.unpack(found)[:2]

    def save(self, path: Path) -> None:
        """The sizes of every image that opened, a tab-separated line each (rel, w, h, inode, bytes, mtime_ns)."""
        with open_text_atomic(path, durable=False) as fh:
            for rel in sorted(self.sizes):
                found = self.sizes[rel]
                if not isinstance(found, str) and "\t" not in rel and "\n" not in rel:
                    fh.write("\t".join((rel, *map(str, _CHECKED.unpack(found)))) + "\n")

    def _open(self, rel: str) -> bytes | str:
        # path strings, not Paths (one per sample image, 50,000 in a 2,000-paper build): the same tests
        if rel.startswith("/") or ".." in rel.split("/"):
            return f"image path {rel!r} is not relative to the dataset folder"
        path = f"{self._root}{rel}"  # os.path.join's text for a relative rel, without its cost per image
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not S_ISREG(st.st_mode):
            return f"image {rel} does not exist"
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self.known.pop(rel, None)
        if known is not None and _CHECKED.unpack(known)[2:] == identity:
            return known
        size = jpeg_header_size(path)  # None: not a header of the plain layout, Pillow decides
        if size is None:
            try:
                with Image.open(path) as img:  # lazy: reads the header only
                    size = img.size
                    if img.format != "JPEG":
                        img.verify()  # a no-op for JPEG, so only other formats pay for it
            except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as exc:
                return f"image {rel} does not open: {type(exc).__name__}: {exc}"
        if size[0] <= 0 or size[1] <= 0:
            return f"image {rel} has an empty size {size}"
        try:
            return _CHECKED.pack(*size, *identity)
        except struct.error:  # cannot on Linux (inode < 2^64, size and time < 2^63): inode 0, never matched
            return _CHECKED.pack(*size, 0, 0, 0)


_JPEG_HEAD = 4096  # bytes read for a header: a Pillow-written JPEG's markers before its scan take ~600
_JPEG_SOF = struct.Struct(">BHHB")  # bits, height, width, components
_JPEG_SKIPPED = frozenset({0xC4})  # DHT: Pillow skips its bytes


def jpeg_header_size(path: str) -> tuple[int, int] | None:
    """(width, height) of a JPEG whose header has the plain layout Pillow's and libjpeg's encoders write --
    SOI, a JFIF APP0, then DQT, DHT and one 8-bit SOF0/1/2 of 1 or 3 components, each segment whole and
    right after the last, up to the scan (SOS) -- read from the file's first bytes with the checks
    Pillow's JpegImagePlugin makes on these segments, where Image.open would give this size and format
    "JPEG" without an error; None for anything else (another marker, padding, a segment cut short or
    malformed, a size of 0 or over Image.MAX_IMAGE_PIXELS, not a JPEG): the caller asks Pillow then.
    Image.open costs ~0.035 ms a JPEG in Python (marker handlers, tables unpacked), this ~0.006 ms
    (issue 24: 47,600 images at 2,000 papers). tests/test_validate_jpeg_size.py holds it to Pillow's
    verdict on encoder output and on every byte of mutated and truncated headers."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, _JPEG_HEAD)
    except OSError:
        return None
    finally:
        os.close(fd)
    if data[:4] != b"\xff\xd8\xff\xe0":
        return None
    n, pos, size = len(data), 2, None
    while pos + 4 <= n and data[pos] == 0xFF:
        marker, length = data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
        body, end = pos + 4, pos + 2 + length
        if length < 2 or end > n:
            return None
        if marker == 0xDA:  # the scan: Pillow stops reading the header here
            return size
        if marker == 0xE0:  # APP0: JFIF's version and density are read unguarded up to its 7th byte
            if pos != 2 or length - 2 < 14:
                return None
        elif marker == 0xDB:  # DQT: tables of 64 values, 1 byte each (precision 0) or 2
            while body < end:
                body += 65 if data[body] < 16 else 129
            if body != end:
                return None  # Pillow: "bad quantization table marker"
        elif marker in (0xC0, 0xC1, 0xC2):
            bits, height, width, layers = _JPEG_SOF.unpack_from(data, body) if length >= 8 else (0, 0, 0, 0)
            if size is not None or bits != 8 or layers not in (1, 3) or length - 2 != 6 + 3 * layers:
                return None
            limit = Image.MAX_IMAGE_PIXELS
            if width == 0 or height == 0 or (limit is not None and width * height > limit):
                return None
            size = (width, height)
        elif marker not in _JPEG_SKIPPED:
            return None
        pos = end
    return None


def read_checked(path: Path) -> dict[str, bytes]:
    """ImageCache.save's file as {rel: packed (w, h, inode, bytes, mtime_ns)}; a missing file or a bad line
    is nothing known (the image is then opened)."""
    known: dict[str, bytes] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 6 and all(p.isdigit() for p in parts[1:]):
                    try:
                        known[parts[0]] = _CHECKED.pack(*map(int, parts[1:]))
                    except (struct.error, ValueError):  # ValueError: a digit int() refuses ('²' is isdigit)
                        continue
    except (OSError, UnicodeDecodeError):
        return {}
    return known


def _problem(file: str, reason: str, detail: str) -> Problem:
    return Problem(file=file, stage="export", reason=reason, detail=detail, severity="failed")


def check_sample(sample: object, where: str, config: BuildConfig, images: ImageCache, check: DatasetCheck,
                 answers: _AnswerCache | None = None, check_answers: bool = True) -> None:
    """Append the problems of one sample to `check` and update its token statistics.

    check_answers False: free-text answers (the Q&A dataset, dataset_builders.questions.export) are not parsed.
    """
    answers = answers or _AnswerCache()
    if not isinstance(sample, dict) or not isinstance(sample.get("messages"), list) \
            or not isinstance(sample.get("images", []), list):
        check.problems.append(_problem(where, "bad_sample", 'expected {"messages": [...], "images": [...]}'))
        return
    messages, image_paths = sample["messages"], sample.get("images", [])
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        check.problems.append(_problem(where, "bad_sample", "every message needs a role and a string content"))
        return
    roles = [m.get("role") for m in messages]
    expected = ["user", "assistant"] * (len(roles) // 2 + 1)
    if not roles or len(roles) % 2 or roles != expected[:len(roles)]:
        check.problems.append(_problem(where, "role_order",
                                       f"roles must alternate user/assistant starting with user, got {roles}"))
    texts = [m["content"] for m in messages]
    n_tags = sum(t.count(IMAGE_TAG) for t in texts)
    if n_tags != len(image_paths):
        check.problems.append(_problem(where, "image_tag_mismatch",
                                       f"{n_tags} {IMAGE_TAG} tag(s) for {len(image_paths)} image(s)"))
    for m in messages:
        if check_answers and m.get("role") == "assistant":
            parsed = answers.parse(m["content"])
            if parsed.status != "ok":
                check.problems.append(_problem(where, "bad_answer",
                                               f"answer {m['content']!r} parses as {parsed.status}: {parsed.detail}"))
    img_tokens = 0
    for rel in image_paths:
        size = images.size(rel) if isinstance(rel, str) else f"image entry {rel!r} is not a path"
        if isinstance(size, str):
            check.problems.append(_problem(where, "bad_image", size))
            continue
        n = image_tokens(size[0], size[1], config.image_max_pixels, config.image_min_pixels)
        check.max_image_tokens = max(check.max_image_tokens, n)
        img_tokens += n
    text_tokens = text_token_bound(texts) + VISION_MARKER_TOKENS * len(image_paths)
    total = img_tokens + text_tokens
    check.max_sample_tokens = max(check.max_sample_tokens, total)
    if total > config.cutoff_len:
        check.problems.append(_problem(
            where, "exceeds_cutoff_len",
            f"sample {where} ({', '.join(map(str, image_paths))}): {img_tokens} image tokens + up to {text_tokens} text tokens = {total} > cutoff_len "
            f"{config.cutoff_len} (image_max_pixels {config.image_max_pixels}); LlamaFactory would truncate "
            f"the image tokens: raise cutoff_len or lower image_max_pixels"))


def check_dataset(dataset_dir: Path, config: BuildConfig, known_sizes: Path | None = None,
                  known_verdicts: Path | None = None) -> DatasetCheck:
    """Validate every dataset file listed in dataset_info.json; problems plus token statistics.

    known_sizes: a file of image sizes found by an earlier check of this folder (ImageCache: unchanged
    files are not opened again); rewritten with this check's sizes.
    known_verdicts: a file of the sample lines an earlier check found clean (validate_verdicts: a line with
    the same text, whose images have the same sizes, under the same code and settings, is not parsed or
    checked again); rewritten with this check's clean lines."""
    dataset_dir = Path(dataset_dir)
    check = DatasetCheck()
    info_path = dataset_dir / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        check.problems.append(_problem(str(info_path), "bad_dataset_info", str(exc)))
        return check
    images = ImageCache(dataset_dir, known_sizes)
    verdicts = Verdicts.load(known_verdicts, config) if known_verdicts is not None else None
    answers = _AnswerCache()
    # digests of the sample texts found without problems: the ablation variants repeat most of train's lines,
    # and the same text with the same images checks the same (its images' sizes are cached), so a repeat
    # adds no problem and moves no maximum
    clean: set[bytes] = set()
    for name, entry in sorted(info.items()):
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if not file_name:
            check.problems.append(_problem(info_path.name, "bad_dataset_info", f"entry {name!r} has no file_name"))
            continue
        before = (len(check.problems), check.max_image_tokens, check.max_sample_tokens)
        try:  # one sample in memory at a time when the file is a list written a value per line (export's)
            n = 0
            file_path = dataset_dir / file_name  # one Path per file, not one per line
            for n, text in enumerate(iter_line_texts(file_path), 1):
                digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
                if digest in clean:
                    continue
                if verdicts is not None and _known_clean(digest, verdicts, images, check):
                    clean.add(digest)
                    continue
                sample = parse_line(text, file_path)
                line = DatasetCheck()  # this line's own statistics (its verdict keeps them)
                check_sample(sample, f"{file_name}#{n - 1}", config, images, line, answers)
                check.problems += line.problems
                check.max_image_tokens = max(check.max_image_tokens, line.max_image_tokens)
                check.max_sample_tokens = max(check.max_sample_tokens, line.max_sample_tokens)
                if not line.problems:
                    clean.add(digest)
                    if verdicts is not None and not any("\t" in rel or "\n" in rel for rel in sample.get("images", [])):
                        verdicts.found[digest] = Verdict(line.max_image_tokens, line.max_sample_tokens, tuple(
                            (rel, *images.size(rel)) for rel in sample.get("images", []))).text()  # clean: sizes
            check.samples += n
            continue
        except NotALineList:  # any other layout: undo, then parse the whole file
            del check.problems[before[0]:]
            check.max_image_tokens, check.max_sample_tokens = before[1:]
        except OSError as exc:
            check.problems.append(_problem(file_name, "bad_dataset_file", f"{name}: {exc}"))
            continue
        try:
            samples = json.loads((dataset_dir / file_name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            check.problems.append(_problem(file_name, "bad_dataset_file", f"{name}: {exc}"))
            continue
        if not isinstance(samples, list):
            check.problems.append(_problem(file_name, "bad_dataset_file", f"{name}: expected a JSON list"))
            continue
        for i, sample in enumerate(samples):
            check_sample(sample, f"{file_name}#{i}", config, images, check, answers)
        check.samples += len(samples)
    if known_sizes is not None:
        images.save(known_sizes)
    if verdicts is not None:
        verdicts.save(known_verdicts)
    return check


def _known_clean(digest: bytes, verdicts: Verdicts, images: ImageCache, check: DatasetCheck) -> bool:
    """True (and its statistics counted) when an earlier check found this line clean and its images still
    have the sizes they had then (ImageCache opens a file whose identity changed)."""
    text = verdicts.known.get(digest)
    if text is None:
        return False
    hit = Verdict.parse(text)
    for rel, w, h in hit.images:
        if images.size(rel) != (w, h):
            return False
    check.max_image_tokens = max(check.max_image_tokens, hit.max_image_tokens)
    check.max_sample_tokens = max(check.max_sample_tokens, hit.sample_tokens)
    verdicts.found[digest] = text
    return True


class NotALineList(ValueError):
    """The file is not a JSON list written one value per line."""


def iter_line_texts(path: Path) -> Iterator[str]:
    """The JSON text of each value of a list written "[", then one value per line with "," between them,
    then "]" (export.JsonListWriter; "[]" when empty), not parsed. Raises NotALineList at the first line that
    does not fit that layout (the caller then parses the file whole: any valid JSON is accepted)."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline().rstrip("\n")
        closed, comma, n = first == "[]", False, 0
        if not closed and first != "[":
            raise NotALineList(path)
        for line in fh:
            text = line.rstrip("\n")
            if closed:
                if text.strip():
                    raise NotALineList(path)
                continue
            if text == "]":
                if comma or n == 0:  # a trailing comma, or "[\n]" (valid JSON, not our layout)
                    raise NotALineList(path)
                closed = True
                continue
            if n and not comma:
                raise NotALineList(path)
            comma = text.endswith(",")
            n += 1
            yield text[:-1] if comma else text
        if not closed:
            raise NotALineList(path)


def parse_line(text: str, path: Path) -> object:
    """One value of iter_line_texts; NotALineList when it is not JSON on its own."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise NotALineList(path) from None


def iter_line_list(path: Path) -> Iterator[object]:
    """The values of a list in iter_line_texts' layout, parsed one line at a time (NotALineList as there)."""
    for text in iter_line_texts(path):
        yield parse_line(text, path)


def validate_dataset(dataset_dir: Path, config: BuildConfig) -> list[Problem]:
    """Every problem of the exported dataset ([] when it is safe to train on)."""
    return check_dataset(dataset_dir, config).problems


class DatasetValidationError(RuntimeError):
    """The exported dataset failed validation; the message lists the problems."""

    def __init__(self, problems: list[Problem], limit: int = 50):
        self.problems = problems
        lines = [f"  {p.file}: {p.reason}: {p.detail}" for p in problems[:limit]]
        if len(problems) > limit:
            lines.append(f"  ... and {len(problems) - limit} more")
        super().__init__(f"exported dataset failed validation ({len(problems)} problem(s)):\n" + "\n".join(lines))
