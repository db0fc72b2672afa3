"""The project's registry of real papers: one JSON file per paper, checked by these pydantic models.

A registry file (``benchmarks/real_registry/papers/<slug>.json``) is one entry of the real-literature
annotation format (``../shared/real_literature/README.md``) plus ``sha256``, ``bytes``, ``topics`` and
``found_by``. ``load_registry`` reads the folder, validates every file and the rules that span files
(no repeated PDF, the per-repository caps, no repository the shared set already uses) and raises
``RegistryError`` listing every problem with the file it is in. docs/real_registry.md describes the rules.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fracto_core.vocabulary import canonical_names

REGISTRY_PAPERS = Path(__file__).resolve().parent / "real_registry" / "papers"

# Repositories ../shared/real_literature takes its PDFs from: the registry must find its papers elsewhere.
SHARED_SET_REPOS = frozenset({
    "philshenfei/feishen", "elliegiulietti/V-Cr-Ti-for-Fusion-Reactors", "mydcxiao/VisualFracto",
    "SlaviMandazhiev/SEM-image-segmentation-wear-quantification-tool",
    "SpringNuance/Master-Thesis-Hydrogen-Official", "me-shabbir-ahmed/me-shabbir-ahmed.github.io",
})
MAX_PER_REPO = 5  # papers of one repository in the whole registry
MAX_PER_REPO_BY_FINDER = {"registry-a": 3, "registry-b": 2}  # the team's split of those five (others: the total only)

Layout = Literal["one-column", "two-column", "slides", "thesis", "book-chapter", "report", "lab-report",
                 "word-manuscript", "scan", "poster"]
Topic = Literal["fatigue", "am_defects", "ductile", "brittle", "intergranular", "composite", "ceramic_glass",
                "polymer", "hard_negative", "other"]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LETTER = re.compile(r"^[a-z]$")


class RegistryError(ValueError):
    """One or more registry files are invalid; the message names each file and the reason."""


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
    commit: str
    path: str = Field(min_length=1)

    @field_validator("commit")
    @classmethod
    def _full_commit(cls, v: str) -> str:
        if not _HEX40.match(v):
            raise ValueError(f"commit must be the full 40-hex-digit hash in lower case, got {v!r}")
        return v


class FigureEntry(BaseModel):
    """One annotated figure. Panel keys are letters (a, b, ...) or descriptive names ('whole', 'left ...')."""
    model_config = ConfigDict(extra="forbid")
    page: int = Field(ge=1)
    figure: str = Field(min_length=1)
    caption_start: str
    panels: int = Field(ge=1)
    fractograph_panels: list[str]
    expected_features: dict[str, list[str]]
    evidence: dict[str, str]
    difficulty: str
    ignore: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "FigureEntry":
        where = f"{self.figure} (page {self.page})"
        known = set(canonical_names())
        keys = list(self.evidence)
        if not keys:
            raise ValueError(f"{where}: evidence is empty (one entry per panel, or 'whole')")
        if all(_LETTER.match(k) for k in keys):
            expected = [chr(ord("a") + i) for i in range(self.panels)]
            if keys != expected:
                raise ValueError(f"{where}: lettered evidence keys {keys} must be {expected} for panels={self.panels}")
        elif self.fractograph_panels and len(self.fractograph_panels) != len(keys) and not self.ignore:
            # the benchmark matches unlettered panels to the figure as a whole (bench_real_literature.panel_keys)
            raise ValueError(f"{where}: unlettered panels {keys} are scored together: list all of them or none in "
                             "fractograph_panels, or set ignore")
        if len(set(self.fractograph_panels)) != len(self.fractograph_panels):
            raise ValueError(f"{where}: fractograph_panels repeats a panel: {self.fractograph_panels}")
        stray = [p for p in self.fractograph_panels if p not in self.evidence]
        if stray:
            raise ValueError(f"{where}: fractograph_panels {stray} have no evidence entry (keys: {keys})")
        for panel, features in self.expected_features.items():
            if panel not in self.fractograph_panels:
                raise ValueError(f"{where}: expected_features for panel {panel!r}, which is not in "
                                 f"fractograph_panels {self.fractograph_panels}")
            unknown = [f for f in features if f not in known]
            if unknown:
                raise ValueError(f"{where}: panel {panel!r}: {unknown} not canonical feature names "
                                 "(fracto_core.vocabulary.canonical_names())")
            if len(set(features)) != len(features):
                raise ValueError(f"{where}: panel {panel!r} repeats a feature: {features}")
        return self


class RegistryPaper(BaseModel):
    """One registry file: the shared annotation entry plus provenance checks and topics."""
    model_config = ConfigDict(extra="forbid")
    file: str
    source: Source
    licence_note: str = Field(min_length=20)
    role: Literal["positive", "negative"]
    layout: Layout
    caption_position: Literal["below", "above", "side", "mixed"]
    figures: list[FigureEntry] = Field(min_length=1)
    unlisted_figures: Literal["ignore"] | None = None
    sha256: str
    bytes: int = Field(gt=0)
    topics: list[Topic] = Field(min_length=1)
    found_by: str = Field(pattern=r"^registry-[a-z]+[0-9]*$")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _HEX64.match(v):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "RegistryPaper":
        slug = self.slug
        if not _SLUG.match(slug):
            raise ValueError(f"file {self.file!r} must be pdfs/<slug>.pdf with a lower-case ascii slug")
        if self.source.repo in SHARED_SET_REPOS:
            raise ValueError(f"{self.source.repo} is already a source of ../shared/real_literature")
        has_fractographs = any(f.fractograph_panels for f in self.figures if not f.ignore)
        if has_fractographs != (self.role == "positive"):
            raise ValueError(f"role {self.role!r} but fractograph panels {'present' if has_fractographs else 'absent'}")
        if self.role == "negative" and "hard_negative" not in self.topics:
            raise ValueError("a negative paper must list the topic 'hard_negative'")
        return self

    @property
    def slug(self) -> str:
        return self.file.removeprefix("pdfs/").removesuffix(".pdf") if self.file.startswith("pdfs/") else ""

    def annotation(self) -> dict:
        """The entry as it goes into a staged annotations.json (the shared format plus the extra fields)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


