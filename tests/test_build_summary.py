"""The build's closing summary (dataset_builders.build.print_summary): sample counts per dataset file, read
without holding a file parsed, and a clear word for a file that is not a JSON list."""

from __future__ import annotations

import io
import json
import tracemalloc
from contextlib import redirect_stdout
from pathlib import Path

from dataset_builders.build import count_samples, print_summary
from dataset_builders.config import BuildConfig
from dataset_builders.export import JsonListWriter


def _sample(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"<image>What features does panel {i} show? " + "x" * 150},
                         {"role": "assistant", "content": "dimples; cleavage facets"}],
            "images": [f"images/train/p{i:06d}.jpg"]}


def _export_layout(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        writer = JsonListWriter(fh)
        for i in range(n):
            writer.add(json.dumps(_sample(i)))
        writer.close()


def _dataset(out: Path, files: dict[str, str | None]) -> Path:
    dataset = out / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "dataset_info.json").write_text(json.dumps({n: {"file_name": f"{n}.json"} for n in files}))
    for name, text in files.items():
        if text is not None:
            (dataset / f"{name}.json").write_text(text, encoding="utf-8")
    return dataset


def _summary(out: Path) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        print_summary(BuildConfig(out=out), {})
    return buf.getvalue()


def test_counts_every_layout_and_names_a_file_that_is_no_list(tmp_path):
    dataset = _dataset(tmp_path, {
        "fracto_val": None,                                                  # written below, export's layout
        "pretty": json.dumps([_sample(0), _sample(1), _sample(2)], indent=2),  # another layout: value by value
        "empty": "[]\n",
        "cut": '[\n{"images": []},\n{"imag',                                # a killed writer's half file
        "object": '{"a": 1}',
        "missing": None,
    })
    _export_layout(dataset / "fracto_val.json", 7)
    (dataset / "missing.json").unlink(missing_ok=True)
    text = _summary(tmp_path)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("samples:"))
    assert "fracto_val 7" in line
    assert "pretty 3" in line
    assert "empty 0" in line
    assert "cut unreadable (JSONDecodeError" in line
    assert "object unreadable (NotAJsonList" in line
    assert "missing" not in line  # listed in dataset_info.json but not written: not counted


def test_a_broken_dataset_info_is_named_not_a_traceback(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "dataset_info.json").write_text("{not json")
    text = _summary(tmp_path)
    assert "dataset_info.json: unreadable (JSONDecodeError" in text
    assert "samples: " in text


def test_counting_holds_one_line_not_the_file(tmp_path):
    """20,000 samples (~5 MB of JSON): the count's peak allocation stays far under the file's size; parsing the
    file whole (the old summary) held its text and every sample as dicts, ~20x more."""
    path = tmp_path / "train.json"
    _export_layout(path, 20_000)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        n = count_samples(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == "20000"
    assert peak < size / 20, (peak, size)


def test_build_report_md_keeps_a_multi_line_detail_in_its_table_row(tmp_path):
    """Failed before: a pydantic error as detail (bad_panels_record) spread over several lines, breaking the table."""
    from dataset_builders.records import Problem
    from dataset_builders.stage_paths import StagePaths
    from dataset_builders.stages import write_report

    paths = StagePaths(tmp_path)
    write_report(paths, [Problem(file="stages/panels/x.json", stage="filter", reason="bad_panels_record",
                                 detail="ValidationError: 1 validation error for PaperPanels\npaper_id\n  Input | x")])
    rows = [line for line in (tmp_path / "build_report.md").read_text().splitlines() if line.startswith("|")]
    assert rows[2:] == ["| stages/panels/x.json | filter | bad_panels_record | ValidationError: 1 validation error "
                        "for PaperPanels paper_id Input / x |"]
