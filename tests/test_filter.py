"""Fracture filter and the image cues it reads: typical captions and images decide as a reader would."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dataset_builders import filter as ff
from dataset_builders.config import BuildConfig
from dataset_builders.image_cues import compute_cues
from dataset_builders.records import FilterDecision, ImageCues, PanelRecord, PaperPanels
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_model_atomic


def sem_texture(w: int = 400, h: int = 300, seed: int = 0, grain: int = 4) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (h // grain + 2, w // grain + 2))
    img = Image.fromarray(np.uint8(np.clip(coarse * 40 + 115, 0, 230))).resize((w, h), Image.BICUBIC)
    return img.convert("RGB")  # grey pixels in an RGB file, as many papers store SEM images


def line_plot(w: int = 400, h: int = 300) -> Image.Image:
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.line([(40, 20), (40, h - 40), (w - 20, h - 40)], fill="black", width=2)
    xs = np.linspace(40, w - 20, 50)
    d.line([(float(x), float(h - 40 - 200 * (1 - np.exp(-(x - 40) / 60)))) for x in xs], fill=(200, 30, 30), width=2)
    d.text((w // 2, h - 25), "Strain (%)", fill="black")
    return img


def colour_map(w: int = 300, h: int = 300, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    palette = np.array([[230, 40, 40], [40, 200, 60], [40, 60, 230], [240, 200, 30]], dtype=np.uint8)
    cells = rng.integers(0, 4, (h // 20 + 1, w // 20 + 1))
    arr = palette[np.kron(cells, np.ones((20, 20), dtype=np.int64))[:h, :w]]
    return Image.fromarray(arr)


SEM_CUES = compute_cues(sem_texture())
PLOT_CUES = compute_cues(line_plot())


def panel(caption: str, cues: ImageCues = SEM_CUES, excerpts: list[str] | None = None,
          panel_id: str = "p-p1-f1-a") -> PanelRecord:
    return PanelRecord(panel_id=panel_id, figure_id="p-p1-f1", paper_id="p", source_pdf="p.pdf", page=1,
                       image="x.jpg", width=400, height=300, split_method="single", caption=caption,
                       figure_caption=caption, excerpts=excerpts or [], phash="0" * 16, cues=cues)


# --- image cues ----------------------------------------------------------------------------------------

def test_cues_separate_sem_texture_line_art_and_colour():
    sem, plot, cmap = SEM_CUES, PLOT_CUES, compute_cues(colour_map())
    assert sem.white_fraction < 0.01 and sem.grey_levels > 100 and sem.colourfulness < 1 and sem.std > 25
    assert plot.white_fraction > 0.9 and plot.grey_levels < 32
    assert cmap.colourfulness > 60 and sem.colourfulness < 1
    assert sem.edge_density > plot.edge_density


def test_cues_work_on_odd_modes_and_large_images():
    big = compute_cues(sem_texture(3000, 2000, grain=30))  # computed on a <= 256 px copy
    assert big.white_fraction < 0.01 and big.grey_levels > 100 and big.std > 20
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # fully transparent: white, not black
    assert compute_cues(rgba).white_fraction == 1.0
    assert compute_cues(line_plot().convert("P")).white_fraction > 0.9
    bilevel = compute_cues(line_plot().convert("1"))
    assert bilevel.grey_levels < 32 and bilevel.colourfulness == 0


# --- decisions -----------------------------------------------------------------------------------------

def test_fractograph_is_kept_with_its_reasons():
    d = ff.decide(panel("SEM fractograph of the AA7075 specimen showing equiaxed dimples"), 1.0)
    assert d.keep and d.score >= 3
    assert "caption:+fractograph" in d.reasons
    assert "caption:+feature=equiaxed dimples" in d.reasons
    assert any(r.startswith("cue:+grey_texture") for r in d.reasons)


@pytest.mark.parametrize("caption,reason", [
    ("Engineering stress–strain curves of the as-built and HIPed specimens", "caption:-stress-strain"),
    ("Schematic of the four-point bending specimen and loading geometry", "caption:-schematic"),
    ("Optical micrograph of the etched microstructure showing equiaxed grains", "caption:-microstructure"),
    ("EBSD inverse pole figure map of the weld zone", "caption:-EBSD"),
    ("XRD patterns of the powders", "caption:-XRD"),
    ("Photograph of the servo-hydraulic test machine and the grips", "caption:-setup"),
])
def test_other_figure_types_are_dropped(caption, reason):
    d = ff.decide(panel(caption), 1.0)
    assert not d.keep and reason in d.reasons and d.score < 0


def test_line_art_cues_pull_the_score_down():
    d_text_only = ff.decide(panel("Specimen A after the test"), 1.0)
    d_plot = ff.decide(panel("Specimen A after the test", cues=PLOT_CUES), 1.0)
    assert any(r.startswith("cue:-white_fraction=0.9") for r in d_plot.reasons)
    assert any(r.startswith("cue:-grey_levels=") for r in d_plot.reasons)
    assert d_plot.score <= d_text_only.score - 3
    colourful = ff.decide(panel("Specimen A", cues=compute_cues(colour_map())), 1.0)
    assert any(r.startswith("cue:-colourfulness=") for r in colourful.reasons)


def test_excerpts_count_at_half_weight_and_once():
    bare = ff.decide(panel("Specimen B"), 1.0)
    one = ff.decide(panel("Specimen B", excerpts=["The fracture surface in Fig. 3a is flat."]), 1.0)
    two = ff.decide(panel("Specimen B", excerpts=["The fracture surface in Fig. 3a is flat.",
                                                  "Its fracture surface shows it again."]), 1.0)
    assert one.score == pytest.approx(bare.score + 1.0)  # "fracture surface" = 2.0 in a caption
    assert "excerpt:+fracture surface" in one.reasons
    assert two.score == one.score and two.reasons.count("excerpt:+fracture surface") == 1


def test_threshold_and_feature_cap():
    d = ff.decide(panel("Dimples, cleavage facets, striations, beach marks and pores"), 1.0)
    features = [r for r in d.reasons if r.startswith("caption:+feature=")]
    assert len(features) == 3  # capped at FEATURE_CAP
    borderline = ff.decide(panel("SEM image of specimen C"), 1.0)  # SEM + grey texture only
    assert borderline.score == pytest.approx(0.75) and not borderline.keep
    assert ff.decide(panel("SEM image of specimen C"), 0.75).keep


def test_vocabulary_phrases_match_whole_words_only():
    d = ff.decide(panel("Porescu alloy, fish-eye pattern around an inclusion", cues=PLOT_CUES), 1.0)
    names = sorted(r for r in d.reasons if "feature=" in r)
    assert names == ["caption:+feature=fish-eye pattern", "caption:+feature=inclusion"]


# --- the stage -----------------------------------------------------------------------------------------

def test_run_writes_sorted_decisions_deterministically(tmp_path):
    paths = StagePaths(tmp_path)
    for paper, caps in (("p2", ["Stress-strain curves", "Fractograph showing striations"]),
                        ("p1", ["Fracture surface with river patterns"])):
        ps = [panel(c, panel_id=f"{paper}-p1-f{i}-whole").model_copy(update={"paper_id": paper})
              for i, c in enumerate(caps)]
        write_model_atomic(paths.panels / f"{paper}.json", PaperPanels(paper_id=paper, source_pdf=f"{paper}.pdf",
                                                                      panels=ps))
    (paths.panels / "broken.json").write_text("{", encoding="utf-8")
    result = ff.run(paths, BuildConfig(out=tmp_path), progress=False)
    decisions = read_jsonl(paths.filter, FilterDecision)
    assert [d.panel_id for d in decisions] == ["p1-p1-f0-whole", "p2-p1-f0-whole", "p2-p1-f1-whole"]
    assert [d.keep for d in decisions] == [True, False, True]
    assert result.counts == {"panels": 3, "kept": 2, "dropped": 1, "papers_resumed": 0}
    assert [p.reason for p in result.problems] == ["bad_panels_record"]
    first = paths.filter.read_bytes()
    again = ff.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert paths.filter.read_bytes() == first
    # the two good papers' decisions come from the cache; the broken file is read (and reported) again
    assert again.counts["papers_resumed"] == 2 and [p.reason for p in again.problems] == ["bad_panels_record"]


# --- integration: the sample corpus ---------------------------------------------------------------------

def test_sample_corpus_fractographs_are_kept_and_other_figures_dropped(tmp_path):
    from pathlib import Path

    from dataset_builders import mine, panels, sample_corpus
    from dataset_builders.records import PaperRecord
    from fracto_core.files import read_model

    truth = sample_corpus.generate_corpus(tmp_path / "corpus", n_papers=6, seed=1)
    config = BuildConfig(out=tmp_path / "build", papers=tmp_path / "corpus" / "papers", workers=1)
    paths = StagePaths(config.out)
    for stage in (mine, panels, ff):
        assert stage.run(paths, config, progress=False).problems == []
    decisions = {d.panel_id: d for d in read_jsonl(paths.filter, FilterDecision)}
    mined = {read_model(f, PaperRecord).source_pdf: read_model(f, PaperRecord) for f in paths.mine.glob("*/paper.json")}
    seen = {True: 0, False: 0}
    for tp in truth.papers:
        paper = mined[Path(tp.file).name]
        for tf in tp.figures:
            fid = next(f.figure_id for f in paper.figures if f.number == str(tf.number))
            for pid, d in decisions.items():
                if pid.startswith(fid + "-"):
                    assert d.keep == tf.is_fracture, (tf.layout, tf.caption, d.reasons)
                    seen[tf.is_fracture] += 1
    assert seen[True] >= 5 and seen[False] >= 2


# --- what real captions say a micrograph is (issue 11) -------------------------------------------------

@pytest.mark.parametrize("caption, reason", [
    ("Cavitation erosion pits on the blade surface", "caption:-erosion"),
    ("SEM of the oxide scale with microcracks", "caption:-oxide scale"),
    ("X-ray CT reconstruction showing gas porosity", "caption:-X-ray CT"),
    ("Wear scar after fretting", "caption:-wear"),
    ("HAADF-STEM image of the austenite", "caption:-TEM/APT"),
])
def test_non_fracture_micrographs_are_rejected_with_the_reason(caption, reason):
    from dataset_builders.filter import text_evidence

    evidence = text_evidence(caption, "caption")
    assert sum(w for w, _ in evidence) < 1.0
    assert reason in [r for _, r in evidence]
    assert not any("feature=" in r for _, r in evidence)  # no other-sense feature counted


def test_unsplit_multipanel_with_non_fracture_panels_is_dropped():
    cap = ("Fig. 2. (a) Position of the Charpy specimens in the plate; (b-e) SEM fractographs of the fracture "
           "surfaces of specimens S2-S5; (f) mean hardness of the specimens.")
    whole = panel(cap, panel_id="p-p1-f1-whole").model_copy(update={"letter": None})
    d = ff.decide(whole, 1.0)
    assert not d.keep and any(r.startswith("unsplit_multipanel:panels (a), (f)") for r in d.reasons)
    # split, the fractograph panel is kept; whole, a figure whose panels all are fracture surfaces is kept
    split_b = panel(cap).model_copy(update={"letter": "b", "caption": "SEM fractographs of the fracture surfaces"})
    assert ff.decide(split_b, 1.0).keep
    all_fracto = "Fig. 3. Fracture surfaces of the bars: (a) as built; (b) after heat treatment."
    assert ff.decide(panel(all_fracto, panel_id="p-p1-f2-whole").model_copy(update={"letter": None}), 1.0).keep


# --- macro photos of broken test pieces, section views (generalised on real papers, issue 22) ----------

# cues of a photo of test pieces on a white bench: a third of it white, but rich in grey levels
BENCH_PHOTO = ImageCues(white_fraction=0.35, colourfulness=18.0, edge_density=0.1, grey_levels=160, std=65.0)


@pytest.mark.parametrize("caption", [
    "Figure 2: Samples After Impact Test",
    "Fig. 4. Specimens after the tensile test",
    "Broken bars of the 1018 steel",
    "Cup-and-cone fracture in aluminium",
])
def test_photo_of_broken_test_pieces_is_kept(caption):
    alone = ff.decide(panel(caption, cues=BENCH_PHOTO), 1.0)
    assert "caption:+fractured" in alone.reasons and alone.score == 0.5  # +1, and -0.5 for the white bench
    cited = ff.decide(panel(caption, cues=BENCH_PHOTO, excerpts=[f"Figure 2 pictures the {caption.lower()}."]), 1.0)
    assert cited.keep and "excerpt:+fractured" in cited.reasons  # the text citing it says so too
    assert ff.decide(panel(caption), 1.0).keep  # on a grey SEM-like image the caption alone is enough


def test_specimens_before_testing_are_not_fractured():
    d = ff.decide(panel("Specimens before testing", cues=BENCH_PHOTO), 1.0)
    assert not d.keep and "caption:+fractured" not in d.reasons


@pytest.mark.parametrize("caption, negative", [
    ("Photographs of the fracture surfaces of the bolts", False),
    ("Fracture types - surface photographs", False),
    ("Fracture surface photograph of the shaft", False),
    ("Photograph of the test rig", True),
    ("Photographs of the specimens", True),
])
def test_photographs_of_fracture_surfaces_are_no_negative(caption, negative):
    reasons = ff.decide(panel(caption), 1.0).reasons
    assert ("caption:-photograph" in reasons) is negative


@pytest.mark.parametrize("caption", [
    "Confocal laser scanning microscopy image perpendicular to the fracture surface",
    "Optical micrograph of a section beneath the fracture surface",
    "Cross-section of the fracture surface showing the crack path",
])
def test_views_across_the_fracture_surface_are_no_fracture_surface(caption):
    d = ff.decide(panel(caption), 1.0)
    assert not d.keep
    assert "caption:-section view" in d.reasons and "caption:+fracture surface" not in d.reasons


def test_section_view_does_not_hide_a_fracture_surface_named_beside_it():
    d = ff.decide(panel("SEM image of the fracture surface; inset: a section normal to the fracture surface"), 1.0)
    assert d.keep and "caption:+fracture surface" in d.reasons and "caption:-section view" in d.reasons


def test_crack_initiation_as_a_process_is_no_evidence():
    context = "Fracture starts from crack initiation and is accompanied by crack propagation."
    p = panel("").model_copy(update={"context": context, "cues": ImageCues(
        white_fraction=0.0, colourfulness=26.0, edge_density=0.05, grey_levels=186, std=66.0)})
    d = ff.decide(p, 1.0)
    assert not d.keep and not any("feature" in r for r in d.reasons)


@pytest.mark.parametrize("caption, reason", [
    ("Rupture surface of the creep specimen tested at 650 C", "caption:+fracture surface"),
    ("Fatigue crack surface of the weld toe", "caption:+crack surface"),
    ("Fracture topography of the as-built part", "caption:+fracture morphology"),
    ("SEM micrographs of the failed specimens", "caption:+SEM of fracture"),
    ("Low-magnification views of the fractured bolt", "caption:+SEM of fracture"),
    ("Beach marks on a fatigue-failed shaft", "caption:+fractured"),
    ("SEM image of the specimen after tensile testing", "caption:+fractured"),
    # German, Spanish, French names of a fracture surface and of fractography
    ("REM-Aufnahme der Bruchfläche nach dem Zugversuch", "caption:+fracture surface"),
    ("Bruchoberflächen der Proben", "caption:+fracture surface"),
    ("Superficie de fractura de la probeta", "caption:+fracture surface"),
    ("Faciès de rupture de l'éprouvette", "caption:+fracture surface"),
    ("Fraktographie der Schweißnaht", "caption:+fractograph"),
    ("Fractografía del acero", "caption:+fractograph"),
])
def test_other_names_of_a_fracture_surface_are_evidence(caption, reason):
    d = ff.decide(panel(caption), 1.0)
    assert d.keep and reason in d.reasons


def test_a_crack_face_sketch_is_no_fracture_surface():
    d = ff.decide(panel("Schematic of the crack faces under mode I loading", cues=PLOT_CUES), 1.0)
    assert not d.keep and "caption:+fracture surface" not in d.reasons


@pytest.mark.parametrize("caption", [
    "SEM micrograph viewed normal to the fracture surface",
    "Optical images taken perpendicular to the fracture surface of the bolt",
])
def test_a_plan_view_normal_to_the_fracture_surface_is_the_fractograph(caption):
    d = ff.decide(panel(caption), 1.0)
    assert d.keep and "caption:+fracture surface" in d.reasons and "caption:-section view" not in d.reasons


def test_crack_surfaces_of_fracture_mechanics_and_simulations_are_no_fractograph():
    assert "caption:+crack surface" not in ff.decide(panel("Crack surface displacement along the crack"), 1.0).reasons
    render = ImageCues(white_fraction=0.2, colourfulness=80.0, edge_density=0.1, grey_levels=200, std=60.0)
    assert not ff.decide(panel("Crack surface at t = 2 ms", cues=render), 1.0).keep  # a colour render


# --- paper-level freeze fracture, slide headings, failure envelopes, bright-field sections (issue 22, round 2) ---

FREEZE_SENTENCE = "Dense films, as evidenced by SEM cross sections generated from freeze fracturing (Fig. 2a-c)."


def _paper_decisions(tmp_path, panels: list[PanelRecord]) -> dict[str, FilterDecision]:
    paths = StagePaths(tmp_path)
    write_model_atomic(paths.panels / "p.json", PaperPanels(paper_id="p", source_pdf="p.pdf", panels=panels))
    ff.run(paths, BuildConfig(out=tmp_path), progress=False)
    return {d.panel_id: d for d in read_jsonl(paths.filter, FilterDecision)}


def test_cross_sections_of_a_freeze_fractured_paper_are_fracture_surfaces(tmp_path):
    cited = panel("SEM cross-sections of the films with 3 and 14 % filler", excerpts=[FREEZE_SENTENCE],
                  panel_id="p-p4-f1-a")
    other = panel("SEM cross-sections of the blends with 4 and 15 % filler", panel_id="p-p4-f1-d")  # not cited there
    polished = panel("Optical micrograph of a polished cross-section", panel_id="p-p5-f1-whole")
    got = _paper_decisions(tmp_path, [cited, other, polished])
    for pid in ("p-p4-f1-a", "p-p4-f1-d"):
        assert got[pid].keep and "caption:+fractured section" in got[pid].reasons
        assert "caption:-cross-section" not in got[pid].reasons
    assert not got["p-p5-f1-whole"].keep and "caption:-cross-section" in got["p-p5-f1-whole"].reasons


def test_cross_sections_stay_a_negative_without_the_paper_saying_they_were_fractured(tmp_path):
    got = _paper_decisions(tmp_path, [panel("SEM cross-sections of the films", excerpts=[
        "The films were cut with a microtome and the cross sections imaged (Fig. 2)."])])
    d = got["p-p1-f1-a"]
    assert not d.keep and "caption:-cross-section" in d.reasons and "caption:+fractured section" not in d.reasons


@pytest.mark.parametrize("text, fractured", [
    ("Samples were fractured in liquid nitrogen and sputter coated.", True),
    ("The cryo-fractured surfaces were gold coated.", True),
    ("Films were cryogenically fractured before imaging.", True),
    ("Specimens were stored in liquid nitrogen before tensile testing.", False),
    ("The freeze-dried scaffolds were cut with a razor blade.", False),
    ("Cryogenic fracture toughness of the weld was measured at 4 K.", False),
    ("The bars were immersed in liquid nitrogen and then fractured.", True),
])
def test_sections_fractured_reads_the_papers_own_text(text, fractured):
    assert ff.sections_fractured([panel("SEM cross-section", excerpts=[text])]) is fractured


def test_a_caption_naming_a_fractured_section_is_evidence_on_its_own():
    d = ff.decide(panel("Cryo-fractured cross-sections of the PS/BaTiO3 films"), 1.0)
    assert d.keep and "caption:+fractured section" in d.reasons and "caption:-cross-section" not in d.reasons


def test_a_slide_heading_about_fracture_names_its_surface_photographs():
    cues = ImageCues(white_fraction=0.43, colourfulness=7.7, edge_density=0.1, grey_levels=137, std=82.0)
    heading = panel("").model_copy(update={"context": "Fracture Types – Surface Photographs brittle fracture",
                                           "cues": cues})
    d = ff.decide(heading, 1.0)
    assert d.keep and "context:+surface photographs" in d.reasons
    coating = panel("").model_copy(update={"context": "Coatings - surface photographs after 100 h", "cues": cues})
    assert "context:+surface photographs" not in ff.decide(coating, 1.0).reasons


def test_a_failure_surface_chart_is_dropped_a_failure_surface_micrograph_kept():
    chart = ff.decide(panel("Failure surface.", cues=PLOT_CUES, excerpts=["The failure surface is shown in Fig. 10."]), 1.0)
    assert not chart.keep and "caption:+failure surface" in chart.reasons
    assert ff.decide(panel("SEM image of the failure surface of the bolt"), 1.0).keep


def etched_section(w: int = 400, h: int = 300, seed: int = 3) -> Image.Image:
    """A polished, etched section under bright-field light: an even light-grey matrix, dark grain boundaries,
    a few cracks."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (w, h), 205)
    d = ImageDraw.Draw(img)
    for _ in range(60):  # grain boundaries
        x, y = rng.integers(0, w), rng.integers(0, h)
        d.line([(int(x), int(y)), (int(x + rng.integers(-40, 40)), int(y + rng.integers(-40, 40)))], fill=60, width=1)
    for _ in range(3):  # cracks
        x, y = rng.integers(0, w // 2), rng.integers(0, h)
        d.line([(int(x), int(y)), (int(x + 150), int(y + rng.integers(-30, 30)))], fill=20, width=3)
    noise = rng.normal(0, 6, (h, w))
    return Image.fromarray(np.uint8(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255))).convert("RGB")


