"""What Word exports (manuscripts, reports, theses) put on a page besides the paper: margin comments and
broken cross-references.

* Margin comments ("Commented [AB1]: please enlarge Fig. 3", "Deleted: ...", "Formatted: Font: Bold"):
  Word prints tracked changes and comments as balloons in a column right of the text. They are not the
  paper's text: a citation in a comment would become an excerpt, and the balloon column would sit next to
  figures as if it were their text. ``drop_margin_comments`` removes the balloon column.
* Broken cross-references: a figure reference whose target was deleted prints "Error! Reference source not
  found." in place of "Figure 3". Such a sentence names no figure, and the labeller reads a sentence without
  a citation as speaking about the figure cited just before it: features stated for the lost figure would go
  to the previous one. ``citable_chunks`` cuts the body text at those sentences (they join no excerpt).
"""

from __future__ import annotations

import re

from dataset_builders.pdf.captions import sentence_bounds
from dataset_builders.pdf.text import TextBlock

# Word's balloon labels, as its PDF export prints them (English UI): "Commented [JD1]:", "Comment [JD1]:"
# (Word 2010; always with the [initials+number]), "Deleted:", "Inserted:", "Formatted:", "Moved (insertion) [1]:".
# A body paragraph never starts with one of these followed by a colon.
_BALLOON = re.compile(r"^(?:Comment(?:ed)?\s*\[[^\]]{1,16}\]|(?:Deleted|Inserted|Formatted|Moved\s*\((?:insertion|"
                      r"deletion)\)|Moved\s+(?:up|down))\s*(?:\[[^\]]{1,16}\])?)\s*:", re.IGNORECASE)
# Word's field errors: a REF field whose bookmark is gone, and its relatives (English UI), and the first of
# them in the German, French and Spanish UIs.
BROKEN_REFERENCE = re.compile(r"(?:Error!\s*(?:Reference\s+source\s+not\s+found|Bookmark\s+not\s+defined|"
                              r"No\s+text\s+of\s+specified\s+style\s+in\s+document|"
                              r"Not\s+a\s+valid\s+bookmark\s+self-reference)|"
                              r"Fehler!\s*Verweisquelle\s+konnte\s+nicht\s+gefunden\s+werden|"
                              r"Erreur\s*!\s*Source\s+du\s+renvoi\s+introuvable|"
                              r"¡?Error!\s*No\s+se\s+encuentra\s+el\s+origen\s+de\s+la\s+referencia)\s*\.?",
                              re.IGNORECASE)
_PLACEHOLDER = "\u2063XREF\u2063"  # no sentence punctuation, so the sentence stays whole while it is found


def drop_margin_comments(blocks: list[TextBlock], page_width: float) -> list[TextBlock]:
    """The page's blocks without Word's comment balloons: every block from the left edge of the leftmost
    balloon rightwards, in the right half of the page (the balloon column), goes. Pages without a balloon
    are returned unchanged (the same list)."""
    starts = [b.bbox[0] for b in blocks if b.bbox[0] > page_width / 2 and _BALLOON.match(b.text)]
    if not starts:
        return blocks
    column = min(starts) - 2
    return [b for b in blocks if b.bbox[0] < column]


def citable_chunks(text: str) -> list[str]:
    """Body text cut at the sentences holding a broken cross-reference (those sentences dropped).
    Text without one comes back whole, as the only chunk."""
    if not BROKEN_REFERENCE.search(text):
        return [text]
    marked = BROKEN_REFERENCE.sub(_PLACEHOLDER, text)
    chunks: list[str] = []
    current: list[str] = []
    for s, e in sentence_bounds(marked):
        sentence = marked[s:e]
        if _PLACEHOLDER in sentence:
            if current:
                chunks.append(" ".join(current))
            current = []
        else:
            current.append(sentence)
    if current:
        chunks.append(" ".join(current))
    return chunks
