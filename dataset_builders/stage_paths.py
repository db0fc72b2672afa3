"""Where each build stage keeps its files under the output folder (OUT/stages/..., OUT/dataset)."""

from __future__ import annotations

from pathlib import Path


class StagePaths:
    """The layout of one build's output folder."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.stages = self.out / "stages"
        self.mine = self.stages / "mine"  # <paper_id>/paper.json + images
        self.panels = self.stages / "panels"  # <paper_id>.json + <paper_id>/ images
        self.filter = self.stages / "filter.jsonl"
        self.dedup = self.stages / "dedup.json"
        self.labels = self.stages / "labels.jsonl"
        self.manual = self.stages / "manual"  # items.json + images
        self.items = self.stages / "items.jsonl"
        self.splits = self.stages / "splits.jsonl"
        self.augment = self.stages / "augment"  # augmented.jsonl + images
        self.dataset = self.out / "dataset"  # the LlamaFactory dataset_dir
        self.report = self.out / "build_report.jsonl"  # problems, one per line

    def rel(self, path: Path) -> str:
        """A path relative to the output folder, POSIX style (how records store paths)."""
        return Path(path).resolve().relative_to(self.out.resolve()).as_posix()

    def abs(self, rel: str) -> Path:
        return self.out / rel
