"""Class labels from a caption: the microscopy technique and the material category (issue 14).

Reads a figure caption (text only) and returns the eval tasks' class names (eval.tasks TECHNIQUES and
MATERIALS: the benchmark columns `technique` and `material`), or None when the caption does not say, or
says two different things. Rules are whole-word phrase matches, most specific phrase first ("stereo
microscope" before "microscope", "stainless steel" before "steel").

Usage:
    from dataset_builders.labelling.classes import caption_classes
    caption_classes("SEM fractograph of the Ti-6Al-4V specimen")   # ("SEM", "titanium alloy")
"""

from __future__ import annotations

import functools
import re

TECHNIQUE_PHRASES: dict[str, tuple[str, ...]] = {
    "SEM": ("sem", "fesem", "fe-sem", "scanning electron microscopy", "scanning electron microscope",
            "scanning electron micrograph", "secondary electron image", "backscattered electron image"),
    "TEM": ("tem", "transmission electron microscopy", "transmission electron microscope",
            "transmission electron micrograph"),
    "stereo microscopy": ("stereo microscope", "stereomicroscope", "stereo microscopy", "stereomicroscopy",
                          "stereo optical microscope"),
    "confocal microscopy": ("confocal", "clsm", "laser scanning microscope", "optical profilometry"),
    "optical microscopy": ("optical micrograph", "optical microscope", "optical microscopy", "light microscope",
                           "light microscopy", "light optical micrograph"),
    "macro photograph": ("photograph", "macrograph", "macrophotograph", "macroscopic view", "macro view"),
}
MATERIAL_PHRASES: dict[str, tuple[str, ...]] = {
    "steel": ("steel", "steels", "stainless", "aisi 4340", "maraging"),
    "aluminium alloy": ("aluminium", "aluminum", "al alloy", "al-li", "aa2024", "aa7075", "2024-t3", "7075-t6"),
    "titanium alloy": ("titanium", "ti-6al-4v", "ti6al4v", "ti alloy"),
    "nickel superalloy": ("superalloy", "inconel", "nickel-based", "nickel base", "ni-based", "in718"),
    "magnesium alloy": ("magnesium", "mg alloy", "az31", "az91"),
    "copper alloy": ("copper", "brass", "bronze"),
    "other metal": ("cast iron", "high-entropy alloy", "intermetallic", "tungsten"),
    "polymer": ("polymer", "polymers", "epoxy", "polyethylene", "polycarbonate", "pmma", "nylon", "plastic"),
    "ceramic/glass": ("ceramic", "ceramics", "glass", "alumina", "zirconia", "silicon carbide", "porcelain"),
    "composite": ("composite", "composites", "cfrp", "gfrp", "fibre-reinforced", "fiber-reinforced", "laminate"),
}


def _norm(text: str) -> str:
    return " " + " ".join(re.sub(r"[^0-9a-z\-/ ]", " ", text.lower()).split()) + " "


def _by_length(table: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """(" phrase ", class name), longest phrase first (the order _find matches in)."""
    return [(f" {p} ", n) for p, n in sorted(((p, n) for n, ps in table.items() for p in ps), key=lambda x: -len(x[0]))]


# sorted once, not on every call (the export sorted the ~80 phrases twice per sample: 0.25 s under cProfile)
_TECHNIQUE_ORDER = _by_length(TECHNIQUE_PHRASES)
_MATERIAL_ORDER = _by_length(MATERIAL_PHRASES)


def _find(text: str, ordered: list[tuple[str, str]]) -> str | None:
    norm = _norm(text)
    found: set[str] = set()
    for token, name in ordered:
        if token in norm:
            found.add(name)
            norm = norm.replace(token, " | ")
    if "composite" in found and len(found) > 1:  # "CFRP with an epoxy matrix": the composite is the material
        found = {"composite"}
    return found.pop() if len(found) == 1 else None


def caption_technique(caption: str) -> str | None:
    return _find(caption, _TECHNIQUE_ORDER)


def caption_material(caption: str) -> str | None:
    return _find(caption, _MATERIAL_ORDER)


@functools.lru_cache(maxsize=4096)
def caption_classes(caption: str) -> tuple[str | None, str | None]:
    """(technique, material) named by the caption; None where it names none or several.

    Cached: the export asks once per sample, and an item's rotated copies share its caption.
    """
    return caption_technique(caption), caption_material(caption)
