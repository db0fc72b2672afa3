"""Issue 27 (6): the sample corpus pairs features with materials that can show them (fracto_core.vocabulary
Feature.materials), so the demo a newcomer opens first reads like the literature. The sample corpus is a
self-consistency demo: this checks its plausibility, not any accuracy."""

from __future__ import annotations

import time

import pytest

from dataset_builders.sample_corpus import generate_corpus
from dataset_builders.sample_corpus.text import MATERIALS
from dataset_builders.sample_corpus.textures import FRACTURE_KINDS, kind_allowed
from fracto_core.vocabulary import FEATURES, MATERIAL_CLASSES, can_show, feature


def test_vocabulary_gives_every_feature_its_material_classes():
    assert all(f.materials and set(f.materials) <= set(MATERIAL_CLASSES) for f in FEATURES)
    assert feature("crazing").materials == ("polymer",)
    assert feature("fatigue striations").materials == ("metal",)
    assert "ceramic" in feature("mirror-mist-hackle").materials and not can_show("mirror-mist-hackle", "metal")
    assert feature("fibre pull-out").materials == ("composite",) == feature("matrix cracking").materials
    assert all(can_show(f, c) for f in ("secondary cracks", "crack initiation site") for c in MATERIAL_CLASSES)
    with pytest.raises(KeyError, match="valid: metal, polymer"):
        can_show("crazing", "wood")
    assert not kind_allowed("crazing", "metal") and kind_allowed("crazing", "polymer")
    assert all(any(kind_allowed(k, c) for k in FRACTURE_KINDS) for c in set(MATERIALS.values()))


def test_generated_papers_show_only_features_their_material_can_show(tmp_path):
    start = time.perf_counter()
    truth = generate_corpus(tmp_path / "corpus", n_papers=40, seed=11)
    seconds = time.perf_counter() - start
    wrong, seen = [], {}
    for paper in truth.papers:
        cls = MATERIALS[paper.material]
        for fig in paper.figures:
            for panel in fig.panels:
                for name in (*panel.features, *panel.hedged):
                    seen.setdefault(name, set()).add(cls)
                    if not can_show(name, cls):
                        wrong.append((paper.file, fig.number, panel.letter, paper.material, name))
            if fig.is_fracture and not any(p.features for p in fig.panels):
                wrong.append((paper.file, fig.number, "a fracture figure without a feature"))
            if cls != "polymer":
                assert "polymer" not in fig.caption.lower(), (paper.file, fig.caption)
    assert wrong == []
    classes = {MATERIALS[p.material] for p in truth.papers}
    assert {"metal", "polymer", "ceramic"} <= classes  # non-metals are generated, not just filtered away
    assert seen["crazing"] == {"polymer"} and seen["fatigue striations"] == {"metal"}
    assert seconds < 120, f"40 papers took {seconds:.0f} s"