def macro_photo_on_white(w: int = 400, h: int = 300, seed: int = 4) -> Image.Image:
    """Broken bar ends photographed on a white background: white around a shaded grey object."""
    arr = np.full((h, w), 250.0)
    rng = np.random.default_rng(seed)
    arr[60:260, 80:180] = np.clip(rng.normal(150, 35, (200, 100)), 0, 255)
    arr[60:260, 230:330] = np.clip(rng.normal(160, 35, (200, 100)), 0, 255)
    return Image.fromarray(np.uint8(arr)).convert("RGB")


def test_light_fraction_cue_tells_a_bright_field_section_from_fractographs():
    section, sem, photo = compute_cues(etched_section()), SEM_CUES, compute_cues(macro_photo_on_white())
    assert section.light_fraction > 0.8 and section.white_fraction < 0.1
    assert sem.light_fraction < 0.3 and photo.light_fraction - photo.white_fraction < 0.45
    title = "Photographs of Brittle Fracture Surfaces • Intergranular crack propagation (between grains)"
    etched = ff.decide(panel("").model_copy(update={"context": title, "cues": section}), 1.0)
    assert not etched.keep and any(r.startswith("cue:-bright_field") for r in etched.reasons)
    assert "context:+fracture surface" in etched.reasons  # the title still counts, the pixels outweigh it
    for cues in (sem, photo):
        d = ff.decide(panel("").model_copy(update={"context": title, "cues": cues}), 1.0)
        assert d.keep and not any(r.startswith("cue:-bright_field") for r in d.reasons)


