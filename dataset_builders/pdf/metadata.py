"""Paper metadata from page 1 and the PDF's info dictionary: the title and the DOI."""

from __future__ import annotations

import re

from dataset_builders.pdf.text import TextBlock, join_lines

_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.IGNORECASE)


def find_title(first_page_blocks: list[TextBlock], metadata: dict | None) -> str | None:
    """The largest-font text in the top half of page 1 (lines of that size joined), else the metadata title."""
    lines = [ln for b in first_page_blocks for ln in b.lines if len(ln.text.strip()) >= 3]
    if lines:
        page_bottom = max(ln.bbox[3] for ln in lines)
        top = [ln for ln in lines if ln.bbox[1] < 0.5 * page_bottom] or lines
        size = max(ln.size for ln in top)
        title_lines = [ln for ln in top if abs(ln.size - size) < 0.5]
        title = " ".join(join_lines([ln.text for ln in title_lines]).split())
        if len(title) >= 3:
            return title
    meta = (metadata or {}).get("title") or ""
    return meta.strip() or None


def clean_doi(doi: str) -> str:
    """Strip trailing punctuation and unbalanced closing brackets from a DOI found in running text."""
    doi = doi.rstrip(".,;:'\"")
    while doi and doi[-1] in ")]}":
        opener = {")": "(", "]": "[", "}": "{"}[doi[-1]]
        if doi.count(opener) >= doi.count(doi[-1]):
            break
        doi = doi[:-1].rstrip(".,;:'\"")
    return doi


def find_doi(texts: list[str], metadata: dict | None) -> str | None:
    """The first DOI in the metadata (subject, keywords, title), else in the given page texts (pages 1-2)."""
    meta = metadata or {}
    for text in [meta.get("subject") or "", meta.get("keywords") or "", *texts]:
        m = _DOI.search(text)
        if m:
            return clean_doi(m.group(1))
    return None
