"""Stage the project's registry of real papers: PDFs out of fetched repository snapshots, plus annotations.

Usage:
    python benchmarks/stage_registry.py                    # stage into <repo>/../real_registry
    python benchmarks/stage_registry.py --out /work/real_registry --mirrors /work/.mirror
    python benchmarks/stage_registry.py --check            # validate the registry JSON only (no snapshots)

Reads every ``benchmarks/real_registry/papers/*.json`` (validated by benchmarks/registry_schema.py), finds
the snapshot git directory of ``source.repo`` under the mirrors folder (``<owner>+<name>/repo``, as the
search tool's fetch lays it out), extracts ``source.path`` at ``source.commit`` with git, checks its
sha256 and size, and writes ``OUT/pdfs/<slug>.pdf``, ``OUT/annotations.json`` (the entries of the staged
papers, in the format of ../shared/real_literature/annotations.json) and a generated ``OUT/README.md``.
Every file is written to a temporary name and renamed, so a kill leaves no partial file; a PDF already
staged with the right sha256 is kept as is. PDFs in OUT/pdfs that the registry no longer lists are removed.
Exit status: 0 when at least one paper was staged (the summary names every paper that was not, and why),
1 when none could be, 2 when a registry file is invalid (it is named with the reason).
The staged PDFs are publisher-copyright development data: never copy them into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fracto_core.files import write_bytes_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from registry_schema import REGISTRY_PAPERS, RegistryError, RegistryPaper, load_registry  # noqa: E402

DEFAULT_OUT = REPO.parent / "real_registry"
DEFAULT_MIRRORS = Path("/work/.mirror")


@dataclass
class StageReport:
    staged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # already staged with the right bytes
    missing_snapshot: list[str] = field(default_factory=list)
    missing_file: list[str] = field(default_factory=list)
    mismatch: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.staged) + len(self.kept)

    def summary(self) -> str:
        parts = [f"staged {self.ok} ({len(self.staged)} written, {len(self.kept)} already there)",
                 f"missing snapshot {len(self.missing_snapshot)}", f"not in snapshot {len(self.missing_file)}",
                 f"sha/size mismatch {len(self.mismatch)}"]
        if self.removed:
            parts.append(f"removed stale {len(self.removed)}")
        lines = ["summary: " + ", ".join(parts)]
        for label, items in (("missing snapshot", self.missing_snapshot), ("not in snapshot", self.missing_file),
                             ("mismatch", self.mismatch), ("removed stale", self.removed)):
            lines += [f"  {label}: {item}" for item in items]
        return "\n".join(lines)


def snapshot_dir(mirrors: Path, repo: str) -> Path | None:
    """The git directory of a fetched snapshot of owner/name, or None when it was not fetched. Most snapshots
    arrive bare (``<owner>+<name>/repo``); some arrive with a work tree (fetch answered ``.../repo/.git`` for
    youngung/jekyll-now), so ``repo/.git`` is looked at too."""
    base = mirrors / repo.replace("/", "+", 1)
    for candidate in (base / "repo", base / "repo" / ".git", base):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def git_blob(git_dir: Path, commit: str, path: str) -> bytes | None:
    """The bytes of path at commit, or None when the snapshot lacks that commit or file."""
    done = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "blob", f"{commit}:{path}"],
                          capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage_paper(paper: RegistryPaper, out: Path, mirrors: Path, report: StageReport) -> bool:
    """Write OUT/pdfs/<slug>.pdf for one paper; record the outcome in report. True when it is staged."""
    target = out / paper.file
    name = f"{paper.slug} ({paper.source.repo}@{paper.source.commit[:12]}:{paper.source.path})"
    if target.is_file() and target.stat().st_size == paper.bytes and sha256_of(target.read_bytes()) == paper.sha256:
        report.kept.append(paper.slug)
        return True
    git_dir = snapshot_dir(mirrors, paper.source.repo)
    if git_dir is None:
        report.missing_snapshot.append(f"{paper.slug}: fetch github:{paper.source.repo} "
                                       f"(no {mirrors / paper.source.repo.replace('/', '+', 1)})")
        return False
    data = git_blob(git_dir, paper.source.commit, paper.source.path)
    if data is None:
        report.missing_file.append(f"{name}: commit or path not in the snapshot {git_dir}")
        return False
    digest = sha256_of(data)
    if digest != paper.sha256 or len(data) != paper.bytes:
        report.mismatch.append(f"{name}: got sha256 {digest[:12]}… {len(data)} bytes, "
                               f"registry says {paper.sha256[:12]}… {paper.bytes} bytes")
        return False
    if data[:5] != b"%PDF-":
        report.mismatch.append(f"{name}: not a PDF (starts {data[:8]!r}; a Git LFS pointer?)")
        return False
    write_bytes_atomic(target, data)
    report.staged.append(paper.slug)
    return True


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def readme_text(papers: list[RegistryPaper]) -> str:
    positives = sum(p.role == "positive" for p in papers)
    lines = [
        "# Staged registry of real papers (generated by benchmarks/stage_registry.py: do not edit)",
        "",
        f"{len(papers)} PDFs, {positives} with fracture surfaces. Annotations: annotations.json, one entry per "
        "PDF in the format of ../shared/real_literature (see its README) plus sha256, bytes, topics, found_by. "
        "The source of truth is benchmarks/real_registry/papers/*.json in the project repository "
        "(docs/real_registry.md). These PDFs are development data, mostly under publisher copyright: never "
        "copy them, or images rendered from them, into the repository.",
        "",
        "| file | role | layout | topics | figures | fractograph panels | repository @ commit | path | licence note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in papers:
        figs = [f for f in p.figures if not f.ignore]
        n_frac = sum(len(f.fractograph_panels) for f in figs)
        lines.append(f"| {p.file} | {p.role} | {p.layout} | {', '.join(p.topics)} | {len(figs)} | {n_frac} | "
                     f"{p.source.repo} @ {p.source.commit[:12]} | {_cell(p.source.path)} | "
                     f"{_cell(p.licence_note)} |")
    return "\n".join(lines) + "\n"


def stage(out: Path, mirrors: Path, registry: Path = REGISTRY_PAPERS, progress: bool = True) -> StageReport:
    """Stage every registry paper that can be; raises RegistryError (before writing anything) on invalid JSON."""
    papers = load_registry(registry)
    report = StageReport()
    staged: list[RegistryPaper] = []
    for paper in tqdm(papers, desc="stage", unit="pdf", disable=not progress):
        if stage_paper(paper, out, mirrors, report):
            staged.append(paper)
        elif (out / paper.file).is_file():  # an older copy with other bytes: not what the annotations describe
            (out / paper.file).unlink()
            report.removed.append(Path(paper.file).name)
    wanted = {Path(p.file).name for p in papers}
    for stale in sorted((out / "pdfs").glob("*.pdf")) if (out / "pdfs").is_dir() else []:
        if stale.name not in wanted:
            stale.unlink()
            report.removed.append(stale.name)
    write_json_atomic(out / "annotations.json", [p.annotation() for p in staged])
    write_text_atomic(out / "README.md", readme_text(staged))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"staging folder (default: {DEFAULT_OUT})")
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS,
                        help=f"folder of fetched snapshots, <owner>+<name>/repo (default: {DEFAULT_MIRRORS})")
    parser.add_argument("--registry", type=Path, default=REGISTRY_PAPERS,
                        help="folder of the paper JSON files (default: benchmarks/real_registry/papers)")
    parser.add_argument("--check", action="store_true", help="only validate the registry JSON; stage nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    ns = parser.parse_args(argv)
    try:
        if ns.check:
            papers = load_registry(ns.registry)
            positives = sum(p.role == "positive" for p in papers)
            print(f"summary: {len(papers)} registry files valid ({positives} positive, "
                  f"{len(papers) - positives} negative) in {ns.registry}")
            return 0
        report = stage(ns.out.resolve(), ns.mirrors, ns.registry, progress=not ns.no_progress)
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.ok:
        print(f"wrote {ns.out.resolve() / 'annotations.json'} and README.md ({report.ok} papers)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