def load_paper(path: Path) -> RegistryPaper:
    """Read and validate one registry file; RegistryError names the file and every reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegistryError(f"{path}: not readable JSON: {e}") from e
    try:
        paper = RegistryPaper.model_validate(raw)
    except ValidationError as e:
        reasons = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'entry'}: {err['msg']}" for err in e.errors())
        raise RegistryError(f"{path}: {reasons}") from e
    if paper.slug != path.stem:
        raise RegistryError(f"{path}: file is {paper.file!r} but the JSON is named {path.name} "
                            f"(expected pdfs/{path.stem}.pdf)")
    return paper


def cross_file_problems(papers: dict[Path, RegistryPaper]) -> list[str]:
    """Rules spanning files: one PDF once, at most MAX_PER_REPO per repository (and each finder's share)."""
    problems = []
    by_sha: dict[str, list[Path]] = defaultdict(list)
    for path, p in papers.items():
        by_sha[p.sha256].append(path)
    problems += [f"{', '.join(map(str, sorted(paths)))}: the same PDF (sha256 {sha[:12]}) more than once"
                 for sha, paths in by_sha.items() if len(paths) > 1]
    per_repo = Counter(p.source.repo for p in papers.values())
    problems += [f"{repo}: {n} papers, at most {MAX_PER_REPO} from one repository"
                 for repo, n in per_repo.items() if n > MAX_PER_REPO]
    per_finder = Counter((p.found_by, p.source.repo) for p in papers.values())
    problems += [f"{repo}: {n} papers found by {finder}, its share is {MAX_PER_REPO_BY_FINDER[finder]} a repository"
                 for (finder, repo), n in per_finder.items()
                 if finder in MAX_PER_REPO_BY_FINDER and n > MAX_PER_REPO_BY_FINDER[finder]]
    return problems


def load_registry(folder: Path = REGISTRY_PAPERS) -> list[RegistryPaper]:
    """Every paper of the registry folder, in file-name order; RegistryError lists every invalid file."""
    files = sorted(Path(folder).glob("*.json"))
    papers: dict[Path, RegistryPaper] = {}
    problems = []
    for path in files:
        try:
            papers[path] = load_paper(path)
        except RegistryError as e:
            problems.append(str(e))
    problems += cross_file_problems(papers)
    if problems:
        raise RegistryError(f"{len(problems)} problem(s) in the registry {folder}:\n  - " + "\n  - ".join(problems))
    return list(papers.values())
