"""A PDF's own licence statement: its XMP rights metadata, else the text of its first page.

Used by the mine stage when no fetch manifest (papers.jsonl) describes the file (pages 1-2: any statement;
later pages: only "This article is licensed under ..."). Only an explicit
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


# on later pages only the article's statement about itself counts, not a figure credit ("reproduced from [12]
# under CC BY"): Springer Nature prints "Open Access This article is licensed under a Creative Commons ..." on
# the last page of the article (seen in a real Nature Materials PDF of shared/real_literature)
_OWN_STATEMENT = re.compile(r"(?:Open\s+Access\s+)?This\s+(?:article|work|paper|chapter)\s+is\s+"
                            r"(?:licensed|distributed|published|available)\s+under[^.]{0,300}", re.I)


def pdf_licence(xmp: str, first_pages_text: str, later_pages_text: str = "") -> tuple[str, str | None, str]:
    """(licence id, licence URL, where it was found: "xmp" | "pdf_text" | "unknown").

    first_pages_text: pages 1-2 (publishers put the statement on page 1, or page 2 behind a cover sheet);
    any statement there counts. later_pages_text: only an own-article statement (_OWN_STATEMENT) counts.
    """
    found = find_licence(xmp_rights_text(xmp))
    if found:
        return found[0], found[1], "xmp"
    found = find_licence(first_pages_text)
    for m in ([] if found else _OWN_STATEMENT.finditer(later_pages_text)):
        found = find_licence(m.group(0) + later_pages_text[m.end():m.end() + 300])
        if found:
            break
    if found:
        return found[0], found[1], "pdf_text"
    return UNKNOWN, None, "unknown"
