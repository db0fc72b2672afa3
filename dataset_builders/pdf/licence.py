"""A PDF's own licence statement: its XMP rights metadata, else the text of its first page.

Used by the mine stage when no fetch manifest (papers.jsonl) describes the file. Only an explicit
statement counts (a Creative Commons URL, "CC BY 4.0", "Creative Commons Attribution ..."): a PDF that
says nothing stays "unknown". XMP fields read (Adobe XMP specification part 1, xmpRights namespace;
the Creative Commons XMP profile): ``xmpRights:WebStatement``, ``cc:license``, ``dc:rights``.
"""

from __future__ import annotations

import html
import re

from dataset_builders.licences import UNKNOWN, find_licence

_XMP_FIELDS = re.compile(
    r"<(xmpRights:WebStatement|cc:license|dc:rights)\b([^>]*)>(.*?)</\1>"  # element with content
    r"|<(?:xmpRights:WebStatement|cc:license)\b[^>]*rdf:resource=\"([^\"]+)\""  # resource attribute
    r"|(?:xmpRights:WebStatement|cc:license)=\"([^\"]+)\"",  # attribute shorthand
    re.S)


def xmp_rights_text(xmp: str) -> str:
    """The rights-related values of an XMP packet, joined (tags stripped, entities decoded)."""
    values = []
    for m in _XMP_FIELDS.finditer(xmp or ""):
        value = m.group(3) or m.group(4) or m.group(5) or ""
        values.append(html.unescape(re.sub(r"<[^>]+>", " ", value)))
    return " ".join(v.strip() for v in values if v.strip())


def pdf_licence(xmp: str, first_page_text: str) -> tuple[str, str | None, str]:
    """(licence id, licence URL, where it was found: "xmp" | "pdf_text" | "unknown")."""
    found = find_licence(xmp_rights_text(xmp))
    if found:
        return found[0], found[1], "xmp"
    found = find_licence(first_page_text)
    if found:
        return found[0], found[1], "pdf_text"
    return UNKNOWN, None, "unknown"