def test_a_paper_about_fractography_gives_its_unnamed_sem_images_a_small_prior(tmp_path):
    def decisions(title: str) -> dict[str, FilterDecision]:
        paths = StagePaths(tmp_path / title[:8].replace(" ", "_"))
        panels = [panel("Example of inner-shape extraction", panel_id="p-p7-f1-a"),  # an SEM-like image
                  panel("Example of inner-shape extraction", cues=PLOT_CUES, panel_id="p-p7-f1-b"),  # a binary mask
                  panel("Microstructure of the as-built alloy", panel_id="p-p3-f1-whole")]
        write_model_atomic(paths.panels / "p.json", PaperPanels(paper_id="p", source_pdf="p.pdf", panels=panels,
                                                                title=title))
        ff.run(paths, BuildConfig(out=paths.out), progress=False)
        return {d.panel_id: d for d in read_jsonl(paths.filter, FilterDecision)}

    about = decisions("Computer Vision Methods for Fractographic Defect Detection in Titanium Alloys")
    assert about["p-p7-f1-a"].keep and "paper:+fractography subject" in about["p-p7-f1-a"].reasons
    assert not about["p-p7-f1-b"].keep and not about["p-p3-f1-whole"].keep  # line art, a named microstructure
    other = decisions("Fatigue crack growth in titanium alloys")
    assert not other["p-p7-f1-a"].keep and "paper:+fractography subject" not in other["p-p7-f1-a"].reasons


