"""What may be published: the licence allow-list over a built dataset, and the attribution of its source papers.

Reads a build's output folder (OUT/dataset: the ShareGPT files and their ``<name>_<split>_meta.jsonl``;
OUT/stages/panels/<paper>.json: each paper's title, authors, year, venue, DOI, licence and source URL, see
records.SourceMeta) and decides, per image, whether it may be published under an allow-list of licence ids
(dataset_builders.licences):

- an image is published only if **every** paper it appears in has an allowed licence. A near-duplicate
  found in two papers is often a figure one paper reprinted from the other, and the reprinting paper's
  licence does not cover a third party's figure; manual images and papers without a stated licence are
  ``unknown``, published only when ``unknown`` is on the list;
- under a no-derivatives licence (cc-by-nd, cc-by-nc-nd) only the images as the PDF holds them: a panel cropped
  out of a composite figure and a rotated copy are adapted material, which these licences do not allow to share;
- the attribution lists every source paper of the published images in the form CC BY asks for. The CC BY
  4.0 legal code, Section 3(a)(1) (https://creativecommons.org/licenses/by/4.0/legalcode, read 2026-12 via
  its text in scancode-licensedb, cc-by-4.0.yml): who shares the material must (A) retain the creators'
  identification, a copyright notice, a notice referring to the licence and to its disclaimer of warranties,
  and a URI to the material; (B) indicate whether they modified it, keeping earlier modification notices;
  (C) indicate the licence with its text or URI. Hence per paper: authors, title, year, venue, DOI, licence
  with its link, source URL and the changes we made (extracted from the PDF, cropped into panels, rotated).

Usage:
    from dataset_builders.publish import select, write_attribution
    selection = select(Path("runs/ds1"), ("cc-by", "cc-by-sa", "cc0"))
    write_attribution(selection, Path("hf_out"))     # ATTRIBUTION.md + attribution.json
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from dataset_builders.licences import KNOWN_IDS, UNKNOWN, licence_url
from dataset_builders.records import SourceMeta
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import text_lines, write_json_atomic, write_text_atomic

SPLITS = ("train", "val", "test")
DEFAULT_LICENCES = ("cc-by", "cc-by-sa", "cc0", "public-domain")  # as the fetcher downloads by default
CROPPED = {"gutter": "cropped into panels (composite figure split at its white gutters)",
           "layout": "cropped into panels (composite figure split by its layout)",
           "seam": "cropped into panels (composite figure split where abutting images meet)"}
# licences that allow sharing the material only unadapted (CC BY-ND 4.0 Section 2(a)(1)(B): "produce and reproduce,
# but not Share, Adapted Material"; Section 2(a)(4): technical changes of format never produce Adapted Material)
NO_DERIVATIVES = frozenset({"cc-by-nd", "cc-by-nc-nd"})


class PublishError(Exception):
    """Bad input for publishing: the message names the file and the reason."""


def parse_licences(text: str) -> tuple[str, ...]:
    """"cc-by,cc-by-sa,cc0" -> ("cc-by", "cc-by-sa", "cc0"); unknown ids are refused with the valid list."""
    ids = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [i for i in ids if i not in KNOWN_IDS]
    if bad or not ids:
        raise PublishError(f"--licences {text!r}: unknown licence id(s) {bad or '(none given)'}; "
                           f"known: {', '.join(KNOWN_IDS)}")
    return ids


def adapted(meta: dict) -> bool:
    """Whether a sample's image is adapted material: a rotated copy, or a panel cropped out of a composite figure
    (an image used as the PDF holds it -- a whole figure, or one of the PDF's own per-panel images -- is not)."""
    return bool(meta["augmentation"]) or meta["provenance"].get("split_method") in CROPPED


@dataclass(frozen=True)
class BuiltSample:
    """One sample of the built dataset: its ShareGPT record, its meta line, and its image file."""

    split: str
    record: dict  # {"messages": [...], "images": ["images/<split>/<id>.jpg"]}
    meta: dict  # the <name>_<split>_meta.jsonl line (ids, features, provenance, augmentation, texts)
    image: Path  # absolute path of the image file

    @property
    def manual(self) -> bool:  # as export.is_manual decides it, from the meta line
        return self.meta["label_origin"] == "manual" or any(p.startswith("manual:") for p in self.meta["paper_ids"])

    @property
    def part(self) -> str:
        """Which disjoint part of its split the sample belongs to; the ablations are unions of parts."""
        if self.split != "train":
            return "all"
        kind = "augmented" if self.meta["augmentation"] else "original"
        return f"manual_{kind}" if self.manual else kind


def read_built(paths: StagePaths, name: str) -> dict[str, list[BuiltSample]]:
    """{split: samples} of the built dataset OUT/dataset (the ShareGPT list and its meta lines, in step)."""
    out: dict[str, list[BuiltSample]] = {}
    for split in SPLITS:
        data_file = paths.dataset / f"{name}_{split}.json"
        meta_file = paths.dataset / f"{name}_{split}_meta.jsonl"
        for f in (data_file, meta_file):
            if not f.is_file():
                raise PublishError(f"{f}: missing; build the dataset first (python -m dataset_builders.build "
                                   f"--out {paths.out})")
        records = _read_json(data_file, lambda text: json.loads(text))
        _, metas = _read_json(meta_file, _parse_lines)
        if len(records) != len(metas):
            raise PublishError(f"{data_file}: {len(records)} samples but {meta_file.name} has {len(metas)} lines")
        samples = []
        dataset = paths.dataset
        for record, meta in zip(records, metas):
            if record["images"] != [meta["image"]]:
                raise PublishError(f"{data_file}: sample {meta['sample_id']} names {record['images']}, its meta "
                                   f"line {meta['image']!r}; rebuild with --from-stage export")
            samples.append(BuiltSample(split, record, meta, dataset / meta["image"]))
        out[split] = samples
    return out


def _parse_lines(text: str) -> tuple[list[str], list[dict]]:
    """(the non-blank lines, each parsed), parsed as one array (one decoder call: 39 instead of 50 ms for the
    heavy corpus's 4,480 train lines); after an error each line alone, for the error's own line number."""
    lines = [line for line in text_lines(text) if line.strip()]
    try:
        values = json.loads("[" + ",".join(lines) + "]")
    except json.JSONDecodeError:
        values = None
    if values is None or len(values) != len(lines):  # ("1, 2" is two values in the array, an error alone)
        values, start = [], 0
        for line in text_lines(text):  # the same lines, with the offset of each in the text
            if line.strip():
                try:
                    values.append(json.loads(line))
                except json.JSONDecodeError as exc:  # positions in the whole text: its lineno is the file's line
                    raise json.JSONDecodeError(exc.msg, text, start + exc.pos) from None
            start += len(line) + 1
    return lines, values


def _read_json(path: Path, parse):
    try:
        return parse(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PublishError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def load_sources(paths: StagePaths, pdfs: dict[str, str] | None = None) -> dict[str, SourceMeta]:
    """{paper id: title, DOI, licence, authors, ...} from stages/panels/<paper>.json; pdfs: filled with {paper id:
    its PDF's file name} (the panels file's source_pdf)."""
    sources: dict[str, SourceMeta] = {}
    fields = set(SourceMeta.model_fields)
    for f in sorted(paths.panels.glob("*.json")):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            sources[data.get("paper_id", f.stem)] = SourceMeta.model_validate(
                {k: v for k, v in data.items() if k in fields})
            if pdfs is not None and isinstance(data.get("source_pdf"), str):
                pdfs[data.get("paper_id", f.stem)] = data["source_pdf"]
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON, pydantic's ValidationError
            reason = ("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                      if isinstance(exc, ValidationError) else str(exc).splitlines()[0])
            raise PublishError(f"{f}: unreadable panels file ({reason}); rebuild with --from-stage panels") from None
    return sources


def paper_licence(paper_id: str, sources: dict[str, SourceMeta]) -> str:
    """A source's licence id; manual sources and papers without a record are "unknown"."""
    source = sources.get(paper_id)
    return source.licence if source is not None and not paper_id.startswith("manual:") else UNKNOWN


class Attribution(BaseModel):
    """One source of published images, as attribution.json lists it (CC BY 4.0 Section 3(a)(1))."""

    model_config = ConfigDict(extra="forbid")

    source: str  # paper id (first 16 hex of the PDF's SHA-256) or "manual:<collection>"
    title: str | None = None
    authors: list[str] = []
    year: int | None = None
    venue: str | None = None
    doi: str | None = None
    doi_url: str | None = None
    licence: str
    licence_url: str | None = None  # as the source stated it (with its version)
    licence_link: str | None = None  # that, else the licence's versionless page (never a guessed version)
    source_url: str | None = None
    source_pdf: str | None = None
    changes: list[str]  # what we did to the material (Section 3(a)(1)(B))
    images: int  # published original images from this source
    samples: int  # published samples (originals + rotated copies) showing them
    sample_ids: list[str]


@dataclass
class Selection:
    """The published samples per split, and what was left out by licence."""

    licences: tuple[str, ...]
    samples: dict[str, list[BuiltSample]]
    sources: dict[str, SourceMeta]
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # licence -> papers / items / samples
    published: dict[str, dict[str, int]] = field(default_factory=dict)
    source_pdfs: dict[str, str] = field(default_factory=dict)  # paper id -> its PDF's file name (panels file)

    def attributions(self) -> list[Attribution]:
        """Every source paper of the published samples, sorted by source id."""
        by_source: dict[str, list[BuiltSample]] = defaultdict(list)
        for split in SPLITS:
            for s in self.samples[split]:
                for p in s.meta["paper_ids"]:
                    by_source[p].append(s)
        out = []
        for source_id in sorted(by_source):
            samples = by_source[source_id]
            meta = self.sources.get(source_id) if not source_id.startswith("manual:") else None
            src = meta or SourceMeta()
            # a sample's provenance names its representative's PDF: a reprint's is another paper's
            pdfs = [self.source_pdfs[source_id]] if source_id in self.source_pdfs else sorted(
                {s.meta["provenance"].get("source_pdf") for s in samples if s.meta["provenance"].get("source_pdf")})
            licence = paper_licence(source_id, self.sources)
            out.append(Attribution(
                source=source_id, title=src.title, authors=src.authors, year=src.year, venue=src.venue,
                doi=src.doi, doi_url=f"https://doi.org/{src.doi}" if src.doi else None,
                licence=licence, licence_url=src.licence_url, licence_link=src.licence_url or licence_url(licence),
                source_url=src.source_url, source_pdf=pdfs[0] if len(pdfs) == 1 else None,
                changes=changes_made(samples), images=len({s.meta["item_id"] for s in samples}),
                samples=len(samples), sample_ids=sorted(s.meta["sample_id"] for s in samples)))
        return out


def changes_made(samples: list[BuiltSample]) -> list[str]:
    """What the builder did to a source's images, from the published samples' provenance and augmentation."""
    changes = ["images extracted from the PDF"]
    methods = sorted({s.meta["provenance"].get("split_method") for s in samples} & set(CROPPED))
    changes += [CROPPED[m] for m in methods]
    angles = sorted({float(s.meta["augmentation"]["angle"]) for s in samples if s.meta["augmentation"]})
    right = [a for a in angles if a in (90.0, 180.0, 270.0)]
    if right:
        changes.append("rotated by " + ", ".join(f"{a:g}" for a in right) + " degrees")
    if len(right) < len(angles):
        changes.append("rotated by other angles and cropped to the largest rectangle without empty corners")
    if methods or angles:
        changes.append("cropped and rotated images re-encoded as JPEG")
    return changes


def select(out: Path, licences: tuple[str, ...], name: str | None = None) -> Selection:
    """The samples of the build in ``out`` whose every source paper has a licence of ``licences``."""
    paths = StagePaths(out)
    if name is None:
        config = paths.out / "build_config.json"
        name = json.loads(config.read_text(encoding="utf-8"))["dataset_name"] if config.is_file() else "fracto"
    built = read_built(paths, name)
    source_pdfs: dict[str, str] = {}
    sources = load_sources(paths, source_pdfs)
    allowed = set(licences)
    selection = Selection(licences=licences, samples={s: [] for s in SPLITS}, sources=sources, source_pdfs=source_pdfs)
    counts: dict[str, dict[str, dict[str, set]]] = {"published": {}, "excluded": {}}
    licence_of: dict[str, str] = {}  # paper id -> paper_licence, once per paper (not twice per sample)
    for split in SPLITS:
        published = selection.samples[split]
        for s in built[split]:
            meta = s.meta
            rep = str(meta["provenance"].get("licence") or UNKNOWN)
            papers = meta["paper_ids"]
            for p in papers:
                if p not in licence_of:
                    licence_of[p] = paper_licence(p, sources)
            refused = sorted({licence_of[p] for p in papers} - allowed)
            if not refused and adapted(meta):  # a crop or a rotated copy of a no-derivatives paper's image
                refused = sorted(({licence_of[p] for p in papers} | {rep}) & NO_DERIVATIVES)
            if not refused and rep in allowed:
                published.append(s)
                key, kind = rep, "published"
            else:  # reported under the image's own licence, or the reprinting (or no-derivatives) paper's that stopped it
                key, kind = (rep if rep not in allowed else refused[0]), "excluded"
            row = counts[kind].setdefault(key, {"papers": set(), "items": set(), "samples": set()})
            row["papers"].update(p for p in papers if licence_of[p] == key)
            row["items"].add(meta["item_id"])
            row["samples"].add(meta["sample_id"])
    for kind, table in counts.items():
        setattr(selection, kind, {lic: {k: len(v) for k, v in row.items()} for lic, row in sorted(table.items())})
    return selection


def attribution_markdown(selection: Selection, attributions: list[Attribution]) -> str:
    lines = ["# Attribution", "",
             "The images of this dataset come from the publications below, each under the licence named with it. "
             "As the Creative Commons licences ask (CC BY 4.0, Section 3(a)(1)), each entry names the creators, "
             "the work, its licence with a link, where it was obtained, and the changes made. The material is "
             "provided as-is: see each licence's disclaimer of warranties. Copyright remains with the rights "
             "holders stated in each publication.", "",
             f"Licences allowed for this release: {', '.join(selection.licences)}.", ""]
    for a in attributions:
        who = ", ".join(a.authors) if a.authors else "authors not recorded"
        head = f"- **{a.title or a.source_pdf or a.source}** — {who}"
        head += f" ({a.year})" if a.year else ""
        head += f". *{a.venue.rstrip('.')}*." if a.venue else "."
        parts = [head]
        if a.doi:
            parts.append(f"DOI: [{a.doi}]({a.doi_url}).")
        licence = f"[{a.licence}]({a.licence_link})" if a.licence_link else a.licence
        licence += "" if a.licence_url or not a.licence_link else " (version not stated)"
        parts.append(f"Licence: {licence}.")
        if a.source_url:
            parts.append(f"Source: <{a.source_url}>.")
        parts.append(f"Changes made: {', '.join(a.changes)}.")
        parts.append(f"In this dataset: {a.images} image(s), {a.samples} sample(s). (source id `{a.source}`)")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def write_attribution(selection: Selection, folder: Path, durable: bool = True) -> list[Attribution]:
    """folder/ATTRIBUTION.md (for people) and folder/attribution.json (one Attribution per source); durable=False:
    no fsync (a staging folder that is renamed into place whole)."""
    attributions = selection.attributions()
    write_json_atomic(folder / "attribution.json", {
        "licences_allowed": list(selection.licences),
        "sources": [a.model_dump() for a in attributions],
    }, durable=durable)
    write_text_atomic(folder / "ATTRIBUTION.md", attribution_markdown(selection, attributions), durable=durable)
    return attributions


def licence_counts(samples: dict[str, list[BuiltSample]]) -> Counter:
    """Published samples per licence of their image (the representative paper's)."""
    return Counter(str(s.meta["provenance"].get("licence") or UNKNOWN) for split in SPLITS for s in samples[split])
