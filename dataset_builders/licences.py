"""Licence ids: one normalised name per licence, shared by the fetcher's manifest and the builder's records.

A licence is stored as a short id ("cc-by", "cc-by-nc-sa", "cc0", "public-domain", ...) and, when the
source gave one, its URL. Anything not recognised is "unknown" (or kept as the index's own category,
"other-oa" / "publisher-specific-oa", which say "open to read" and nothing about reuse): never guessed.

Spellings met in the sources (checked against their documentation, 2026-12):
- OpenAlex ``best_oa_location.license``: "cc-by", "cc-by-sa", "cc-by-nc-nd", "public-domain", "other-oa",
  "publisher-specific-oa" (developers.openalex.org, Work object / Location object);
- Europe PMC ``license``: "cc by", "cc by-nc", "CC BY-NC-ND", "cc0" (REST search, resultType=core);
- PDFs: "CC BY 4.0", "CC-BY-NC", "Creative Commons Attribution-NonCommercial 4.0 International",
  https://creativecommons.org/licenses/by-sa/4.0/ (first-page statements, XMP ``xmpRights:WebStatement``).
"""

from __future__ import annotations

import re

UNKNOWN = "unknown"
CC_IDS = ("cc-by", "cc-by-sa", "cc-by-nd", "cc-by-nc", "cc-by-nc-sa", "cc-by-nc-nd")
KNOWN_IDS = (*CC_IDS, "cc0", "public-domain", "other-oa", "publisher-specific-oa", UNKNOWN)
# what a CC licence's name says, in the order its id spells it (by, nc, sa/nd)
_WORDS = {"noncommercial": "nc", "non-commercial": "nc", "sharealike": "sa", "share-alike": "sa",
          "share alike": "sa", "noderivatives": "nd", "noderivs": "nd", "no derivatives": "nd",
          "no-derivatives": "nd"}

_CC_URL = re.compile(r"creativecommons\.org/(licenses|licences|publicdomain)/([a-z-]+)(?:/(\d\.\d))?", re.I)
_CC_SHORT = re.compile(r"\bCC[\s-]?(BY(?:[\s-](?:NC|SA|ND)){0,2}|0|ZERO)\b(?:[\s-]?(\d\.\d))?", re.I)
_CC_NAME = re.compile(r"Creative\s+Commons\s+(Attribution(?:[\s-]+(?:Non-?Commercial|Share-?Alike|No-?Deriv\w*))*"
                      r"|Zero|CC0)(?:\s+(\d\.\d))?", re.I)


def _cc_id(parts: list[str]) -> str | None:
    """("by", "nc", "sa") -> "cc-by-nc-sa"; None when the parts are not a CC licence."""
    parts = [p.lower() for p in parts if p]
    if parts in (["0"], ["zero"], ["cc0"]):
        return "cc0"
    if not parts or parts[0] != "by":
        return None
    rest = [p for p in ("nc", "sa", "nd") if p in parts[1:]]
    name = "-".join(["cc", "by", *rest])
    return name if name in CC_IDS else None


def licence_url(licence: str, version: str | None = None) -> str | None:
    """The Creative Commons page of a licence id (the versionless page lists every version), else None."""
    if licence == "cc0":
        return f"https://creativecommons.org/publicdomain/zero/{version or '1.0'}/"
    if licence in CC_IDS:
        path = licence.removeprefix("cc-")
        return f"https://creativecommons.org/licenses/{path}/" + (f"{version}/" if version else "")
    return None


def normalise_licence(raw: str | None) -> str:
    """An index's or a PDF's licence spelling -> a licence id of KNOWN_IDS ("unknown" when not recognised)."""
    if not raw or not raw.strip():
        return UNKNOWN
    text = raw.strip()
    low = re.sub(r"[\s_]+", "-", text.lower()).removeprefix("https://openalex.org/licenses/")
    if low in KNOWN_IDS:
        return low
    if low in ("cc-zero", "cc0-1.0", "cc-0"):
        return "cc0"
    if low in ("public-domain-mark", "pd", "publicdomain"):
        return "public-domain"
    found = find_licence(text)
    return found[0] if found else UNKNOWN


def find_licence(text: str) -> tuple[str, str | None] | None:
    """The first licence statement in free text (a CC URL, "CC BY-NC 4.0", "Creative Commons Attribution ...")
    -> (licence id, licence URL); None when the text names no licence."""
    hits: list[tuple[int, str, str | None]] = []
    for m in _CC_URL.finditer(text):
        kind, name = m.group(1).lower(), m.group(2).lower()
        licence = "cc0" if kind == "publicdomain" and name == "zero" else (
            "public-domain" if kind == "publicdomain" else _cc_id(name.split("-")))
        if licence:
            url = "https://" + m.group(0).rstrip("/") + "/"
            hits.append((m.start(), licence, url))
    for m in _CC_SHORT.finditer(text):
        licence = _cc_id(re.split(r"[\s-]", m.group(1)))
        if licence:
            hits.append((m.start(), licence, licence_url(licence, m.group(2))))
    for m in _CC_NAME.finditer(text):
        words = re.sub(r"\s+", " ", m.group(1).lower())
        if words in ("zero", "cc0"):
            licence = "cc0"
        else:
            parts = ["by"] + [short for long_, short in _WORDS.items() if long_ in words]
            licence = _cc_id(parts)
        if licence:
            hits.append((m.start(), licence, licence_url(licence, m.group(2))))
    if not hits:
        return None
    _, licence, url = min(hits, key=lambda h: h[0])
    versioned = [u for _, lic, u in sorted(hits) if lic == licence and u and re.search(r"/\d\.\d/$", u)]
    return licence, (versioned[0] if versioned else url)  # "CC BY-NC-ND license (http://.../by-nc-nd/4.0/)"
