"""eval.tasks and eval.benchmark: task registry, prompts and parsers; loading and validating benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fracto_core.answer_format import PROMPT_VERSION, instruction_prompt
from fracto_core.vocabulary import canonical_names, rare_names
from eval.benchmark import Benchmark, BenchmarkError, load_benchmark
from eval.tasks import UnknownTaskError, get_task, task_names

# --- tasks --------------------------------------------------------------------------------------------


def test_registry_lists_valid_names_on_error():
    assert task_names() == ["fracture_morphology", "microscopy_technique", "material_category", "failure_mechanism"]
    with pytest.raises(UnknownTaskError) as err:
        get_task("fracture_morphologie")
    for name in task_names():
        assert name in str(err.value)


def test_fracture_morphology_uses_the_training_prompt_and_parser():
    task = get_task("fracture_morphology")
    assert task.prompt is instruction_prompt and task.prompt() == instruction_prompt()
    assert task.prompt_version == PROMPT_VERSION and PROMPT_VERSION in task.version
    assert task.labels == tuple(canonical_names()) and task.rare == tuple(rare_names())
    assert task.kind == "multilabel" and task.label_field == "features"
    assert task.generation.temperature == 0.0
    assert {m.name: m.higher_is_better for m in task.metrics}["unparseable_share"] is False
    assert {m.name: m.higher_is_better for m in task.metrics}["micro_precision"] is True
    ok = task.parse('```json\n{"features": ["fatigue striations", "beach marks"]}\n```')
    assert ok.labels == ("fatigue striations", "beach marks") and ok.status == "ok"
    mapped = task.parse('{"features": ["dimples", "rock candy"]}')
    assert mapped.labels == ("equiaxed dimples", "intergranular facets") and mapped.status == "mapped"
    # a name outside the vocabulary: the others still count, the unknown one is listed (scored as a wrong feature)
    bad = task.parse('{"features": ["dimples", "unicorn marks"]}')
    assert bad.status == "off_vocabulary" and bad.labels == ("equiaxed dimples",) and bad.unknown == ("unicorn marks",)
    assert task.parse("I see dimples.").status == "unparseable"
    schema = task.response_schema()["schema"]
    assert schema["properties"]["features"]["items"]["enum"] == list(canonical_names())


def test_multiple_choice_prompts_snapshot():
    """Changing a prompt must be a visible, reviewed change (bump the task version with it)."""
    tech, mat = get_task("microscopy_technique"), get_task("material_category")
    assert tech.version == "microscopy_technique-1" and mat.version == "material_category-1"
    assert tech.prompt() == (
        "You are an expert in fractography. Which imaging technique recorded this fracture-surface image? "
        "Choices: A. SEM; B. optical microscopy; C. stereo microscopy; D. TEM; E. confocal microscopy; "
        "F. macro photograph. Answer with the letter of exactly one choice and nothing else.")
    assert mat.prompt() == (
        "You are an expert in fractography. Which class of material does this fracture surface belong to? "
        "Choices: A. steel; B. aluminium alloy; C. titanium alloy; D. nickel superalloy; E. magnesium alloy; "
        "F. copper alloy; G. other metal; H. polymer; I. ceramic/glass; J. composite. "
        "Answer with the letter of exactly one choice and nothing else.")
    assert tech.generation.temperature == 0.0 and tech.kind == "multiple_choice"
    assert tech.response_schema()["schema"]["properties"]["answer"]["enum"] == list(tech.labels)


@pytest.mark.parametrize("reply, expected, status", [
    ("B", "optical microscopy", "ok"),
    ("(a)", "SEM", "ok"),
    ("TEM", "TEM", "ok"),
    ('{"answer": "D"}', "TEM", "ok"),
    ("C. stereo microscopy", "stereo microscopy", "mapped"),
    ("Answer: F", "macro photograph", "mapped"),
    ("This is a scanning electron micrograph of the fracture surface.", "SEM", "mapped"),
    ("It was taken with a stereo optical microscope.", "stereo microscopy", "mapped"),
    ("G", None, "unparseable"),  # out of range
    ("SEM or TEM", None, "unparseable"),  # two choices: never guess
    ("B. SEM", None, "unparseable"),  # letter contradicts name
    ("I cannot tell.", None, "unparseable"),
    ("", None, "unparseable"),
])
def test_multiple_choice_parser(reply, expected, status):
    answer = get_task("microscopy_technique").parse(reply)
    assert answer.status == status
    assert answer.labels == ((expected,) if expected else ())


def test_material_parser_synonyms():
    task = get_task("material_category")
    assert task.parse("The part is made of Ti-6Al-4V.").labels == ("titanium alloy",)
    assert task.parse("an Inconel 718 turbine disc").labels == ("nickel superalloy",)
    assert task.parse("CFRP laminate").labels == ("composite",)
    assert task.parse("I").labels == ("ceramic/glass",)


# --- benchmarks ---------------------------------------------------------------------------------------

def write_image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (24, 16), shade).save(path, format="JPEG", quality=95)


def write_csv(folder: Path, rows: list[str], header: str = "file,features,technique,material,source") -> Path:
    path = folder / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def csv_bench(tmp_path) -> Path:
    for i in range(3):
        write_image(tmp_path / "img" / f"p{i}.jpg", 40 * i + 10)
    return write_csv(tmp_path, [
        'img/p0.jpg,"Dimples; shear lips",SEM,steel,paper A',
        'img/p1.jpg,fatigue striations;beach marks;fish eye,scanning electron microscopy,Ti-6Al-4V,paper A',
        "img/p2.jpg,,optical microscope,aluminum,paper B",
    ])


def test_csv_benchmark_canonicalises_and_hashes(csv_bench):
    bench = load_benchmark(csv_bench)
    assert bench.kind == "csv" and bench.name == "labels" and len(bench.items) == 3
    a, b, c = bench.items
    assert a.item_id == "img/p0.jpg" and a.features == ("equiaxed dimples", "shear lip")
    assert b.features == ("fatigue striations", "beach marks", "fish-eye")
    assert c.features == ()
    assert (a.technique, b.technique, c.technique) == ("SEM", "SEM", "optical microscopy")
    assert (a.material, b.material, c.material) == ("steel", "titanium alloy", "aluminium alloy")
    assert bench.image_path(a).read_bytes()[:2] == b"\xff\xd8"
    assert len(a.image_sha256) == 64 and a.location == "labels.csv row 2"
    assert bench.references("material_category") == [["steel"], ["titanium alloy"], ["aluminium alloy"]]
    # the same benchmark loaded again hashes the same; a label change or an image change alters it
    assert load_benchmark(csv_bench).hash == bench.hash
    text = csv_bench.read_text()
    csv_bench.write_text(text.replace("beach marks;", ""))
    relabelled = load_benchmark(csv_bench).hash
    assert relabelled != bench.hash
    csv_bench.write_text(text)
    write_image(csv_bench.parent / "img" / "p2.jpg", 200)
    assert load_benchmark(csv_bench).hash not in (bench.hash, relabelled)
    assert bench.limited(2).hash != bench.hash and len(bench.limited(2).items) == 2


def test_csv_card(csv_bench):
    card = load_benchmark(csv_bench).card()
    assert card["n_items"] == 3 and card["n_sources"] == 2
    assert card["features"]["fish-eye"] == {"images": 1, "share": pytest.approx(1 / 3), "rare": True}
    assert card["features"]["crazing"]["images"] == 0
    assert card["rare_features"]["fish-eye"] == 1 and card["images_with_rare_feature"] == 1
    assert card["features_per_image"] == {"0": 1, "2": 1, "3": 1}
    assert card["sources"] == {"paper A": 2, "paper B": 1}
    assert card["technique"] == {"SEM": 2, "optical microscopy": 1}
    md = load_benchmark(csv_bench).card_markdown()
    assert "| fish-eye | yes | 1 | 0.33 |" in md and "paper A (2)" in md


def test_csv_errors_name_every_bad_row(tmp_path):
    write_image(tmp_path / "ok.jpg", 10)
    write_image(tmp_path / "dup.jpg", 20)
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    write_image(tmp_path.parent / "outside.jpg", 30)
    path = write_csv(tmp_path, [
        "ok.jpg,dimples,SEM,steel,x",                 # row 2: fine
        "missing.jpg,dimples,SEM,steel,x",            # row 3: no such file
        "broken.jpg,dimples,SEM,steel,x",             # row 4: unreadable
        "dup.jpg,unicorn marks;dimples,SEM,steel,x",  # row 5: unknown feature
        "../outside.jpg,dimples,SEM,steel,x",         # row 6: outside the folder
        f"{tmp_path / 'ok.jpg'},dimples,SEM,steel,x",  # row 7: absolute path
        "dup.jpg,dimples,electron holography,wood,x",  # row 8: unknown technique + material
        "ok.jpg,dimples,SEM,steel,x",                 # row 9: duplicate of row 2
    ])
    with pytest.raises(BenchmarkError) as err:
        load_benchmark(path)
    text = str(err.value)
    problems = err.value.problems
    assert any(p.startswith("labels.csv row 3 (file missing.jpg)") and "not found" in p for p in problems)
    assert any(p.startswith("labels.csv row 4") and "unreadable image" in p for p in problems)
    assert any(p.startswith("labels.csv row 5") and "unicorn marks" in p for p in problems)
    assert any(p.startswith("labels.csv row 6") and "outside the benchmark folder" in p for p in problems)
    assert any(p.startswith("labels.csv row 7") and "absolute path" in p for p in problems)
    assert any(p.startswith("labels.csv row 8") and "electron holography" in p for p in problems)
    assert any(p.startswith("labels.csv row 8") and "'wood'" in p and "ceramic/glass" in p for p in problems)
    assert any(p.startswith("labels.csv row 9") and "duplicate" in p and "row 2" in p for p in problems)
    assert not any("row 2 " in p or p.startswith("labels.csv row 2") for p in problems)
    # rows 3-7 one problem each; row 8 duplicate file + technique + material; row 9 duplicate file
    assert len(problems) == 9 and text.startswith(f"benchmark {path}: 9 problem(s):")


def test_csv_needs_file_and_features_columns(tmp_path):
    write_image(tmp_path / "a.jpg", 10)
    path = write_csv(tmp_path, ["a.jpg,SEM"], header="image,technique")
    with pytest.raises(BenchmarkError, match=r"lacks column\(s\) \['file', 'features'\]"):
        load_benchmark(path)


def test_csv_extra_columns_ignored_and_listed(tmp_path):
    write_image(tmp_path / "a.jpg", 10)
    path = write_csv(tmp_path, ["a.jpg,cleavage,looks nice"], header="File,Features,Notes")
    bench = load_benchmark(path)
    assert bench.items[0].features == ("cleavage facets",) and bench.ignored_columns == ["notes"]
    with pytest.raises(BenchmarkError, match="no technique label"):
        bench.references("microscopy_technique")


def test_csv_duplicate_item_ids(tmp_path):
    write_image(tmp_path / "a.jpg", 10)
    write_image(tmp_path / "b.jpg", 20)
    path = write_csv(tmp_path, ["x1,a.jpg,dimples", "x1,b.jpg,cleavage"], header="item_id,file,features")
    with pytest.raises(BenchmarkError, match=r"labels.csv row 3 \(file b.jpg\): duplicate item_id 'x1'"):
        load_benchmark(path)


def write_builder_split(folder: Path, n: int = 3) -> Path:
    """A dataset folder as dataset_builders.export exports it (meta records with the same keys)."""
    dataset = folder / "dataset"
    feats = [["intergranular facets"], ["fish-eye", "inclusion at origin"], ["equiaxed dimples"]]
    lines = []
    for i in range(n):
        image = f"images/test/item{i}.jpg"
        write_image(dataset / image, 50 + i)
        lines.append(json.dumps({
            "augmentation": None, "features": feats[i % 3], "image": image, "item_id": f"item{i}",
            "label_origin": "caption_rules", "paper_ids": [f"paper{i % 2}"],
            "provenance": {"source_pdf": f"paper_{i % 2}.pdf", "page": 1}, "sample_id": f"item{i}"},
            sort_keys=True))
    (dataset / "fracto_test_meta.jsonl").write_text("\n".join(lines) + "\n")
    return dataset


def test_builder_split(tmp_path):
    dataset = write_builder_split(tmp_path)
    bench = load_benchmark(dataset)
    assert isinstance(bench, Benchmark) and bench.kind == "builder_split" and bench.name == "fracto_test"
    assert [it.item_id for it in bench.items] == ["item0", "item1", "item2"]
    assert bench.items[1].features == ("fish-eye", "inclusion at origin")
    assert bench.items[0].source == "paper_0.pdf" and bench.items[0].label_origin == "caption_rules"
    assert load_benchmark(tmp_path).hash == bench.hash  # the build's --out folder works too
    assert bench.card()["sources"] == {"paper_0.pdf": 2, "paper_1.pdf": 1}


def test_builder_split_errors(tmp_path):
    dataset = write_builder_split(tmp_path)
    meta = dataset / "fracto_test_meta.jsonl"
    lines = meta.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["features"] = ["fish-eye", "dragon scales"]
    lines[1] = json.dumps(rec)
    rec = json.loads(lines[2])
    rec["image"] = "../../escape.jpg"
    lines[2] = json.dumps(rec)
    meta.write_text("\n".join(lines) + "\n")
    (dataset / "images/test/item0.jpg").unlink()
    with pytest.raises(BenchmarkError) as err:
        load_benchmark(dataset)
    problems = err.value.problems
    assert len(problems) == 3
    assert "line 1" in problems[0] and "not found" in problems[0]
    assert "line 2" in problems[1] and "dragon scales" in problems[1]
    assert "line 3" in problems[2] and "outside the benchmark folder" in problems[2]


def test_builder_meta_lines_split_at_newlines_only(tmp_path):
    """dataset_builders.export writes meta lines with ensure_ascii=False: a caption holding U+2028, U+2029 or U+0085
    (PDF text) keeps it raw inside its line, where str.splitlines broke the record in two."""
    dataset = write_builder_split(tmp_path)
    meta = dataset / "fracto_test_meta.jsonl"
    lines = meta.read_text(encoding="utf-8").split("\n")
    rec = json.loads(lines[0])
    rec["caption"] = "Fig. 3 Fracture surface\u2028(a) dimples\u2029(b) facets\x85 of the same part"
    lines[0] = json.dumps(rec, ensure_ascii=False, sort_keys=True)
    meta.write_text("\n".join(lines), encoding="utf-8")
    bench = load_benchmark(dataset)
    assert [it.item_id for it in bench.items] == ["item0", "item1", "item2"]
    assert bench.items[0].caption == rec["caption"]


def test_no_benchmark_here(tmp_path):
    with pytest.raises(BenchmarkError, match="no \\*_test_meta.jsonl"):
        load_benchmark(tmp_path)


def test_real_builder_output_loads_as_benchmark(built):
    """The test split the real builder exports is a valid benchmark (ids, labels and images as written)."""
    out, _ = built
    bench = load_benchmark(out)
    meta = [json.loads(line) for line in next((out / "dataset").glob("*_test_meta.jsonl")).read_text().splitlines()]
    assert [it.item_id for it in bench.items] == [m["item_id"] for m in meta]
    assert [list(it.features) for it in bench.items] == [m["features"] for m in meta]
    assert all(bench.image_path(it).is_file() for it in bench.items)
    assert bench.card()["n_items"] == len(meta) > 0
