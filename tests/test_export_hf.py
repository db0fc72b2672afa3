"""The Hugging Face export (dataset_builders.export_hf): the licence allow-list on a corpus whose manifest mixes
licences, the attribution file, Parquet shards read by the real `datasets` and pyarrow, LlamaFactory's own loader
and a real CPU training step on them, byte-identical images, bounded row groups, and the optional push.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from dataset_builders import export_hf, hf_shards
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.fetch.manifest import MANIFEST_NAME, ManifestRecord
from dataset_builders.publish import PublishError, _parse_lines, _read_json, parse_licences
from dataset_builders.records import PaperRecord
from fracto_core.files import read_model

REPO = Path(__file__).resolve().parents[1]
# (licence, licence URL) per PDF of the manifest; the 6th PDF has no manifest line and states none: "unknown"
MANIFEST_LICENCES = [("cc-by", "https://creativecommons.org/licenses/by/4.0/"),
                     ("cc-by", None),  # no version stated: the Hub licence id must be "other", not a guess
                     ("cc-by-sa", "https://creativecommons.org/licenses/by-sa/4.0/"),
                     ("cc-by-nc", "https://creativecommons.org/licenses/by-nc/4.0/"),
                     ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/")]
ALLOWED = ("cc-by", "cc-by-sa", "cc0")
SPLITS = ("train", "val", "test")
HF = {"train": "train", "val": "validation", "test": "test"}


@pytest.fixture(scope="module")
def mixed_build(corpus_dir, tmp_path_factory) -> Path:
    """6 sample-corpus PDFs, 5 of them in a fetch manifest with mixed licences, + the manual set; built."""
    return _build_with_licences(corpus_dir, tmp_path_factory.mktemp("hf_mixed"), MANIFEST_LICENCES)


def _build_with_licences(corpus_dir: Path, work: Path, licences: list[tuple[str, str | None]]) -> Path:
    """The first 6 sample-corpus PDFs, the first len(licences) of them in a fetch manifest with these (licence, URL),
    + the manual set; built into work/out."""
    papers = work / "papers"
    papers.mkdir()
    pdfs = sorted((corpus_dir / "papers").glob("*.pdf"))[:6]
    lines = []
    for i, pdf in enumerate(pdfs):
        shutil.copy(pdf, papers / pdf.name)
        if i < len(licences):
            licence, url = licences[i]
            lines.append(ManifestRecord(
                key=f"openalex:W{i}", source="openalex", doi=f"10.9999/hf.{i}", title=f"Paper {i} on fractography",
                authors=[f"A. Author{i}", "B. Second"], year=2020 + i, venue="J. Fract.", licence=licence,
                licence_url=url, source_url=f"https://example.org/{i}.pdf", pdf=pdf.name,
                sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(), status="downloaded",
                fetched_at="2026-12-01T00:00:00+00:00").model_dump_json())
    (papers / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
    out = work / "out"
    build(BuildConfig(papers=papers, manual=corpus_dir / "manual", out=out, workers=1, seed=3,
                      arbitrary_rotations=1), progress=False)
    return out


def _meta(build_out: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in (build_out / "dataset" / f"fracto_{s}_meta.jsonl").read_text().splitlines()]
            for s in SPLITS}


def _papers(build_out: Path) -> dict[str, PaperRecord]:
    return {r.paper_id: r for r in (read_model(f, PaperRecord) for f in (build_out / "stages" / "mine").glob("*/paper.json"))}


def _rows(folder: Path) -> list[dict]:
    """Every row of every shard, read with pyarrow alone (no datasets)."""
    return [r for f in sorted((folder / "data").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _allowed(meta: dict, papers: dict[str, PaperRecord], allowed: set[str]) -> bool:
    """The rule, restated: every source paper's licence allowed (manual sources: unknown)."""
    return all((papers[p].licence if p in papers else "unknown") in allowed for p in meta["paper_ids"])