@pytest.mark.parametrize("caption, reason", [
    ("SEM views of a polished and unetched horizontal section showing remnant argon bubbles", "caption:-cross-section"),
    ("Micrographs of L-PBF samples in as-polished condition", "caption:-cross-section"),
    ("Optical images of lack-of-fusion defects with unmelted powder particles in SLM parts",
     "caption:+feature=lack-of-fusion defects"),
    ("Spherical gas pores and lack-of-fusion defects in the SLM part", "caption:+feature=gas pores"),
])
def test_defects_a_section_shows_too_do_not_make_an_image_a_fracture_surface(caption, reason):
    """Pores, lack of fusion and unmelted powder are imaged on polished sections as often as on fracture surfaces."""
    d = ff.decide(panel(caption), 1.0)
    assert not d.keep and reason in d.reasons, d.reasons


def test_process_defects_on_a_named_fracture_surface_are_kept():
    d = ff.decide(panel("Fracture surface of the L-PBF specimen: a lack-of-fusion defect with unmelted powder "
                        "particles at the crack initiation site"), 1.0)
    assert d.keep and "caption:+fracture surface" in d.reasons
    weights = dict((r, w) for w, r in ff.text_evidence("gas pores and fatigue striations", "caption"))
    assert weights["caption:+feature=gas pores"] == ff.SECTION_FEATURE_WEIGHT
    assert weights["caption:+feature=fatigue striations"] == ff.FEATURE_WEIGHT


