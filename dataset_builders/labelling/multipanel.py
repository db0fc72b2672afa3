"""Figures that stay whole although their caption names several lettered panels ("unsplit multipanel").

When the panels stage cannot cut a figure into its lettered panels (no gutters, a composite laid around a
schematic, parts it cannot match to letters), one image stands for panels (a)...(f) whose captions and
citing text may name different features. Giving that image the union of all panels' labels is wrong for
most of its area, and judging it by the figure's words is wrong when some panels are plots or schematics.
The rule used by the labeller and the filter (precision first):

* labels: the image gets only the features asserted for EVERY named panel (those the common caption part
  or whole-figure citations name, or that each panel's own part names); the others are dropped, and an
  image left with none is not labelled, with a detail starting ``unsplit_multipanel``;
* filter: the image is dropped (reason ``unsplit_multipanel``) when its panels' own caption parts disagree
  on being a fracture surface (e.g. "(a) position of the specimens; (b-e) SEM fractographs; (f) hardness").

Holds no state; reads PanelRecords, returns per-letter views of them.
"""

from __future__ import annotations

from dataset_builders.records import PanelRecord

REASON = "unsplit_multipanel"


def named_letters(panel: PanelRecord) -> tuple[str, dict[str, str], list[str]]:
    """(common caption part, {letter: own part}, letters) when an unlettered panel stands for >= 2 named
    panels of its figure's caption; ("", {}, []) otherwise."""
    if panel.letter is not None or panel.name is not None or not panel.figure_caption:
        return "", {}, []
    from dataset_builders.panels import caption_parts  # the panels stage's own reading of captions

    common, parts = caption_parts(panel.figure_caption)
    if len(parts) < 2:
        return "", {}, []
    return common, parts, sorted(parts)


def lettered_views(panel: PanelRecord) -> list[PanelRecord]:
    """One copy of an unsplit multipanel image per named letter, each with that letter's caption (common
    part + own part), as if the figure had been split; [] when the panel is not an unsplit multipanel."""
    common, parts, letters = named_letters(panel)
    if not letters:
        return []
    from dataset_builders.panels import panel_caption

    return [panel.model_copy(update={"letter": k, "caption": panel_caption(panel.figure_caption, common, parts, k)})
            for k in letters]
