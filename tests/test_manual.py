"""The manual rare-feature collection: validation before writing, clear errors, items.json."""

import hashlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from dataset_builders import manual
from dataset_builders.config import BuildConfig
from dataset_builders.manual import ManualError, load_manual
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import Item
from dataset_builders.stage_paths import StagePaths


def texture(seed: int, size=(96, 64), mode="L") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8), dtype=np.uint8)
    img = Image.fromarray(arr).resize(size, Image.Resampling.BICUBIC)
    return img.convert(mode)


def save(img: Image.Image, path, fmt: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def write_csv(folder, rows, header="file,features,source,notes") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manual.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def good(tmp_path):
    folder = tmp_path / "rare"
    data = {
        "png": save(texture(1), folder / "vhcf" / "fisheye.png", "PNG"),
        "jpg": save(texture(2, mode="RGB"), folder / "ratchet.jpg", "JPEG"),
        "tif": save(texture(3), folder / "craze.tif", "TIFF"),
    }
    (folder / "copy_of_fisheye.png").write_bytes(data["png"])
    write_csv(folder, [
        "vhcf/fisheye.png,Fish eye; FGA,Smith 2021,subsurface origin",
        'ratchet.jpg,ratchet marks;beach marks,"Lee, 2019",shaft',
        "craze.tif,crazing,Kim 2020,",
        "copy_of_fisheye.png,fish-eye;inclusion,Doe 2018,reprint",
    ])
    return folder, data


def run(tmp_path, folder):
    paths = StagePaths(tmp_path / "out")
    return paths, manual.run(paths, BuildConfig(out=paths.out, manual=folder), progress=False)


def test_good_collection_becomes_items(tmp_path, good):
    folder, data = good
    paths, result = run(tmp_path, folder)
    items = [Item.model_validate(x) for x in json.loads((paths.manual / "items.json").read_text())]
    ids = {k: "manual-" + hashlib.sha256(v).hexdigest()[:12] for k, v in data.items()}
    assert [i.item_id for i in items] == sorted(ids.values())
    by_id = {i.item_id: i for i in items}

    fish = by_id[ids["png"]]
    assert fish.features == ["fish-eye", "fine granular area", "inclusion at origin"]  # rows 2 and 5 merged
    assert fish.paper_ids == ["manual:Doe 2018", "manual:Smith 2021"]
    assert fish.provenance == {"source": "Smith 2021", "notes": "subsurface origin", "file": "vhcf/fisheye.png",
                               "doi": None, "licence": "unknown", "source_url": None}  # no licence is guessed
    assert fish.image == f"stages/manual/{ids['png']}.png"
    assert (paths.out / fish.image).read_bytes() == data["png"]  # source bytes kept
    assert (fish.width, fish.height, fish.label_origin) == (96, 64, "manual")
    assert fish.phash == image_phash(texture(1))

    ratchet = by_id[ids["jpg"]]
    assert ratchet.features == ["beach marks", "ratchet marks"]
    assert ratchet.paper_ids == ["manual:Lee, 2019"]
    assert (paths.out / ratchet.image).read_bytes() == data["jpg"]

    craze = by_id[ids["tif"]]
    assert craze.image.endswith(".jpg")  # TIFF re-encoded as JPEG
    with Image.open(paths.out / craze.image) as img:
        assert img.format == "JPEG" and img.size == (96, 64) and img.mode == "L"
        diff = np.abs(np.asarray(img, dtype=int) - np.asarray(texture(3), dtype=int))
        assert diff.mean() < 2.0  # quality 95

    assert result.counts == {"items": 3, "rows": 4, "duplicate_rows": 1, "converted": 1}
    (dup,) = result.problems
    assert (dup.stage, dup.reason, dup.file, dup.item_id) == ("manual", "duplicate_image", "manual.csv:5", ids["png"])
    assert "copy_of_fisheye.png" in dup.detail and "row 2" in dup.detail and "features merged" in dup.detail
    assert sorted(p.name for p in paths.manual.iterdir()) == sorted(
        [f"{ids['png']}.png", f"{ids['jpg']}.jpg", f"{ids['tif']}.jpg", "items.json"])


def test_rerun_is_byte_identical_and_drops_stale_images(tmp_path, good):
    folder, _ = good
    paths, _ = run(tmp_path, folder)
    first = (paths.manual / "items.json").read_bytes()
    run(tmp_path, folder)
    assert (paths.manual / "items.json").read_bytes() == first
    write_csv(folder, ["ratchet.jpg,ratchet marks,Lee,"])
    run(tmp_path, folder)
    assert len(json.loads((paths.manual / "items.json").read_text())) == 1
    assert len(list(paths.manual.glob("manual-*"))) == 1


def test_no_manual_folder_writes_empty_list(tmp_path):
    paths = StagePaths(tmp_path / "out")
    result = manual.run(paths, BuildConfig(out=paths.out, manual=None), progress=False)
    assert json.loads((paths.manual / "items.json").read_text()) == []
    assert result.counts["items"] == 0


def test_load_manual_rows(good):
    folder, _ = good
    rows = load_manual(folder)
    assert [(r.row, r.file, r.features) for r in rows] == [
        (2, "vhcf/fisheye.png", ("fish-eye", "fine granular area")),
        (3, "ratchet.jpg", ("beach marks", "ratchet marks")),
        (4, "craze.tif", ("crazing",)),
        (5, "copy_of_fisheye.png", ("fish-eye", "inclusion at origin")),
    ]
    assert [r.image_format for r in rows] == ["PNG", "JPEG", "TIFF", "PNG"]


# --- every bad case: a clear error naming the CSV, the row and the reason; nothing written ------------

def bad_case(folder, case):
    """Set up one broken collection; returns the expected reason text."""
    if case == "missing_column":
        write_csv(folder, ["a.png,dimples,x,"], header="file,labels,source,notes")
        return "row 1 (header): missing column(s) features"
    if case == "unknown_label":
        write_csv(folder, ["a.png,dimples;fish-eyes,x,"])
        return "row 2: unknown label 'fish-eyes' (nearest: "  # the vocabulary's nearest names follow
    if case == "no_features":
        write_csv(folder, ["a.png, ; ,x,"])
        return "row 2: no features given"
    if case == "file_missing":
        write_csv(folder, ["a.png,dimples,x,", "nope.png,dimples,x,"])
        return "row 3: file 'nope.png' not found"
    if case == "absolute":
        write_csv(folder, [f"{folder / 'a.png'},dimples,x,"])
        return "row 2: file '" + str(folder / "a.png") + "' is an absolute path"
    if case == "dotdot":
        write_csv(folder, ["../rare/a.png,dimples,x,"])
        return "row 2: file '../rare/a.png' climbs out of the manual folder"
    if case == "symlink":
        outside = folder.parent / "secret.png"
        save(texture(9), outside, "PNG")
        os.symlink(outside, folder / "link.png")
        write_csv(folder, ["link.png,dimples,x,"])
        return "row 2: file 'link.png' resolves outside the manual folder"
    if case == "not_an_image":
        (folder / "notes.png").write_text("this is not a picture")
        write_csv(folder, ["a.png,dimples,x,", "notes.png,dimples,x,"])
        return "row 3: file 'notes.png': not a readable image"
    if case == "truncated":
        data = save(texture(7, size=(256, 256)), folder / "cut.png", "PNG")
        (folder / "cut.png").write_bytes(data[: len(data) // 2])
        write_csv(folder, ["cut.png,dimples,x,"])
        return "row 2: file 'cut.png': not a readable image"
    raise AssertionError(case)


CASES = ["missing_column", "unknown_label", "no_features", "file_missing", "absolute", "dotdot", "symlink",
         "not_an_image", "truncated"]


@pytest.mark.parametrize("case", CASES)
def test_bad_collection_fails_clearly_and_writes_nothing(tmp_path, case):
    folder = tmp_path / "rare"
    save(texture(1), folder / "a.png", "PNG")
    reason = bad_case(folder, case)
    paths = StagePaths(tmp_path / "out")
    with pytest.raises(ManualError) as exc:
        manual.run(paths, BuildConfig(out=paths.out, manual=folder), progress=False)
    message = str(exc.value)
    assert f"{folder / 'manual.csv'}: {reason}" in message
    assert not paths.out.exists()  # validated before anything was written


def test_every_bad_row_is_listed_at_once_and_old_output_survives(tmp_path, good):
    folder, _ = good
    paths, _ = run(tmp_path, folder)
    before = (paths.manual / "items.json").read_bytes()
    write_csv(folder, ["ratchet.jpg,ratchet marks,Lee,", "gone.png,dimples,x,", "craze.tif,cleavge,x,"])
    with pytest.raises(ManualError) as exc:
        run(tmp_path, folder)
    message = str(exc.value)
    assert "2 problem(s); nothing was written" in message
    assert "row 3: file 'gone.png' not found" in message
    assert "row 4: unknown label 'cleavge' (nearest: cleavage" in message
    assert (paths.manual / "items.json").read_bytes() == before


def test_unknown_label_without_near_match_lists_valid_labels(tmp_path):
    folder = tmp_path / "rare"
    save(texture(1), folder / "a.png", "PNG")
    write_csv(folder, ["a.png,zzzz,x,"])
    with pytest.raises(ManualError, match=r"row 2: unknown label 'zzzz' \(valid labels: equiaxed dimples, "):
        load_manual(folder)


def test_missing_csv_is_clear(tmp_path):
    with pytest.raises(ManualError, match="manual.csv: not found"):
        load_manual(tmp_path)


def test_other_formats_are_converted_to_jpeg(tmp_path):
    folder = tmp_path / "rare"
    deep = (np.asarray(texture(4), dtype=np.uint16) * 64)  # 16-bit grey, max ~16k
    save(Image.fromarray(deep), folder / "deep.tif", "TIFF")
    rgba = texture(5, mode="RGB").convert("RGBA")
    rgba.putalpha(0)  # fully transparent: must come out white, not black
    save(rgba, folder / "clear.tif", "TIFF")
    save(texture(6), folder / "inside.png", "PNG")
    os.symlink(folder / "inside.png", folder / "alias.png")  # a symlink that stays inside is fine
    write_csv(folder, ["deep.tif,creep cavities,a,", "clear.tif,crazing,b,", "alias.png,tongues,c,"])
    paths, result = run(tmp_path, folder)
    items = {i["provenance"]["file"]: i for i in json.loads((paths.manual / "items.json").read_text())}
    with Image.open(paths.out / items["deep.tif"]["image"]) as img:
        arr = np.asarray(img)
        assert img.format == "JPEG" and img.mode == "L" and arr.max() >= 250  # scaled to the full 8-bit range
    with Image.open(paths.out / items["clear.tif"]["image"]) as img:
        assert img.mode == "RGB" and np.asarray(img).min() >= 250
    assert items["alias.png"]["features"] == ["cleavage tongues"]
    assert (paths.out / items["alias.png"]["image"]).read_bytes() == (folder / "inside.png").read_bytes()
    assert result.counts["converted"] == 2


def test_rows_are_numbered_as_a_spreadsheet_shows_them_when_a_cell_spans_lines(tmp_path):
    """Failed before: the row after a two-line notes cell was called row 4 (its physical line), not row 3."""
    folder = tmp_path / "rare"
    save(texture(1), folder / "a.png", "PNG")
    save(texture(2), folder / "b.png", "PNG")
    write_csv(folder, ['a.png,fish-eye,Smith,"two\nlines"', "b.png,zzzz,Smith,", "", "gone.png,crazing,x,"])
    with pytest.raises(ManualError) as exc:
        load_manual(folder)
    message = str(exc.value)
    assert "row 3: unknown label 'zzzz'" in message
    assert "row 5: file 'gone.png' not found" in message  # a blank line is a (skipped) row of its own


def test_a_cell_the_csv_module_refuses_is_a_manual_error_naming_the_row(tmp_path):
    """Failed before: _csv.Error (not a ManualError/ValueError) escaped, a traceback from the build."""
    folder = tmp_path / "rare"
    save(texture(1), folder / "a.png", "PNG")
    write_csv(folder, ["a.png,fish-eye,Smith,", 'a.png,fish-eye,Smith,"' + "x" * 200_000 + '"'])
    with pytest.raises(ManualError, match=r"manual.csv: row 3: not readable as CSV \(field larger than field limit"):
        load_manual(folder)


def test_a_symlink_loop_is_a_bad_row(tmp_path):
    """Failed before: Path.resolve raised RuntimeError('Symlink loop ...'), a traceback from the build."""
    folder = tmp_path / "rare"
    save(texture(1), folder / "a.png", "PNG")
    os.symlink("loop.png", folder / "loop.png")
    write_csv(folder, ["loop.png,fish-eye,Smith,", "a.png,fish-eye,Smith,"])
    with pytest.raises(ManualError, match=r"1 problem\(s\).*\n.*row 2: file 'loop.png' cannot be resolved"):
        load_manual(folder)