def test_a_feature_worded_differently_in_two_excerpts_counts_once():
    one = ff.decide(panel("Specimen D", excerpts=["Fig. 3 shows dimples all over."]), 1.0)
    two = ff.decide(panel("Specimen D", excerpts=["Fig. 3 shows dimples all over.",
                                                  "The equiaxed dimples of Fig. 3 are shallow."]), 1.0)
    assert two.score == one.score
    pores = ff.decide(panel("Specimen D", excerpts=["Fig. 3: a lack-of-fusion defect.", "Gas pores in Fig. 3."]), 1.0)
    assert sum(r.startswith("excerpt:+feature=") for r in pores.reasons) == 1  # section features: once in all


def test_a_section_after_tensile_testing_stays_a_section():
    d = ff.decide(panel("Etched microstructure after tensile testing"), 1.0)
    assert not d.keep and "caption:+fractured" not in d.reasons


@pytest.mark.parametrize("caption, broken", [
    # a view of the gauge surface after the test is no broken piece
    ("Surface relief (slip bands) of the specimen after tensile testing", False),
    ("SEM image of the gauge surface after tensile testing showing slip lines", False),
    # the test piece itself, or a break named near the test
    ("Optical image of the specimen after tensile testing", True),
    ("Tensile specimens after testing", True),
    ("Specimen broken after the tensile test", True),
])
def test_after_tensile_testing_is_a_broken_piece_only_when_the_piece_is_shown(caption, broken):
    d = ff.decide(panel(caption), 1.0)
    assert d.keep == broken and ("caption:+fractured" in d.reasons) == broken
