"""Panel records looked up paper by paper: stages/panels/<paper_id>.json read when asked, the last few kept.

The whole-corpus stages after panels (label, items, export's texts) go through dedup groups in
representative order, which is paper order (a panel id starts with its paper id), so each paper's file
is read about once and the panels of the whole corpus are never held at once.

Usage:
    panels = PanelsByPaper(paths)
    panel = panels.get(group.representative, group.paper_ids)   # None when no given paper holds it
"""

from __future__ import annotations

from functools import lru_cache

from dataset_builders.records import PanelRecord, PaperPanels, SourceMeta
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model


class PanelsByPaper:
    """Panel records looked up by id among given papers, read from stages/panels/<paper_id>.json when asked;
    the last few papers are kept (callers go in id order, so papers are read about once), never the corpus.

    tolerant=False: an unreadable panels file raises (as reading it whole did); tolerant=True: it counts as
    a paper without panels and its error is kept in ``unreadable`` (paper id -> first line of the error).
    """

    def __init__(self, paths: StagePaths, cached_papers: int = 16, tolerant: bool = False):
        self.paths = paths
        self.tolerant = tolerant
        self.unreadable: dict[str, str] = {}
        self.read: set[str] = set()  # papers whose panels file was looked for
        self.parsed: set[str] = set()  # papers whose panels file was read without error
        self._paper = lru_cache(maxsize=cached_papers)(self._read_paper)

    def _read_paper(self, paper_id: str) -> tuple[dict[str, PanelRecord], SourceMeta]:
        self.read.add(paper_id)
        f = self.paths.panels / f"{paper_id}.json"
        if not f.is_file() or paper_id in self.unreadable:
            return {}, SourceMeta()
        try:
            paper = read_model(f, PaperPanels)
        except (OSError, ValueError) as exc:
            if not self.tolerant:
                raise
            self.unreadable[paper_id] = str(exc).splitlines()[0]
            return {}, SourceMeta()
        self.parsed.add(paper_id)
        source = SourceMeta.model_validate(paper.model_dump(include=set(SourceMeta.model_fields)))
        return {p.panel_id: p for p in paper.panels}, source

    def get(self, panel_id: str, paper_ids: list[str]) -> PanelRecord | None:
        for paper in paper_ids:
            panel = self._paper(paper)[0].get(panel_id)
            if panel is not None:
                return panel
        return None

    def check_unread(self) -> None:
        """Read every panels file not read yet, so that ``unreadable`` covers the whole folder (tolerant)."""
        for f in sorted(self.paths.panels.glob("*.json")):
            if f.stem not in self.read:
                self._paper(f.stem)

    def source(self, paper_id: str) -> SourceMeta:
        """The paper's title, DOI, licence, ... (SourceMeta); empty when its panels file is gone."""
        return self._paper(paper_id)[1]
