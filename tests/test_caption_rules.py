"""Caption-rule labels, panel scoping of excerpts, the labeller registry and the label stage."""

import json

import pytest

from dataset_builders import label as label_stage
from dataset_builders.labelling.caption_rules import excerpt_segments, label_panel
from dataset_builders.config import BuildConfig
from dataset_builders.labelling.registry import (
    CaptionRulesLabeler,
    Labeler,
    LabelerUnavailableError,
    LabelTask,
    UnknownLabelerError,
    get_labeler,
    labeler_names,
)
from dataset_builders.records import (
    DuplicateGroup,
    FilterDecision,
    ImageCues,
    LabelRecord,
    PanelRecord,
    PaperPanels,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_json_atomic, write_jsonl_atomic

CUES = ImageCues(white_fraction=0.01, colourfulness=0.0, edge_density=0.3, grey_levels=200, std=40.0)


def panel(panel_id="p1-p2-f0-a", letter="a", caption="", excerpts=(), figure_number=2, paper_id="p1",
          figure_caption=None) -> PanelRecord:
    figure_id = panel_id.rsplit("-", 1)[0]
    return PanelRecord(
        panel_id=panel_id, figure_id=figure_id, paper_id=paper_id, source_pdf=f"{paper_id}.pdf", page=2,
        letter=letter, image=f"stages/panels/{paper_id}/{panel_id}.jpg", width=400, height=300,
        split_method="parts" if letter else "single", caption=caption,
        figure_caption=caption if figure_caption is None else figure_caption, figure_number=figure_number,
        excerpts=list(excerpts), phash="0f0f0f0f0f0f0f0f", cues=CUES,
    )


# --- label_panel -----------------------------------------------------------------------------------

def test_caption_features_with_evidence():
    rec = label_panel(panel(caption="SEM fractographs of AA7075-T6: equiaxed dimples and secondary cracks."))
    assert rec.origin == "caption_rules"
    assert rec.status == "labelled"
    assert rec.features == ["equiaxed dimples", "secondary cracks"]  # vocabulary order
    assert rec.evidence == {
        "equiaxed dimples": "caption: SEM fractographs of AA7075-T6: equiaxed dimples and secondary cracks.",
        "secondary cracks": "caption: SEM fractographs of AA7075-T6: equiaxed dimples and secondary cracks.",
    }
    assert rec.negated == []


def test_excerpt_scoped_to_this_panel_letter():
    text = "Fig. 2a shows dimples while Fig. 2b shows cleavage facets with river patterns."
    a = label_panel(panel(letter="a", excerpts=[text]))
    b = label_panel(panel(panel_id="p1-p2-f0-b", letter="b", excerpts=[text]))
    assert a.features == ["equiaxed dimples"]
    assert b.features == ["cleavage facets", "river patterns"]
    assert a.evidence == {"equiaxed dimples": "excerpt: Fig. 2a shows dimples"}
    assert b.evidence["river patterns"] == "excerpt: while Fig. 2b shows cleavage facets with river patterns."


@pytest.mark.parametrize("text,expected_a,expected_b", [
    ("Dimples, microvoids (Fig. 2a) and cleavage facets (Fig. 2b) are seen.",
     ["equiaxed dimples"], ["cleavage facets"]),
    ("Dimples are visible, as seen in Fig. 2a, whereas Fig. 2(b) shows intergranular facets.",
     ["equiaxed dimples"], ["intergranular facets"]),
    ("Figs. 2a and 2b show dimples and cleavage facets, respectively.",
     ["equiaxed dimples"], ["cleavage facets"]),
    ("Fig. 2 shows (a) fatigue striations and (b) beach marks.", ["fatigue striations"], ["beach marks"]),
    # the sentence after a citation continues its subject; the lead-in before the first citation is ignored
    ("Creep cavities were reported before. Fig. 2b shows striations. Secondary cracks are also visible.",
     [], ["fatigue striations", "secondary cracks"]),
    # a whole-figure citation speaks about every panel
    ("As Fig. 2 shows, the surface is covered with dimples.", ["equiaxed dimples"], ["equiaxed dimples"]),
    # a lower-case panel letter before a full stop ends the sentence (it is no initial)
    ("Dimples are seen in Fig. 2b. Cleavage facets dominate in Fig. 2a.", ["cleavage facets"],
     ["equiaxed dimples"]),
    # "respectively" with multi-word list parts: the k-th part goes to the k-th letter
    (("Several morphologies coexist in Fig. 2a–c. Figs. 2a and 2b show an inclusion inside a fish eye and "
      "unmelted powder particles inside a lack of fusion, respectively."),
     ["fish-eye", "inclusion at origin"], ["lack-of-fusion defect", "unmelted powder particles"]),
    ("Fig. 2a and b show dimples and cleavage, respectively, while Fig. 2c shows striations.",
     ["equiaxed dimples"], ["cleavage facets"]),
    # text about another figure is not about this one
    ("Dimples are shown in Fig. 3a; Fig. 2a and 2b show quasi-cleavage.", ["quasi-cleavage"],
     ["quasi-cleavage"]),
])
def test_excerpt_scoping(text, expected_a, expected_b):
    a = label_panel(panel(letter="a", excerpts=[text]))
    b = label_panel(panel(panel_id="p1-p2-f0-b", letter="b", excerpts=[text]))
    assert (a.features, b.features) == (expected_a, expected_b)


def test_excerpt_without_citation_counts_whole():
    rec = label_panel(panel(letter=None, excerpts=["The fracture surface is dominated by quasi-cleavage."]))
    assert rec.features == ["quasi-cleavage"]


def test_whole_figure_panel_takes_every_panel_citation():
    text = "Fig. 2a shows dimples while Fig. 2b shows cleavage facets."
    rec = label_panel(panel(panel_id="p1-p2-f0-whole", letter=None, excerpts=[text]))
    assert rec.features == ["equiaxed dimples", "cleavage facets"]


def test_caption_negation_wins_over_excerpt_assertion():
    rec = label_panel(panel(caption="Fracture surface with cleavage facets; no striations were observed.",
                            excerpts=["Striations are visible in Fig. 2a near the origin."]))
    assert rec.features == ["cleavage facets"]
    assert rec.negated == ["fatigue striations"]


def test_caption_assertion_wins_over_excerpt_negation():
    rec = label_panel(panel(caption="Fatigue striations near the origin.",
                            excerpts=["Fig. 2a shows no dimples and no striations in the overload zone."]))
    assert rec.features == ["fatigue striations"]
    assert rec.negated == ["equiaxed dimples"]


def test_excerpt_assertion_added_to_caption():
    rec = label_panel(panel(caption="Fracture surface of specimen S3.",
                            excerpts=["Fig. 2a reveals beach marks emanating from the crack origin."]))
    assert rec.features == ["beach marks", "crack initiation site"]
    assert rec.evidence["beach marks"] == "excerpt: Fig. 2a reveals beach marks emanating from the crack origin."


def test_no_features_status_and_detail():
    rec = label_panel(panel(caption="Optical micrograph of the etched microstructure."))
    assert rec.status == "no_features" and rec.features == [] and rec.evidence == {}
    assert "no vocabulary feature" in rec.detail
    neg = label_panel(panel(caption="A fracture surface without dimples."))
    assert neg.status == "no_features" and neg.negated == ["equiaxed dimples"]
    assert neg.detail == "only negated features: equiaxed dimples"


def test_empty_panel_caption_falls_back_to_figure_caption():
    rec = label_panel(panel(caption="", figure_caption="Fig. 2 Intergranular fracture of the weld."))
    assert rec.features == ["intergranular facets"]


def test_long_evidence_is_clipped_around_the_mention():
    caption = ("Overview " + "of the specimen geometry and test set-up " * 8 + "with ratchet marks "
               + "along the edge of the shaft " * 8 + ".")
    rec = label_panel(panel(caption=caption))
    ev = rec.evidence["ratchet marks"]
    assert ev.startswith("caption: …") and ev.endswith("…") and "ratchet marks" in ev
    assert len(ev) <= len("caption: ") + 202


def test_segments_cover_sentences_with_their_references():
    text = "Fig. 2a shows dimples while Fig. 2b shows cleavage."
    segs = excerpt_segments(text)
    assert [(text[s.start:s.end].strip(), [(r.figure, r.panels) for r in s.refs]) for s in segs] == [
        ("Fig. 2a shows dimples", [("2", ("a",))]), ("while Fig. 2b shows cleavage.", [("2", ("b",))])]


# --- registry --------------------------------------------------------------------------------------

def test_registry_names_and_caption_rules():
    assert labeler_names() == ["caption_rules", "gemini", "openai", "vllm"]
    labeler = get_labeler("caption_rules", BuildConfig())
    assert isinstance(labeler, Labeler) and isinstance(labeler, CaptionRulesLabeler)
    assert (labeler.name, labeler.origin, labeler.prompt_version) == ("caption_rules", "caption_rules", None)


def test_unknown_labeler_lists_valid_names():
    with pytest.raises(UnknownLabelerError) as exc:
        get_labeler("gpt5", BuildConfig())
    assert isinstance(exc.value, ValueError)
    assert str(exc.value) == "unknown labeller 'gpt5'; valid: caption_rules, gemini, openai, vllm"


@pytest.mark.parametrize("name", ["openai", "gemini", "vllm"])
def test_llm_labelers_refuse_to_start_without_a_model(name):
    with pytest.raises(LabelerUnavailableError) as exc:
        get_labeler(name, BuildConfig())
    assert isinstance(exc.value, RuntimeError)
    assert f"--labeler {name} needs --label-model" in str(exc.value)


def test_caption_rules_union_over_group_members(tmp_path):
    rep = panel(caption="Dimples in the overload zone; no striations.")
    reprint = panel(panel_id="p9-p4-f1-c", letter="c", paper_id="p9",
                    caption="Reprinted fractograph: dimples and secondary cracks.")
    outcome = CaptionRulesLabeler().label([LabelTask(rep.panel_id, (rep, reprint), tmp_path / "x.jpg")],
                                          progress=False)
    (rec,) = outcome.records
    assert rec.item_id == rep.panel_id
    assert rec.features == ["equiaxed dimples", "secondary cracks"]
    assert rec.negated == ["fatigue striations"]
    assert rec.evidence["equiaxed dimples"].startswith("caption: Dimples in the overload zone")
    assert rec.evidence["secondary cracks"] == ("[p9-p4-f1-c] caption: Reprinted fractograph: dimples and "
                                                "secondary cracks.")


# --- label stage -----------------------------------------------------------------------------------

def write_inputs(paths: StagePaths) -> None:
    p1 = [
        panel("p1-p2-f0-a", "a", caption="Equiaxed dimples.",
              excerpts=["Fig. 2a shows dimples while Fig. 2b shows cleavage facets."]),
        panel("p1-p2-f0-b", "b", caption="Flat facets; no striations.",
              excerpts=["Fig. 2a shows dimples while Fig. 2b shows cleavage facets."]),
        panel("p1-p3-f0-whole", None, caption="Load-displacement curves.", figure_number=3),
        panel("p1-p4-f0-whole", None, caption="Etched microstructure of the weld.", figure_number=4),
    ]
    p2 = [panel("p2-p5-f1-d", "d", paper_id="p2", caption="Reprinted from [12]: dimples, microvoids and a shear lip.")]
    write_json_atomic(paths.panels / "p1.json",
                      PaperPanels(paper_id="p1", source_pdf="p1.pdf", panels=p1).model_dump(mode="json"))
    write_json_atomic(paths.panels / "p2.json",
                      PaperPanels(paper_id="p2", source_pdf="p2.pdf", panels=p2).model_dump(mode="json"))
    write_jsonl_atomic(paths.filter, [
        FilterDecision(panel_id="p1-p2-f0-a", keep=True, score=3.0, reasons=["caption:+dimples"]),
        FilterDecision(panel_id="p1-p2-f0-b", keep=True, score=2.0, reasons=["caption:+facets"]),
        FilterDecision(panel_id="p1-p3-f0-whole", keep=False, score=-4.0, reasons=["caption:-curve"]),
        FilterDecision(panel_id="p1-p4-f0-whole", keep=True, score=1.0, reasons=["cues:+texture"]),
        FilterDecision(panel_id="p2-p5-f1-d", keep=True, score=3.0, reasons=["caption:+dimples"]),
    ])
    groups = [
        DuplicateGroup(group_id="p1-p4-f0-whole", representative="p1-p4-f0-whole", members=["p1-p4-f0-whole"],
                       paper_ids=["p1"]),
        DuplicateGroup(group_id="p1-p2-f0-b", representative="p1-p2-f0-b", members=["p1-p2-f0-b"],
                       paper_ids=["p1"]),
        DuplicateGroup(group_id="p1-p2-f0-a", representative="p1-p2-f0-a", members=["p1-p2-f0-a", "p2-p5-f1-d"],
                       paper_ids=["p1", "p2"]),
    ]
    write_json_atomic(paths.dedup, [g.model_dump(mode="json") for g in groups])


def test_label_stage_writes_sorted_labels(tmp_path):
    paths = StagePaths(tmp_path)
    write_inputs(paths)
    result = label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert result.stage == "label"
    assert result.counts == {"labelled": 2, "no_features": 1, "failed": 0, "reused": 0}
    assert result.problems == []
    records = read_jsonl(paths.labels, LabelRecord)
    assert [r.item_id for r in records] == ["p1-p2-f0-a", "p1-p2-f0-b", "p1-p4-f0-whole"]
    a, b, w = records
    assert a.features == ["equiaxed dimples", "shear lip"]  # union with the reprint in p2
    assert a.evidence == {"equiaxed dimples": "caption: Equiaxed dimples.",
                          "shear lip": "[p2-p5-f1-d] caption: Reprinted from [12]: dimples, microvoids and a "
                                       "shear lip."}
    assert b.features == ["cleavage facets"] and b.negated == ["fatigue striations"]
    assert b.evidence == {"cleavage facets": "excerpt: while Fig. 2b shows cleavage facets."}
    assert w.status == "no_features" and w.features == []
    assert all(r.origin == "caption_rules" for r in records)


def test_label_stage_is_deterministic(tmp_path):
    paths = StagePaths(tmp_path)
    write_inputs(paths)
    label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    first = paths.labels.read_bytes()
    label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert paths.labels.read_bytes() == first
    assert first.count(b"\n") == 3


def test_label_stage_reports_stale_groups(tmp_path):
    paths = StagePaths(tmp_path)
    write_inputs(paths)
    groups = json.loads(paths.dedup.read_text())
    groups.append({"group_id": "gone", "representative": "gone", "members": ["gone"], "paper_ids": ["p7"]})
    groups.append({"group_id": "p1-p3-f0-whole", "representative": "p1-p3-f0-whole",
                   "members": ["p1-p3-f0-whole"], "paper_ids": ["p1"]})
    write_json_atomic(paths.dedup, groups)
    result = label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert sorted((p.reason, p.item_id) for p in result.problems) == [
        ("not_kept", "p1-p3-f0-whole"), ("unknown_panel", "gone")]
    assert [r.item_id for r in read_jsonl(paths.labels, LabelRecord)] == ["p1-p2-f0-a", "p1-p2-f0-b",
                                                                          "p1-p4-f0-whole"]


def test_label_stage_reports_every_unreadable_panels_file_first(tmp_path):
    """Panels are read paper by paper; an unreadable file (named by a group or by none) is still a Problem,
    in front of the groups' problems, as when the stage read every file before the groups."""
    paths = StagePaths(tmp_path)
    write_inputs(paths)
    (paths.panels / "p0.json").write_text("{not json")  # no group names it
    groups = json.loads(paths.dedup.read_text())
    groups.append({"group_id": "gone", "representative": "gone", "members": ["gone"], "paper_ids": ["p7"]})
    write_json_atomic(paths.dedup, groups)
    result = label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert [(p.reason, p.paper_id or p.item_id) for p in result.problems] == [
        ("bad_panels_file", "p0"), ("unknown_panel", "gone")]
    assert [r.item_id for r in read_jsonl(paths.labels, LabelRecord)] == ["p1-p2-f0-a", "p1-p2-f0-b",
                                                                          "p1-p4-f0-whole"]


def test_label_stage_needs_dedup_and_refuses_unavailable_labeller(tmp_path):
    paths = StagePaths(tmp_path)
    write_inputs(paths)
    paths.dedup.unlink()
    with pytest.raises(FileNotFoundError, match="run the dedup stage first"):
        label_stage.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert not paths.labels.exists()
    write_inputs(paths)
    with pytest.raises(LabelerUnavailableError):
        label_stage.run(paths, BuildConfig(out=tmp_path, labeler="openai"), progress=False)
    assert not paths.labels.exists()


# --- the LLM labeller reads the same resolved excerpts (issue 11) ---------------------------------------

def test_llm_prompt_receives_the_excerpts_resolved_to_the_panel():
    from dataset_builders.labelling.schema import label_prompt
    from dataset_builders.panels import panel_excerpts
    from dataset_builders.pdf.captions import cite_excerpts
    from dataset_builders.records import Excerpt, ImageCues, PanelRecord, PaperRecord

    body = ("The fracture surface in Fig. 2b shows MVC and TG features. "
            "Fig. 2a is a sketch of the specimen positions. Figs. 3(a)–(c) show the hardness.")
    excerpts = [Excerpt(figure_number=c.figure_number, panels=c.panels, text=t, page=1)
                for c, t in cite_excerpts(body, 80)]
    paper = PaperRecord(paper_id="p", source_pdf="p.pdf", n_pages=1, figures=[], excerpts=excerpts)
    resolved = panel_excerpts(paper, "2", "b", whole_figure=False)
    assert resolved == ["The fracture surface in Fig. 2b shows MVC and TG features."]
    cues = ImageCues(white_fraction=0, colourfulness=0, edge_density=0.2, grey_levels=200, std=40)
    panel = PanelRecord(panel_id="p-f1-b", figure_id="p-f1", paper_id="p", source_pdf="p.pdf", page=1, letter="b",
                        image="x.jpg", width=10, height=10, split_method="gutter", caption="(b) S3",
                        figure_caption="Fig. 2. (a) positions; (b) S3", figure_number=2, excerpts=resolved,
                        phash="0", cues=cues)
    _, user = label_prompt([panel])
    assert "Text of the paper citing this figure:\n- The fracture surface in Fig. 2b shows MVC and TG" in user
    assert "sketch" not in user and "hardness" not in user
    record = label_panel(panel)
    assert record.features == ["equiaxed dimples", "cleavage facets"]  # MVC, TG: the vocabulary's abbreviations


# --- an image kept whole for several named panels (labelling.multipanel) ----------------------------------

def test_unsplit_multipanel_keeps_only_features_of_every_panel():
    cap = ("Fig. 2. SEM fractographs of the weld, all showing secondary cracks: (a) equiaxed dimples near the "
           "origin; (b) cleavage facets in the core.")
    rec = label_panel(panel(panel_id="p1-p2-f0-whole", letter=None, caption=cap))
    assert rec.features == ["secondary cracks"]  # named for both panels; dimples / cleavage for one each
    assert rec.detail.startswith("unsplit_multipanel") and "(a) equiaxed dimples" in rec.detail
    # the same caption on a split panel keeps that panel's own features
    assert set(label_panel(panel(letter="a", caption=cap, figure_caption=cap)).features) >= {"equiaxed dimples"}


def test_unsplit_multipanel_with_nothing_common_is_not_labelled():
    cap = "Fig. 2. (a) Equiaxed dimples in the overload zone; (b) intergranular facets near the origin."
    rec = label_panel(panel(panel_id="p1-p2-f0-whole", letter=None, caption=cap))
    assert rec.features == [] and rec.status == "no_features" and rec.detail.startswith("unsplit_multipanel")
    # a figure naming one panel or none is not concerned
    one = label_panel(panel(panel_id="p1-p2-f1-whole", letter=None, caption="Fig. 3. Equiaxed dimples (a)."))
    assert one.features == ["equiaxed dimples"]


def test_caption_rules_in_two_worker_processes_give_the_same_records_in_order(tmp_path):
    captions = ["Dimples in the overload zone.", "Cleavage facets and river patterns; no dimples.",
                "Fatigue striations near the origin.", "Intergranular facets with secondary cracks.", ""]
    tasks = []
    for i in range(40):
        p = panel(panel_id=f"p{i}-p2-f0-a", paper_id=f"p{i}", caption=captions[i % len(captions)],
                  excerpts=[f"As Fig. 2a shows, {captions[(i + 1) % len(captions)].lower()}"])
        tasks.append(LabelTask(p.panel_id, (p,), tmp_path / f"{i}.jpg"))
    one = CaptionRulesLabeler(workers=1).label(tasks, progress=False).records
    two = CaptionRulesLabeler(workers=2).label(tasks, progress=False).records
    assert [r.item_id for r in two] == [t.item_id for t in tasks]
    assert two == one
    assert sum(bool(r.features) for r in one) >= 30  # the captions really were labelled



# --- features stated per panel in the body text while the caption names none (issue 22, class 5) ------------

BARE_CAPTION = "Fig. 11. SEM fractographs of the tested specimens."


def _labels(text: str, letters: str = "abcde") -> dict[str, tuple[list[str], list[str], list[str]]]:
    """letter -> (features, uncertain, negated) of Fig. 11's panels when only ``text`` names features."""
    out = {}
    for k in letters:
        r = label_panel(panel(panel_id=f"p1-p2-f0-{k}", letter=k, caption=BARE_CAPTION, excerpts=[text],
                              figure_number=11))
        out[k] = (r.features, r.uncertain, r.negated)
    return out


@pytest.mark.parametrize("text", [
    "The fracture surfaces in Fig. 11b–d are covered by dimples, whereas Fig. 11a shows cleavage facets.",
    "The fracture surfaces in Figs. 11(b)-(d) are covered by dimples, whereas Fig. 11(a) shows cleavage facets.",
    "Dimples cover the fracture surfaces in Fig. 11b-d, while cleavage facets dominate in Fig. 11a.",
])
def test_body_text_states_features_per_panel_range(text):
    got = _labels(text)
    assert got["a"][0] == ["cleavage facets"]
    assert got["b"][0] == got["c"][0] == got["d"][0] == ["equiaxed dimples"]
    assert got["e"] == ([], [], [])  # outside the range: nothing


def test_body_text_per_panel_hedges_and_negations_are_no_labels():
    got = _labels("The fracture surfaces in Fig. 11b–d may be covered by dimples. No striations are seen in "
                  "Fig. 11e, while Fig. 11a shows no dimples.")
    assert got["b"] == got["c"] == got["d"] == ([], ["equiaxed dimples"], [])
    assert got["e"] == ([], [], ["fatigue striations"])
    assert got["a"] == ([], [], ["equiaxed dimples"])


def test_body_text_per_panel_alternatives_are_no_labels():
    got = _labels("In Fig. 11b–c the crack runs along an intergranular or transgranular path.")
    assert got["b"][0] == got["c"][0] == [] and got["b"][1] == ["intergranular facets"]


def test_body_text_panel_list_and_range_with_a_negated_panel():
    got = _labels("As seen in Figs. 11b and 11d, the surfaces are covered by dimples, but Fig. 11c is not. "
                  "Fig. 11b–d show fatigue striations; beach marks are absent in Fig. 11c.")
    assert got["b"][0] == got["d"][0] == ["equiaxed dimples", "fatigue striations"]
    assert got["c"] == (["fatigue striations"], [], ["beach marks"])


# --- tables flattened into the text layer are no statement about a figure -------------------------------------

TABLE_TEXT = ("Table 2 Fracture mode and features, Fig. 11b-e Coexistence of mechanisms S5 3 (left) 157 30.10 21.11 "
              "8.99 MVC+TG, Fig. 11b HELP S3 6 (right) 164 28.28a 19.23a 9.05 MVC+TG (MVC >> TG), Fig. 11c HELP + "
              "HEDE S4 Close to the fracture (left) 166 13.23b 3.14b 10.09 TG+MVC, Fig. 11d HEDE S2 3 (right) 183c "
              "8.81b 2.56a 6.25b IG+TG, Voids and IG micro cracks, Fig. 11e HEDE + HTHA")
ABBREVIATED = ("Fracture modes are abbreviated as microvoid coalescence (MVC), transgranular (TG) and intergranular "
               "(IG) fracture.")


def test_a_table_row_read_as_text_gives_no_panel_a_feature():
    # the text layer of a table: cells in column order, each row's figure citation after its features, so the
    # words around a citation belong to the neighbouring rows; nothing is taken from such a row
    got = _labels(ABBREVIATED + " " + TABLE_TEXT)
    assert all(features == [] for features, _, _ in got.values()), got


def test_prose_next_to_a_table_row_still_labels():
    got = _labels(ABBREVIATED + " " + TABLE_TEXT + ". The surface of specimen S2 (Fig. 11e) failed by IG fracture "
                  "at 3.2, 4.5 and 6.1 mm from the edge.")
    assert got["e"][0] == ["intergranular facets"]
    assert got["b"][0] == got["c"][0] == got["d"][0] == []
