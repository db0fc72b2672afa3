"""dataset_builders.labelling.classes: technique and material category from captions, in eval's class names."""

from __future__ import annotations

import pytest

from dataset_builders.labelling.classes import MATERIAL_PHRASES, TECHNIQUE_PHRASES, caption_classes
from eval.tasks import get_task


def test_class_names_are_the_eval_tasks_labels():
    assert set(TECHNIQUE_PHRASES) <= set(get_task("microscopy_technique").labels)
    assert set(MATERIAL_PHRASES) == set(get_task("material_category").labels)


@pytest.mark.parametrize("caption, technique, material", [
    ("SEM fractograph of the Ti-6Al-4V specimen showing fatigue striations", "SEM", "titanium alloy"),
    ("Fig. 3. Optical micrograph of the fracture surface of AISI 4340 steel", "optical microscopy", "steel"),
    ("Stereo microscope view of the failed Inconel 718 disc", "stereo microscopy", "nickel superalloy"),
    ("TEM replica of the 7075-T6 aluminium alloy fracture surface", "TEM", "aluminium alloy"),
    ("Photograph of the broken CFRP laminate with epoxy matrix", "macro photograph", "composite"),
    ("SEM and TEM images of the glass", None, "ceramic/glass"),  # two techniques: no guess
    ("Fracture surface of the specimen", None, None),
    ("Scanning electron micrograph of a polycarbonate bar", "SEM", "polymer"),
])
def test_caption_classes(caption, technique, material):
    assert caption_classes(caption) == (technique, material)
