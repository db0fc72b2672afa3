"""The vocabulary is the single source of truth: it must be internally consistent."""

import pytest

from fracto_core import vocabulary as v


def test_every_phrase_maps_to_exactly_one_feature():
    index = v.phrase_index()  # raises if a phrase names two features
    for f in v.FEATURES:
        for phrase in f.phrases:
            assert index[phrase.lower()] == f.name


def test_design_card_features_and_rare_set_are_present():
    names = set(v.canonical_names())
    for required in ("equiaxed dimples", "cleavage facets", "river patterns", "intergranular facets",
                     "fatigue striations", "beach marks", "gas pore", "lack-of-fusion defect",
                     "fish-eye", "fine granular area", "mirror-mist-hackle", "crazing"):
        assert required in names
    assert set(v.rare_names()) == {"cleavage tongues", "ratchet marks", "fish-eye", "fine granular area",
                                   "unmelted powder particles", "creep cavities", "mirror-mist-hackle", "crazing"}
    assert len(names) == len(v.FEATURES)  # no duplicate canonical names


@pytest.mark.parametrize("label,expected", [
    ("Microvoid Coalescence", "equiaxed dimples"),
    ("  rock   candy ", "intergranular facets"),
    ("clamshell marks", "beach marks"),
    ("FGA", "fine granular area"),
    ("fish_eye", "fish-eye"),
    ("martensite", None),
])
def test_canonicalize(label, expected):
    assert v.canonicalize(label) == expected


def test_sort_features_uses_vocabulary_order_and_rejects_unknown():
    assert v.sort_features({"river patterns", "equiaxed dimples", "cleavage facets"}) == [
        "equiaxed dimples", "cleavage facets", "river patterns"]
    with pytest.raises(KeyError, match="unknown feature"):
        v.sort_features(["dimples"])  # a synonym is not a canonical name


@pytest.mark.parametrize("features,first", [
    ({"fish-eye", "fine granular area"}, "very-high-cycle fatigue"),
    ({"fatigue striations", "equiaxed dimples"}, "fatigue"),
    ({"intergranular facets", "creep cavities"}, "creep"),
    ({"intergranular facets", "quasi-cleavage"}, "hydrogen embrittlement"),
    ({"cleavage facets", "river patterns"}, "brittle overload"),
    ({"equiaxed dimples", "shear lip"}, "ductile overload"),
])
def test_mechanism_hints(features, first):
    assert v.mechanism_hints(features)[0] == first


def test_ductile_overload_not_suggested_when_fatigue_marks_present():
    assert "ductile overload" not in v.mechanism_hints({"fatigue striations", "equiaxed dimples"})
