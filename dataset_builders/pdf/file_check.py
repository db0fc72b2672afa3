"""Which files of the papers folder are PDFs, and their paper ids (content hashes), for the mine stage.

A build hashes every file it is given (the paper id is the first 16 hex digits of its SHA-256), which
reads the whole corpus: 1.3 GB for 2,100 real-size PDFs, a cold read on every update months later. The
ids found are kept in a small file (OUT/stages/mine_ids.tsv: path, inode, bytes, mtime_ns, id); a file
whose inode, size and modification time are unchanged (as make and rsync decide it) keeps its id without
being read, under its old path or another one (a moved folder, hard links). Any other file is read and
hashed in the worker pool as before.

Usage:
    checked = check_files(files, paths.stages / "mine_ids.tsv", workers=2)   # [(paper id, None) | ("", why)]
"""

from __future__ import annotations

import codecs
from pathlib import Path

from dataset_builders.workers import run_jobs
from fracto_core.files import file_identity, file_sha256, open_text_atomic

Verdict = tuple[str, tuple[str, str, str] | None]  # (paper id, None) or ("", (reason, detail, severity))


def paper_id_of(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256.

    file_sha256 (hashlib.file_digest) reads into one reused buffer: 0.19 s instead of 0.34 s for the heavy corpus's
    233 MB (1 MiB bytes chunks). run() hashes every file in the worker pool before mining starts.
    """
    return file_sha256(path)[:16]


_OTHER_FORMATS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"%!PS", b"II*\x00", b"MM\x00*", b"BM",
                  b"RIFF", b"\x00\x00\x00\x0cjP", b"{\\rtf", b"\xd0\xcf\x11\xe0")


def classify_non_pdf(head: bytes, name: str) -> tuple[str, str] | None:
    """None for a PDF (a %PDF- header in the first KiB, as MuPDF accepts); else (reason, detail).

    A file of another known format, or text, is "not_a_pdf"; unrecognisable bytes under a .pdf name are a
    damaged PDF ("truncated_or_corrupt").
    """
    if b"%PDF-" in head:
        return None
    if head.startswith(_OTHER_FORMATS):
        return "not_a_pdf", "another file format (by its first bytes)"
    low = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    try:  # a character cut at the end of the KiB is no damage (2 in 3 CJK web pages were "damaged PDFs")
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        is_text = True
    except UnicodeDecodeError:  # not UTF-8; a web page in a legacy encoding is still a web page
        is_text = low.startswith((b"<!doctype html", b"<html", b"<head", b"<!--", b"<?xml")) or b"<html" in low
    if is_text or not name.lower().endswith(".pdf"):
        return "not_a_pdf", "no %PDF- header in the first 1 KiB"
    return "truncated_or_corrupt", "named .pdf but no %PDF- header and no known format: damaged file"


def check_file(file: str) -> tuple[str, tuple[str, str, str] | None]:
    """(paper id, None) for a PDF, else ("", (reason, detail, severity)) saying why it is not mined."""
    f = Path(file)
    if not utf8_name(file):  # no report, record or dataset could name it
        return "", ("unreadable", "its name is not valid UTF-8 (as shown, bytes escaped): rename the file", "failed")
    try:
        if f.stat().st_size == 0:
            return "", ("zero_bytes", "empty file", "skipped")
        with open(f, "rb") as fh:
            verdict = classify_non_pdf(fh.read(1024), f.name)
        if verdict:
            return "", (*verdict, "failed" if verdict[0] != "not_a_pdf" else "skipped")
        return paper_id_of(f), None
    except OSError as exc:
        return "", ("unreadable", str(exc), "failed")


def utf8_name(name: str) -> bool:
    """Can this file name be written as UTF-8? (Not a name in a legacy encoding: os.fsdecode's surrogates.)"""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name: str) -> str:
    """A file name as the report shows it: bytes that are not UTF-8 escaped ("caf\\xe9.pdf")."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_known(path: Path) -> dict[str, tuple[tuple[int, int, int], str]]:
    """{file path: ((inode, bytes, mtime_ns), paper id)} of check_files' file; missing or bad lines: unknown."""
    known: dict[str, tuple[tuple[int, int, int], str]] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 5 and all(p.isdigit() for p in parts[1:4]) and len(parts[4]) == 16:
                    known[parts[0]] = ((int(parts[1]), int(parts[2]), int(parts[3])), parts[4])
    except (OSError, UnicodeDecodeError):
        return {}
    return known


def check_files(files: list[Path], known_path: Path, workers: int) -> list[Verdict]:
    """check_file for every file, in order; unchanged files hashed by an earlier build are not read again.
    Rewrites known_path with every PDF's id."""
    known = read_known(known_path)
    # the same file under another path (a papers folder moved, or hard-linked into a new one as the scale
    # benchmark's update does): the same inode, size and mtime
    by_identity = {identity: pid for identity, pid in known.values()}
    identities = [file_identity(f) for f in files]
    verdicts: list[Verdict | None] = [None] * len(files)
    for i, (f, identity) in enumerate(zip(files, identities)):
        hit = known.get(str(f))
        if not utf8_name(str(f)):
            continue  # check_file refuses it
        if identity is not None and hit is not None and hit[0] == identity:
            verdicts[i] = (hit[1], None)
        elif identity is not None and identity in by_identity:
            verdicts[i] = (by_identity[identity], None)
    todo = [i for i, v in enumerate(verdicts) if v is None]
    for i, verdict in zip(todo, run_jobs(check_file, [str(files[i]) for i in todo], workers, "hash", "file", False,
                                         chunks_per_worker=4)):
        verdicts[i] = verdict
    known_path.parent.mkdir(parents=True, exist_ok=True)
    with open_text_atomic(known_path, durable=False) as fh:
        for f, identity, (pid, why) in zip(files, identities, verdicts):  # type: ignore[misc]
            if why is None and identity is not None and "\t" not in str(f) and "\n" not in str(f):
                fh.write(f"{f}\t{identity[0]}\t{identity[1]}\t{identity[2]}\t{pid}\n")
    return verdicts  # type: ignore[return-value]