@pytest.fixture(scope="module")
def exported(mixed_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf_export") / "hf"
    export_hf.export(mixed_build, out, ALLOWED, progress=False)
    return out


def test_manifest_really_mixes_licences(mixed_build):
    papers = _papers(mixed_build)
    assert sorted(Counter(p.licence for p in papers.values()).items()) == [
        ("cc-by", 2), ("cc-by-nc", 1), ("cc-by-sa", 1), ("cc0", 1), ("unknown", 1)]
    metas = [m for s in SPLITS for m in _meta(mixed_build)[s]]
    # every licence stands behind some sample (a reprint's provenance names its representative paper's licence,
    # so the set is taken over all its source papers, as the publishing rule does)
    behind = {papers[p].licence if p in papers else "unknown" for m in metas for p in m["paper_ids"]}
    assert behind == {"cc-by", "cc-by-nc", "cc-by-sa", "cc0", "unknown"}
    assert {"cc-by", "cc-by-sa"} <= {m["provenance"]["licence"] for m in metas} <= behind


def test_licence_filter_keeps_only_allowed_papers_and_reports_the_rest(mixed_build, exported):
    papers, metas = _papers(mixed_build), _meta(mixed_build)
    rows = _rows(exported)
    expected = {m["sample_id"] for s in SPLITS for m in metas[s] if _allowed(m, papers, set(ALLOWED))}
    assert expected and {r["sample_id"] for r in rows} == expected and len(rows) == len(expected)
    assert {"cc-by", "cc-by-sa"} <= {r["licence"] for r in rows} <= set(ALLOWED)
    # a reprint: the cc0 paper's image also appears in a paper with no stated licence, so it is left out
    reprints = [m for s in SPLITS for m in metas[s] if m["provenance"]["licence"] in ALLOWED
                and not _allowed(m, papers, set(ALLOWED))]
    assert reprints and not {m["sample_id"] for m in reprints} & {r["sample_id"] for r in rows}
    assert all(len(m["paper_ids"]) > 1 for m in reprints)
    for r in rows:
        assert all(papers[p].licence in ALLOWED for p in r["paper_ids"]), r["sample_id"]
    summary = json.loads((exported / "export_hf.json").read_text())
    excluded = summary["excluded"]
    assert set(excluded) == {"cc-by-nc", "unknown"}  # unknown excluded: not asked for
    left_out = [m for s in SPLITS for m in metas[s] if m["sample_id"] not in expected]
    assert sum(v["samples"] for v in excluded.values()) == len(left_out)
    def reported_under(m):  # the image's own licence, else the reprinting paper's that stopped it
        own = m["provenance"]["licence"]
        return own if own not in ALLOWED else sorted(
            {papers[p].licence if p in papers else "unknown" for p in m["paper_ids"]} - set(ALLOWED))[0]

    assert {k: v["samples"] for k, v in excluded.items()} == dict(Counter(reported_under(m) for m in left_out))
    assert excluded["cc-by-nc"]["papers"] == 1
    readme = (exported / "README.md").read_text()
    assert "| cc-by-nc | 1 |" in readme and "Not published" in readme


def test_unknown_is_published_only_when_asked_for(mixed_build, tmp_path):
    out = tmp_path / "hf_unknown"
    assert export_hf.main([str(out), "--build", str(mixed_build), "--licences", "cc-by,unknown", "--quiet"]) == 0
    papers, metas = _papers(mixed_build), _meta(mixed_build)
    rows = _rows(out)
    assert {r["licence"] for r in rows} == {"cc-by", "unknown"}
    assert any(r["label_origin"] == "manual" for r in rows)  # the manual images are "unknown"
    expected = {m["sample_id"] for s in SPLITS for m in metas[s] if _allowed(m, papers, {"cc-by", "unknown"})}
    assert {r["sample_id"] for r in rows} == expected
    assert "cc-by-sa" in json.loads((out / "export_hf.json").read_text())["excluded"]


ND_LICENCES = [("cc-by-nd", "https://creativecommons.org/licenses/by-nd/4.0/"),
               ("cc-by", "https://creativecommons.org/licenses/by/4.0/"),
               ("cc-by-nc-nd", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
               ("cc-by-nd", "https://creativecommons.org/licenses/by-nd/4.0/"),
               ("cc-by", "https://creativecommons.org/licenses/by/4.0/")]


def _adapted(m: dict) -> bool:
    """A rotated copy, or a panel cropped out of a composite figure (the builder's split methods that crop)."""
    return bool(m["augmentation"]) or m["provenance"].get("split_method") in ("gutter", "layout", "seam")


def test_no_derivatives_papers_publish_only_unadapted_images(corpus_dir, tmp_path):
    """CC BY-ND / BY-NC-ND allow sharing the material, not adaptations of it: with those licences on the list, their
    whole images are published, never a cropped panel or a rotated copy (docs/publishing.md); CC BY's still are."""
    build_out = _build_with_licences(corpus_dir, tmp_path, ND_LICENCES)
    out = tmp_path / "hf_nd"
    allowed = ("cc-by", "cc-by-nd", "cc-by-nc-nd")
    assert export_hf.main([str(out), "--build", str(build_out), "--licences", ",".join(allowed), "--quiet"]) == 0
    papers, metas = _papers(build_out), _meta(build_out)
    nd = {pid for pid, p in papers.items() if p.licence in ("cc-by-nd", "cc-by-nc-nd")}
    rows = _rows(out)
    published = {r["sample_id"] for r in rows}
    by_id = {m["sample_id"]: m for s in SPLITS for m in metas[s]}
    nd_adapted = {i for i, m in by_id.items() if _adapted(m) and set(m["paper_ids"]) & nd}
    assert nd_adapted and not nd_adapted & published  # the corpus has ND crops/rotations; none is published
    assert any(set(by_id[i]["paper_ids"]) & nd for i in published)  # ND images as the PDF holds them are
    assert any(_adapted(by_id[i]) for i in published)  # CC BY's crops and rotated copies still are
    expected = {i for i, m in by_id.items() if _allowed(m, papers, set(allowed))} - nd_adapted
    assert published == expected
    excluded = json.loads((out / "export_hf.json").read_text())["excluded"]
    assert sum(excluded.get(lic, {}).get("samples", 0) for lic in ("cc-by-nd", "cc-by-nc-nd")) == len(nd_adapted)


def test_attribution_lists_exactly_the_papers_behind_the_published_images(mixed_build, exported):
    papers = _papers(mixed_build)
    rows = _rows(exported)
    behind = {p for r in rows for p in r["paper_ids"]}
    data = json.loads((exported / "attribution.json").read_text())
    assert data["licences_allowed"] == list(ALLOWED)
    sources = {a["source"]: a for a in data["sources"]}
    assert set(sources) == behind
    md = (exported / "ATTRIBUTION.md").read_text()
    for pid, a in sources.items():
        p = papers[pid]
        assert (a["title"], a["authors"], a["year"], a["venue"], a["doi"], a["licence"], a["licence_url"],
                a["source_url"]) == (p.title, p.authors, p.year, p.venue, p.doi, p.licence, p.licence_url, p.source_url)
        assert a["doi_url"] == f"https://doi.org/{p.doi}"
        assert a["samples"] == sum(pid in r["paper_ids"] for r in rows)
        assert p.title in md and f"[{p.doi}](https://doi.org/{p.doi})" in md
        if p.licence_url:
            assert a["licence_link"] == p.licence_url and f"[{p.licence}]({p.licence_url})" in md
        else:  # no version stated: the versionless licence page, said so
            assert a["licence_link"] == "https://creativecommons.org/licenses/by/"
            assert "[cc-by](https://creativecommons.org/licenses/by/) (version not stated)" in md
        rotated = sorted({r["rotation_angle"] for r in rows if pid in r["paper_ids"] and r["rotation_angle"] in
                          (90.0, 180.0, 270.0)})
        if rotated:
            assert "rotated by " + ", ".join(f"{x:g}" for x in rotated) + " degrees" in a["changes"]
        methods = {json.loads(r["provenance"])["split_method"] for r in rows if pid in r["paper_ids"]}
        assert any(c.startswith("cropped into panels") for c in a["changes"]) == bool(methods & {"gutter", "layout"})
    assert any("rotated by 90, 180, 270 degrees" in a["changes"] for a in sources.values())
    # no excluded paper is credited as a source of this release
    assert not {pid for pid, p in papers.items() if p.licence not in ALLOWED} & set(sources)


def test_attribution_names_each_papers_own_pdf_also_for_a_reprinted_image(mixed_build, tmp_path):
    """A reprinted image's provenance names its representative paper's PDF; each source's attribution names its own
    (the test corpus's cc0 paper's image is also in the paper that states no licence: both published here)."""
    out = tmp_path / "hf_all"
    export_hf.export(mixed_build, out, ("cc-by", "cc-by-sa", "cc0", "unknown"), progress=False)
    papers, rows = _papers(mixed_build), _rows(out)
    assert any(len(r["paper_ids"]) > 1 for r in rows)  # a reprint is published
    sources = json.loads((out / "attribution.json").read_text())["sources"]
    mined = [a for a in sources if not a["source"].startswith("manual:")]
    behind = {p for r in rows for p in r["paper_ids"] if not p.startswith("manual:")}
    assert {a["source"] for a in mined} == behind
    assert {a["source"]: a["source_pdf"] for a in mined} == {pid: papers[pid].source_pdf for pid in behind}


def test_datasets_loads_every_split_and_config_with_byte_identical_images(mixed_build, exported, hf_env):
    import datasets

    metas = _meta(mixed_build)
    papers = _papers(mixed_build)
    published = {s: [m for m in metas[s] if _allowed(m, papers, set(ALLOWED))] for s in SPLITS}
    cache = str(hf_env / "datasets_export")
    ds = datasets.load_dataset(str(exported), cache_dir=cache)
    assert sorted(ds) == sorted(HF[s] for s in SPLITS if published[s])
    built = {s: json.loads((mixed_build / "dataset" / f"fracto_{s}.json").read_text()) for s in SPLITS}
    for split in SPLITS:
        if not published[split]:
            continue
        got = ds[HF[split]]
        assert isinstance(got.features["images"].feature, datasets.Image) and got.features["images"].feature.decode
        assert sorted(got["sample_id"]) == sorted(m["sample_id"] for m in published[split])
        raw = got.cast_column("images", datasets.List(datasets.Image(decode=False)))
        records = {m["sample_id"]: r for m, r in zip(metas[split], built[split])}
        for row in raw:
            source = mixed_build / "dataset" / records[row["sample_id"]]["images"][0]
            assert row["images"][0]["bytes"] == source.read_bytes(), row["sample_id"]
            assert row["messages"] == records[row["sample_id"]]["messages"]
        first = got[0]["images"][0]  # decoded: a PIL image of the stored size
        meta = next(m for m in published[split] if m["sample_id"] == got[0]["sample_id"])
        assert first.size == Image.open(mixed_build / "dataset" / meta["image"]).size
    # the ablation configs: the builder's variants, restricted to the published samples
    for config, variant in (("no_manual", "train_no_manual"), ("no_rotation", "train_no_rotation")):
        ids = {s["images"][0] for s in json.loads((mixed_build / "dataset" / f"fracto_{variant}.json").read_text())}
        want = sorted(m["sample_id"] for m in published["train"] if m["image"] in ids)
        assert sorted(datasets.load_dataset(str(exported), config, split="train", cache_dir=cache)["sample_id"]) == want
    readme = (exported / "README.md").read_text()
    assert readme.startswith("---\nlicense:") and "&id" not in readme  # no YAML anchors
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(exported / "README.md").data
    assert card.task_categories == ["image-text-to-text"] and card.size_categories == ["n<1K"]
    hub = {"https://creativecommons.org/licenses/by/4.0/": "cc-by-4.0", None: "other",  # versionless cc-by: other
           "https://creativecommons.org/licenses/by-sa/4.0/": "cc-by-sa-4.0",
           "https://creativecommons.org/publicdomain/zero/1.0/": "cc0-1.0"}
    want_licences = sorted({hub[r["licence_url"]] for r in _rows(exported)})
    assert "other" in want_licences and sorted(card.license) == want_licences
    assert (card.license_name, card.license_link) == ("mixed-per-image", "ATTRIBUTION.md")
    assert [c["config_name"] for c in card.configs] == ["default", "no_manual", "no_rotation"]


def test_the_cards_load_snippet_names_only_configs_the_export_has(mixed_build, tmp_path):
    """A build without the ablation variants: the card's configs are "default" alone, and so is its load snippet."""
    build_out = tmp_path / "no_variants"
    shutil.copytree(mixed_build, build_out)
    config_file = build_out / "build_config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"variants": False}))
    out = tmp_path / "hf"
    export_hf.export(build_out, out, ALLOWED, progress=False)
    readme = (out / "README.md").read_text()
    configs = [c["config_name"] for c in yaml.safe_load(readme.split("---")[1])["configs"]]
    assert configs == ["default"]
    named = set(re.findall(r'load_dataset\("[^"]*", "([^"]+)"\)', readme))
    assert named <= set(configs), named


def test_llamafactory_loader_reads_every_entry_from_the_original_bytes(mixed_build, exported, tmp_path):
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments, TrainingArguments

    info = json.loads((exported / "dataset_info.json").read_text())
    names = sorted(info)
    folders = json.loads((exported / "export_hf.json").read_text())["folders"]
    assert sorted(info[n]["file_name"] for n in names) == sorted(folders)  # one entry per data folder
    assert {"fracto_train_original", "fracto_train_augmented", "fracto_test"} <= set(names)  # no manual: unknown
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(tmp_path / "cache"))
    data_args = DataArguments(dataset_dir=str(exported), dataset=",".join(names))
    training_args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none")
    by_id = {m["sample_id"]: m for s in SPLITS for m in _meta(mixed_build)[s]}
    rows = {r["sample_id"]: r for r in _rows(exported)}
    total = 0
    for name, attr in zip(names, get_dataset_list(names, str(exported))):
        assert attr.load_from == "file"
        shards = sorted((exported / info[name]["file_name"]).glob("*.parquet"))
        ids = [r for f in shards for r in pq.read_table(f, columns=["sample_id"]).column(0).to_pylist()]
        converted = _load_single_dataset(attr, model_args, data_args, training_args)
        assert len(converted) == len(ids) > 0
        for sid, record in zip(ids, converted):
            assert record["_prompt"] == rows[sid]["messages"][:1] and record["_response"] == rows[sid]["messages"][1:]
            (image,) = record["_images"]
            assert image["bytes"] == (mixed_build / "dataset" / by_id[sid]["image"]).read_bytes()
        total += len(ids)
    assert total == len(rows)


@pytest.mark.slow
def test_llamafactory_trains_one_step_on_the_export(exported, tiny_dir, train_env, tmp_path):
    from training.smoke import TINY_RECIPES, cpu_env, run_logged, venv_bin

    info = json.loads((exported / "dataset_info.json").read_text())
    train_sets = ",".join(sorted(n for n in info if n.startswith("fracto_train_")))
    out = tmp_path / "run"
    run_logged("train_on_export", [venv_bin("llamafactory-cli"), "train", TINY_RECIPES / "lora_sft_cpu.yaml",
                                   f"model_name_or_path={tiny_dir}", f"dataset_dir={exported}",
                                   f"dataset={train_sets}", "eval_dataset=fracto_test", f"output_dir={out}", "max_steps=1", "max_samples=4",
                                   "image_max_pixels=65536", "cutoff_len=1024"],
               tmp_path / "train.log", cpu_env(tmp_path, base=train_env), timeout=600)
    losses = [json.loads(line)["loss"] for line in (out / "trainer_log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 1 and 0 < losses[0] < 20
    assert (out / "adapter_model.safetensors").stat().st_size > 0


def test_shards_are_streamed_in_bounded_row_groups(mixed_build, tmp_path):
    out = tmp_path / "small_shards"
    summary = export_hf.export(mixed_build, out, ALLOWED, max_shard_mb=0.05, row_group_mb=0.02, progress=False)
    bound = int(0.02 * 2**20)
    largest = 0
    shards = sorted((out / "data").rglob("*.parquet"))
    assert len(shards) > len(summary["folders"])  # folders were cut into several shards
    for f in shards:
        meta = pq.ParquetFile(f).metadata
        assert f.name.endswith(f"-of-{len(list(f.parent.glob('*.parquet'))):05d}.parquet")
        for g in range(meta.num_row_groups):
            table = pq.ParquetFile(f).read_row_group(g, columns=["images"])
            sizes = [len(i[0]["bytes"]) for i in table.column(0).to_pylist()]
            largest = max(largest, sum(sizes))
            assert sum(sizes) - sizes[-1] < bound and len(sizes) <= export_hf.ROWS_PER_GROUP  # flushed at the bound
    total = summary["samples"]
    assert total == len(_rows(out)) and largest < sum(f["image_bytes"] for f in summary["folders"].values())


def test_the_export_is_the_same_bytes_for_any_worker_count(mixed_build, tmp_path):
    """The shard plan does not depend on --workers; forked writers (2, 3) write what one process writes."""
    outs = {}
    for workers in (1, 2, 3):
        outs[workers] = tmp_path / f"w{workers}"
        export_hf.export(mixed_build, outs[workers], ALLOWED, max_shard_mb=0.05, row_group_mb=0.02, progress=False,
                         workers=workers)
    files = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".parquet"]) > 3  # several shards: the workers shared them
    for workers in (2, 3):
        assert sorted(p.relative_to(outs[workers]) for p in outs[workers].rglob("*") if p.is_file()) == files
        assert all((outs[workers] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)


def test_a_failing_shard_writer_process_stops_the_export(mixed_build, tmp_path):
    broken = tmp_path / "broken"  # an image that shrank after the plan: a worker process finds it
    shutil.copytree(mixed_build, broken)
    meta = _meta(broken)["train"][-1]
    image = broken / "dataset" / meta["image"]
    real_plan = hf_shards.plan

    def plan_then_shrink(*args):
        shards = real_plan(*args)
        image.write_bytes(image.read_bytes()[:-1])
        return shards

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_shards, "plan", plan_then_shrink)
        with pytest.raises(PublishError, match=f"{image}: changed size while being exported"):
            export_hf.export(broken, tmp_path / "out", ("cc-by", "cc-by-sa", "cc0", "unknown"), max_shard_mb=0.05,
                             row_group_mb=0.02, progress=False, workers=2)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*.partial"))
    assert not [c for c in multiprocessing.active_children() if c.name == "parquet-shard"]


def test_bad_input_is_refused_with_the_file_and_reason(mixed_build, tmp_path, capsys):
    with pytest.raises(PublishError, match="unknown licence id.*cc-by-foo.*known: cc-by"):
        parse_licences("cc-by,cc-by-foo")
    assert export_hf.main([str(tmp_path / "x"), "--build", str(tmp_path / "nothing")]) == 2
    assert "fracto_train.json: missing" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert export_hf.main([str(foreign), "--build", str(mixed_build), "--quiet"]) == 2
    assert "not an export of export_hf" in capsys.readouterr().err and (foreign / "keep.txt").exists()
    assert not list(tmp_path.glob(".*.partial"))  # the staging folder is removed
    broken = tmp_path / "broken"  # an image replaced by a folder: the writer's error reaches the command
    shutil.copytree(mixed_build, broken)
    meta = next(m for m in map(json.loads, (broken / "dataset" / "fracto_train_meta.jsonl").read_text().splitlines())
                if all(p.startswith("manual:") for p in m["paper_ids"]))  # published under "unknown"
    image = broken / "dataset" / meta["image"]
    image.unlink()
    image.mkdir()
    assert export_hf.main([str(tmp_path / "b_out"), "--build", str(broken), "--licences", "cc-by,unknown"]) == 2
    assert f"{image}: cannot read the image" in capsys.readouterr().err
    assert not (tmp_path / "b_out").exists() and not list(tmp_path.glob(".*.partial"))
    assert export_hf.main([str(tmp_path / "none"), "--build", str(mixed_build), "--licences", "cc-by-nd"]) == 2
    err = capsys.readouterr().err
    assert "no sample is published under --licences cc-by-nd" in err and "unknown" in err
    assert not (tmp_path / "none").exists()


def test_an_unreadable_panels_file_is_refused_with_the_file_and_reason(mixed_build, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(mixed_build, broken)
    panels_file = sorted((broken / "stages" / "panels").glob("*.json"))[0]
    panels_file.write_text('{"paper_id": "x", "title": ')  # cut short
    assert export_hf.main([str(tmp_path / "out1"), "--build", str(broken), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{panels_file}: unreadable panels file" in err and "Traceback" not in err
    panels_file.write_text('{"paper_id": "x", "authors": "not a list"}')
    assert export_hf.main([str(tmp_path / "out2"), "--build", str(broken), "--quiet"]) == 2
    assert f"{panels_file}: unreadable panels file (authors:" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused_before_any_work(mixed_build, tmp_path, capsys):
    a_file = tmp_path / "out_file"
    a_file.write_text("mine")
    assert export_hf.main([str(a_file), "--build", str(mixed_build), "--quiet"]) == 2
    assert f"{a_file}: exists and is not a folder" in capsys.readouterr().err
    assert a_file.read_text() == "mine" and not list(tmp_path.glob(".*.partial"))


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in Hub endpoint: records every request, answers 500 (so a push fails after being attempted)."""

    seen: list[tuple[str, str, str]] = []

    def _any(self):
        type(self).seen.append((self.command, self.path, self.headers.get("authorization", "")))
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "test server"}')

    do_GET = do_POST = do_PUT = do_HEAD = _any

    def log_message(self, *args):
        pass


def test_push_needs_a_token_and_never_prints_it(exported, mixed_build, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in export_hf.TOKEN_VARIABLES}
        env.update(PYTHONPATH=str(REPO), HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}", HF_HUB_OFFLINE="0",
                   HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
        cmd = [sys.executable, "-m", "dataset_builders.export_hf", str(tmp_path / "out"), "--build", str(mixed_build),
               "--quiet", "--push", "lab/fracto-test"]
        no_token = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert no_token.returncode == 2 and "no token in HF_TOKEN" in no_token.stderr
        assert _Recorder.seen == [] and not (tmp_path / "out").exists()  # nothing attempted, nothing exported
        secret = "hf_" + "S3cr3tT0kenNeverPrinted"
        with_token = subprocess.run(cmd, env=env | {"HF_TOKEN": secret}, capture_output=True, text=True, timeout=300)
        assert with_token.returncode == 1 and "push to lab/fracto-test failed" in with_token.stderr
        assert secret not in with_token.stdout + with_token.stderr
        assert (tmp_path / "out" / "export_hf.json").is_file()  # the export itself is complete
        assert _Recorder.seen and all(auth == f"Bearer {secret}" for _, _, auth in _Recorder.seen)
    finally:
        server.shutdown()
        server.server_close()


_SLOW_FAN_OUT = """
import os, sys, time
from dataset_builders import hf_shards
out = sys.argv[1]
class Slow:  # a row group every 0.2 s, a file per row group named after the process that wrote it
    def write(self, shard, done):
        for group in range(3):
            time.sleep(0.2)
            open(os.path.join(out, f"{os.getpid()}-{shard}-{group}"), "w").close()
            done(1)
hf_shards._fan_out(Slow(), list(range(12)), 2, lambda n: None, lambda: None)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_shard_writers_die_with_a_killed_export(tmp_path):
    """SIGKILL of the exporting process (the OOM killer) stops its forked shard writers at once: none writes on into
    a staging folder that the next run may reuse."""
    out = tmp_path / "written"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_FAN_OUT, str(out)], cwd=REPO, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            children = {int(f.name.split("-")[0]) for f in out.iterdir()} - {proc.pid}
            if children:
                break
            time.sleep(0.01)
        assert children, "no forked writer wrote anything"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 2
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(map(_alive, children)), "a shard writer outlived the killed export"
        written = sorted(os.listdir(out))
        time.sleep(0.6)  # three row groups' time
        assert sorted(os.listdir(out)) == written
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the exporter and any writer left (its own session)
        proc.wait()


def test_the_export_needs_no_datasets_import_for_its_schema_and_card():
    """hf_card.arrow_schema and yaml_features are what datasets makes of features() (the export does not import
    datasets: 1.0-1.1 s of CPU per process)."""
    from dataset_builders.hf_card import arrow_schema, features, yaml_features

    for decode in (False, True):
        assert arrow_schema(decode).equals(features(decode).arrow_schema, check_metadata=True)
    assert yaml_features() == features(decode=True)._to_yaml_list()


def test_meta_lines_are_parsed_as_one_array_and_an_error_names_its_own_line(tmp_path):
    bad = tmp_path / "meta.jsonl"  # one array parse; an error still names its own line
    bad.write_text('{"a": 1}\n\n1, 2\n')
    with pytest.raises(json.JSONDecodeError) as err:
        _parse_lines(bad.read_text())
    assert (err.value.lineno, err.value.colno) == (3, 2)  # the file's line 3 (was: line 1, of the line alone)
    with pytest.raises(PublishError, match=r"meta.jsonl: not valid JSON \(Extra data, line 3\)"):
        _read_json(bad, _parse_lines)
    assert _parse_lines('{"a": 1}\n\n{"b": 2}\n') == (['{"a": 1}', '{"b": 2}'], [{"a": 1}, {"b": 2}])
    # a caption or DOI holding U+2028, U+0085 or a form feed (JSON keeps them raw): one record, not two halves
    odd = json.dumps({"caption": "SEM\u2028fracture\x85surface\x0c(a)"}, ensure_ascii=False)
    assert _parse_lines(odd + "\n" + '{"b": 2}\n')[1] == [json.loads(odd), {"b": 2}]
    bad.write_text(odd + "\n{\"b\": \n", encoding="utf-8")  # an error after such a line keeps the file's line number
    with pytest.raises(json.JSONDecodeError) as err:
        _parse_lines(bad.read_text(encoding="utf-8"))
    assert err.value.lineno == 2


def test_to_arrow_is_pa_array_without_importing_pandas():
    """hf_shards.to_arrow builds what pa.array builds for the schema's types, nulls and empty lists included."""
    import pyarrow as pa

    from dataset_builders.hf_card import arrow_schema

    schema = arrow_schema(decode=False)
    cases = {"sample_id": ["a", None, "ü€", ""], "page": [1, None, 3, -2], "rotation_angle": [None, 90.0, 1.5, None],
             "excerpts": [["x", "y"], [], None, ["z", None]],
             "messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}], [], None,
                          [{"role": "u", "content": "c", "extra": 1}]]}
    pandas = sys.modules.pop("pandas", None)  # (to_arrow uses pa.array where pandas is imported)
    try:
        got = {column: hf_shards.to_arrow(values, schema.field(column).type) for column, values in cases.items()}
    finally:
        if pandas is not None:
            sys.modules["pandas"] = pandas
    for column, values in cases.items():
        got[column].validate(full=True)
        assert got[column].equals(pa.array(values, schema.field(column).type)), column
