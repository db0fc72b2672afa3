"""Figure numbers as text: "3", "7.5" (chapter.figure), "3-2" (chapter-figure), "S3" (supplementary), "A.1".

Journal articles number figures 1, 2, 3; books and theses number them per chapter ("Fig. 7.5",
"Figure 3.12", "Figure 3-2"), supplements and appendices with a letter ("Fig. S3", "Fig. A.1"). A figure
number is therefore text, normalised so that the caption and the body text that cites it give the same
string: whitespace dropped, every dash written "-", the letter prefix upper case ("s3" -> "S3").

The regular expressions here are pieces the caption and citation parsers (``captions``) build on.

Two readings stay apart on purpose:
* a decimal comma is never a figure number ("Fig. 3,5" is refused as a caption start and read as the list
  "3, 5" in body text, as before);
* a dash between two numbers is a range of figures ("Figs. 3-5" = 3, 4, 5) unless the document numbers its
  figures "chapter-figure" (some caption reads "Figure 3-2"): only then is "3-2" one number. Which reading
  applies is the caller's knowledge of the document (``dash_numbers``), not a guess from one citation.
"""

from __future__ import annotations

import re

DASHES = "\u2013\u2014\u2012\u2212-"  # en dash, em dash, figure dash, minus, hyphen

# An optional letter prefix (upper case only: "Fig. S3", "Fig. A.1"; a lower-case letter before a digit is
# not a prefix), the number, dotted chapter levels ("7.5", "3.2.1"). Written to be embedded in patterns
# compiled with re.IGNORECASE, hence the scoped (?-i:...).
PREFIX = r"(?-i:[A-Z])\.?"
DOTTED = r"\d+(?:\.\d+)*"
# "3-2": a chapter-figure number (only where the document uses that style, see the module docstring)
DASHED = rf"\d+[{DASHES}]\d+"


def normalise_number(text: str) -> str:
    """'7.5' -> '7.5'; '3 – 2' -> '3-2'; 's3' -> 'S3'; ' 12 ' -> '12'."""
    out = re.sub(r"\s+", "", text)
    out = re.sub(f"[{DASHES}]", "-", out)
    return out[:1].upper() + out[1:] if out[:1].isalpha() else out


def number_key(number: str) -> tuple:
    """A sort key in reading order: '2' < '3.1' < '3.12' < '10' < 'A.1' < 'S3' (prefixed numbers last)."""
    prefix = number[0] if number[:1].isalpha() else ""
    parts = [int(p) for p in re.findall(r"\d+", number)]
    return (prefix, parts)


def number_range(first: str, last: str, limit: int = 50) -> list[str]:
    """The numbers a citation range "first-last" covers, or [] when it is not a range of numbers.

    "3"-"5" -> 3, 4, 5; "3.2"-"3.4" -> 3.2, 3.3, 3.4 (same chapter, same prefix); "S1"-"S3" -> S1, S2, S3.
    Anything else ("3.2"-"4.1", a descending or a far too long range) gives [] and the caller keeps the two
    ends only.
    """
    a = re.fullmatch(r"([A-Z]\.?)?((?:\d+[.-])*)(\d+)", first)
    b = re.fullmatch(r"([A-Z]\.?)?((?:\d+[.-])*)(\d+)", last)
    if not a or not b or a.group(1) != b.group(1) or a.group(2) != b.group(2):
        return []
    lo, hi = int(a.group(3)), int(b.group(3))
    if not lo < hi <= lo + limit:
        return []
    head = (a.group(1) or "") + a.group(2)
    return [f"{head}{k}" for k in range(lo, hi + 1)]


def number_json(number: str | None) -> int | str | None:
    """How a number is written in JSON: a plain integer as before ("3" -> 3), any other number as text."""
    if number is not None and number.isdigit() and not (len(number) > 1 and number.startswith("0")):
        return int(number)
    return number
