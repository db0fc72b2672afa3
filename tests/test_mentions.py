"""Vocabulary phrases in free text: longest match, spelling variants, word boundaries, negation scope."""

import unicodedata

import pytest

from dataset_builders.labelling.mentions import features_in, find_mentions, sentence_spans

DIMPLES = "equiaxed dimples"
CLEAVAGE = "cleavage facets"
RIVERS = "river patterns"
STRIATIONS = "fatigue striations"
BEACH = "beach marks"
IG = "intergranular facets"
PORE = "gas pore"
LOF = "lack-of-fusion defect"


# (sentence, asserted, negated): sentences written the way fractography captions and papers write them.
CASES = [
    ("No fatigue striations were observed on the fracture surface.", set(), {STRIATIONS}),
    ("The overload region is covered with dimples, but no striations.", {DIMPLES}, {STRIATIONS}),
    ("The facets are flat, without any cleavage facets or river patterns.", set(), {CLEAVAGE, RIVERS}),
    ("The absence of dimples indicates cleavage.", {CLEAVAGE}, {DIMPLES}),
    ("Fatigue striations were not observed, whereas beach marks are clearly visible.", {BEACH}, {STRIATIONS}),
    ("Neither dimples nor striations were found in the fast-fracture zone.", set(), {DIMPLES, STRIATIONS}),
    ("Dimples, striations and beach marks were not observed at this magnification.", set(),
     {DIMPLES, STRIATIONS, BEACH}),
    ("The surface shows dimples and striations were not observed.", {DIMPLES}, {STRIATIONS}),
    ("Cleavage facets rather than dimples dominate the surface at -196 °C.", {CLEAVAGE}, {DIMPLES}),
    ("Instead of dimples, cleavage facets with river patterns appear.", {CLEAVAGE, RIVERS}, {DIMPLES}),
    ("A lack of fusion defect at the origin, with unmelted powder particles.",
     {LOF, "unmelted powder particles"}, set()),
    ("The lack of striations suggests a single overload event.", set(), {STRIATIONS}),
    ("The fracture was not intergranular but transgranular cleavage.", {CLEAVAGE}, {IG}),
    ("The specimen tested in air did not show secondary cracks.", set(), {"secondary cracks"}),
    ("No dimples, cleavage facets dominate the whole section.", {CLEAVAGE}, {DIMPLES}),
    ("A pore-free fracture surface with fine equiaxed dimples.", {DIMPLES}, {PORE}),
    ("In the absence of hydrogen, the fracture surface exhibits ductile dimples.", {DIMPLES}, set()),
    ("The sample is free of porosity; quasi-cleavage and tear ridges prevail.",
     {"quasi-cleavage", "tear ridges"}, {PORE}),
    ("Specimen No. 3 shows a fish-eye around an inclusion and a fine granular area (FGA).",
     {"fish-eye", "inclusion at origin", "fine granular area"}, set()),
    ("There is no evidence of intergranular cracking or creep cavities in the weld.", set(),
     {IG, "creep cavities"}),
    ("Striations are absent and the surface is dominated by rock candy facets.", {IG}, {STRIATIONS}),
    ("Glass fracture with a mirror–mist–hackle pattern; no crazing was seen.", {"mirror-mist-hackle"},
     {"crazing"}),
    ("Fibre pull-out and matrix cracking were observed, but no delamination.",
     {"fibre pull-out", "matrix cracking"}, set()),
    ("Beach marks weren't visible, although ratchet marks indicate multiple origins.",
     {"ratchet marks"}, {BEACH}),
]


@pytest.mark.parametrize("sentence,asserted,negated", CASES, ids=[c[0][:40] for c in CASES])
def test_asserted_and_negated_features(sentence, asserted, negated):
    assert features_in(sentence) == (asserted, negated)


@pytest.mark.parametrize("text,feature,phrase", [
    ("quasi-cleavage facets", "quasi-cleavage", "quasi-cleavage"),  # not also "cleavage facets"
    ("Quasi cleavage", "quasi-cleavage", "Quasi cleavage"),
    ("intergranular dimples", "intergranular dimples", "intergranular dimples"),  # not "intergranular"
    ("lack-of-fusion pores", LOF, "lack-of-fusion pores"),  # not "gas pore"
    ("Lack of fusion defects", LOF, "Lack of fusion defects"),
    ("transgranular cleavage", CLEAVAGE, "transgranular cleavage"),
    ("cleavage tongues", "cleavage tongues", "cleavage tongues"),  # not "cleavage" + "tongues"
    ("crack initiation site", "crack initiation site", "crack initiation site"),
])
def test_longest_phrase_wins(text, feature, phrase):
    mentions = find_mentions(text)
    assert [(m.feature, m.phrase) for m in mentions] == [(feature, phrase)]


@pytest.mark.parametrize("text", ["fish-eye", "fish eye", "Fish–eye", "fisheye", "FISH - EYE", "fish\u2010eye"])
def test_hyphen_space_and_dash_variants(text):
    mentions = find_mentions(f"A {text} was found.")
    assert [m.feature for m in mentions] == ["fish-eye"]
    assert mentions[0].phrase == text


@pytest.mark.parametrize("text,expected", [
    ("river pattern", [RIVERS]), ("river patterns", [RIVERS]),
    ("a striation", [STRIATIONS]), ("striations", [STRIATIONS]),
    ("mirror, mist and hackle", ["mirror-mist-hackle"]),
    ("fiber pullout", ["fibre pull-out"]), ("fibre pull-out", ["fibre pull-out"]),
])
def test_listed_plurals_and_spellings(text, expected):
    assert [m.feature for m in find_mentions(text)] == expected


@pytest.mark.parametrize("text", [
    "The code today was odd.",  # "oda" inside words
    "Spores and composites.",  # "pores" inside a word
    "Dimplex and striationless",  # vocabulary words inside longer words
    "The fatigue life was measured.",
])
def test_word_boundaries(text):
    assert find_mentions(text) == []


def test_mentions_carry_positions_and_negation():
    text = "Dimples, but no striations."
    mentions = find_mentions(text)
    assert [(m.feature, text[m.start:m.end], m.negated) for m in mentions] == [
        (DIMPLES, "Dimples", False), (STRIATIONS, "striations", True)]


def test_lack_of_fusion_is_a_feature_even_when_negated():
    assert features_in("No lack-of-fusion defects were found.") == (set(), {LOF})
    assert features_in("Lack of fusion between layers.") == ({LOF}, set())


def test_feature_asserted_anywhere_is_not_negated():
    text = "Striations were not observed near the origin. Further away, fine striations are visible."
    assert features_in(text) == ({STRIATIONS}, set())


def test_negation_does_not_cross_sentences():
    assert features_in("No crack was found at the notch. Dimples cover the surface.") == ({DIMPLES}, set())


def test_abbreviation_dot_is_not_a_sentence_end():
    # "Fig." does not end the clause: the "no" still governs the striations after it
    assert features_in("There are no (see Fig. 3) striations.") == (set(), {STRIATIONS})


def test_sentence_spans_skip_abbreviations_but_not_panel_letters():
    text = "See Fig. 2b. Dimples, e.g. in J. Smith et al. (2020), are large. Cleavage in Fig. 3a–c. End"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "See Fig. 2b.", "Dimples, e.g. in J. Smith et al. (2020), are large.", "Cleavage in Fig. 3a–c.", "End"]


# --- real papers' language (issue 11) ---------------------------------------------------------------

from dataset_builders.labelling.mentions import defined_abbreviations, feature_sets  # noqa: E402


@pytest.mark.parametrize("text, asserted", [
    ("Fracture surface showing MVC and IG fracture.", {"equiaxed dimples", "intergranular facets"}),
    ("QC facets near LOF and FGA regions", {"quasi-cleavage", "lack-of-fusion defect", "fine granular area"}),
    ("MVC+TG, Fig. 2b", {"equiaxed dimples", "cleavage facets"}),
    ("the mirror would be black and the mist white", {"mirror-mist-hackle"}),
])
def test_abbreviations_and_parts(text, asserted):
    assert feature_sets(text)[0] == asserted


def test_paper_defined_abbreviations():
    table = defined_abbreviations(["regions of quasi-cleavage (QC) fracture", "under inert gas (IG)"])
    assert table == {"QC": "quasi-cleavage", "IG": None}
    assert feature_sets("IG atmosphere, QC zones", table)[0] == {"quasi-cleavage"}


@pytest.mark.parametrize("text, uncertain", [
    ("possibly showing striations", {"fatigue striations"}),
    ("dimple-like features resembling ductile fracture", {"equiaxed dimples"}),
    ("a surface that appears to show cleavage facets", {"cleavage facets"}),
    ('is "quasi-cleavage" (QC) like', {"quasi-cleavage"}),
])
def test_hedges_are_uncertain_not_labels(text, uncertain):
    asserted, negated, hedged = feature_sets(text)
    assert asserted == set() and hedged == uncertain


@pytest.mark.parametrize("text", [
    "Cavitation erosion pits on the blade",
    "SEM of the oxide scale with microcracks",
    "X-ray CT reconstruction showing gas porosity",
    "the crack initiation energy (KCVI) dropped",
    "Sandwichplatte mit Waben aus Aluminium.",  # a honeycomb core, not dimples
    # the stages of ductile damage, shown on polished sections as often as on fracture surfaces
    "Void nucleation, growth and coalescence.",
    "Void growth and coalescence in the necked region.",
    "Intercrystalline corrosion along the boundaries.",
    # French word order and accents
    "Corrosion intergranulaire le long des joints de grains.",
    "Attaque intergranulaire des joints de grains.",
    "Corrosion intercristalline le long des joints.",
    "Coupe métallographique : rupture intergranulaire.",
    "Coupe métallographique : gas pores.",
])
def test_other_word_senses_are_no_features(text):
    assert feature_sets(text) == (set(), set(), set())


def test_same_words_in_their_fracture_sense_still_count():
    assert feature_sets("creep cavitation at grain boundaries")[0] == {"creep cavities"}
    assert feature_sets("secondary cracks on the fracture surface")[0] == {"secondary cracks"}
    assert feature_sets("a gas pore at the fracture origin")[0] == {"gas pore", "crack initiation site"}


def test_cannot_be_explained_as_negates():
    assert "intergranular facets" in feature_sets("that cannot be explained as either IG, MVC or a true cleavage")[1]


@pytest.mark.parametrize("text, uncertain", [
    # features offered as alternatives name possibilities, not what the image shows
    ("The crack propagates via a transgranular or intergranular path.", {"intergranular facets"}),
    ("Dislocations pile up at grain boundaries, precipitates or inclusions.", {"inclusion at origin"}),
    ("The origin was a gas pore or a lack-of-fusion defect.", {"gas pore", "lack-of-fusion defect"}),
    ("the surface shows dimples and/or cleavage facets", {"equiaxed dimples", "cleavage facets"}),
])
def test_alternatives_are_uncertain_not_labels(text, uncertain):
    asserted, negated, hedged = feature_sets(text)
    assert hedged == uncertain and not asserted & uncertain


@pytest.mark.parametrize("text, asserted", [
    # "or" that offers no alternative
    ("Beach marks or clamshell marks cover the surface.", {"beach marks"}),  # synonyms: one feature
    ("one or more fatigue striations per cycle", {"fatigue striations"}),
    ("The surface shows dimples and cleavage facets.", {"equiaxed dimples", "cleavage facets"}),
    # the words of the section and glass senses below, used of a fracture surface
    ("SEM fractograph showing intergranular fracture.", {"intergranular facets"}),
    ("The fracture surface is intergranular.", {"intergranular facets"}),
    ("The fracture mirror is surrounded by mist and hackles.", {"mirror-mist-hackle"}),
    ("Hackles in the epoxy matrix between glass fibres.", {"matrix cracking"}),  # a glass-fibre composite
])
def test_features_asserted_in_their_fracture_sense(text, asserted):
    assert feature_sets(text)[0] == asserted


def test_negated_alternatives_stay_negated():
    assert feature_sets("No dimples or striations were found.") == (
        set(), {"equiaxed dimples", "fatigue striations"}, set())


@pytest.mark.parametrize("text", [
    "Fracture starts from crack initiation and is accompanied by crack propagation.",
    "Fracture starts from crack initiation and accompanied by crack propagation.",
    "Crack initiation and growth were modelled.",
])
def test_crack_initiation_as_a_process_is_no_site(text):
    assert feature_sets(text) == (set(), set(), set())


@pytest.mark.parametrize("text", [
    "The crack initiation and propagation zones are marked.",
    "Arrows mark the crack initiation site.",
])
def test_crack_initiation_site_still_counts(text):
    assert feature_sets(text)[0] == {"crack initiation site"}


@pytest.mark.parametrize("text, asserted, uncertain", [
    ("Unlike the dimples of the as-built sample, the HIPed sample shows cleavage facets.",
     {"cleavage facets"}, {"equiaxed dimples"}),
    ("In contrast to the ductile dimples seen at room temperature, cleavage facets dominate at -60 C.",
     {"cleavage facets"}, {"equiaxed dimples"}),
    ("The surface differs from the striations and beach marks of the fatigue test: it is covered by dimples.",
     {"equiaxed dimples"}, {"fatigue striations", "beach marks"}),
    # the contrast names no feature: what follows the comma is asserted
    ("Compared with Fig. 3, fatigue striations are finer.", {"fatigue striations"}, set()),
    ("Cleavage facets are observed, in contrast to the as-built sample.", {"cleavage facets"}, set()),
])
def test_features_of_the_thing_compared_are_no_labels(text, asserted, uncertain):
    got = feature_sets(text)
    assert got[0] == asserted and got[2] == uncertain


@pytest.mark.parametrize("text", [
    "Intergranular corrosion attack along the grain boundaries.",
    "Cross-section showing intergranular crack propagation.",
    "The etched section reveals intergranular cracking.",
    "Hackles radiate from the origin of the glass rod.",
])
def test_section_and_glass_senses_are_no_features(text):
    assert feature_sets(text) == (set(), set(), set())


# --- synonyms from the field's terminology (ASM Handbook Vol. 12), spelling variants, other languages -------------

@pytest.mark.parametrize("text, asserted", [
    ("The overload zone shows micro-voids.", {"equiaxed dimples"}),
    ("Fatigue striation marks run across the facet.", {STRIATIONS}),
    ("Progression marks surround the fatigue origin.", {BEACH, "crack initiation site"}),
    ("Several fish-eyes were found around inclusions.", {"fish-eye", "inclusion at origin"}),
    ("Intercrystalline fracture with secondary micro-cracks.", {IG, "secondary cracks"}),
    ("Transgranular brittle fracture in the centre.", {CLEAVAGE}),
    ("River marks converge on the origin of fracture.", {RIVERS, "crack initiation site"}),
    ("Un-melted powder and incomplete fusion near the surface.", {"unmelted powder particles", LOF}),
    ("Matrix microcracking and fibre pull-outs.", {"matrix cracking", "fibre pull-out"}),
    ("Wallner lines in the fracture mirrors.", {"mirror-mist-hackle"}),
    ("Grain-boundary fracture with microcracking.", {IG, "secondary cracks"}),
    ("An arrest line and a wedge crack near unmolten particles.",
     {BEACH, "creep cavities", "unmelted powder particles"}),
    # German, Spanish, French: the commonest terms of fractography textbooks in those languages
    ("Die Bruchfläche zeigt Waben, Schwingstreifen und Rastlinien.", {"equiaxed dimples", STRIATIONS, BEACH}),
    ("Der Bruchausgang liegt an der Oberfläche; interkristalliner Bruch.", {"crack initiation site", IG}),
    ("Superficie de fractura con hoyuelos y estrías de fatiga.", {"equiaxed dimples", STRIATIONS}),
    ("Faciès de rupture : cupules et stries de fatigue, clivage.", {"equiaxed dimples", STRIATIONS, CLEAVAGE}),
])
def test_field_synonyms_and_other_languages(text, asserted):
    assert feature_sets(text)[0] == asserted


@pytest.mark.parametrize("text, negated", [
    ("Die Bruchfläche zeigt keine Waben.", {"equiaxed dimples"}),
    ("Superficie sin estrías de fatiga.", {STRIATIONS}),
    ("Surface sans cupules.", {"equiaxed dimples"}),
])
def test_negations_in_other_languages(text, negated):
    assert feature_sets(text)[1] == negated


def test_nickel_is_no_negation():
    assert feature_sets("Ni-rich inclusions at the origin.")[0] == {"inclusion at origin"}


@pytest.mark.parametrize("text, asserted", [
    ("Lignes d\u2019arrêt et stries de fatigue.", {BEACH, STRIATIONS}),  # typographic apostrophes
    ("Sites d\u2019amorçage multiples.", {"crack initiation site"}),
    ("Site d\u2018amorçage.", {"crack initiation site"}),
    ("le\u0300vres de cisaillement", {"shear lip"}),  # a decomposed accent (as some PDFs' text layers have it)
    ("Lignes d'arre\u0302t.", {BEACH}),
])
def test_typographic_apostrophes_and_decomposed_accents(text, asserted):
    assert feature_sets(text)[0] == asserted


def test_positions_index_the_nfc_text():
    text = "Le\u0300vres de cisaillement et cupules."
    nfc = unicodedata.normalize("NFC", text)
    assert [nfc[m.start:m.end] for m in find_mentions(text)] == ["Lèvres de cisaillement", "cupules"]


@pytest.mark.parametrize("text, asserted, negated", [
    # silicon nitride and the sine are no Spanish "sin"
    ("SiN intergranular fracture surface", {IG}, set()),
    ("Fig. 3. SiN intergranular facets at the origin", {IG}, set()),
    ("Cleavage in SIN steel", {CLEAVAGE}, set()),
    ("The stress varies as sin θ dimples", {"equiaxed dimples"}, set()),
    # the Spanish cue, lower or title case, before a lower-case word
    ("Sin estrías de fatiga.", set(), {STRIATIONS}),
    ("Superficie sin hoyuelos.", set(), {"equiaxed dimples"}),
])
def test_spanish_sin_is_case_sensitive(text, asserted, negated):
    got = feature_sets(text)
    assert (got[0], got[1]) == (asserted, negated)


@pytest.mark.parametrize("text, asserted, uncertain", [
    # "it could be seen / may be observed that ..." reports what the image shows
    ("It could be seen that dimples cover the surface.", {"equiaxed dimples"}, set()),
    ("It may be clearly observed that cleavage facets dominate.", {CLEAVAGE}, set()),
    # a modal "be" before the feature itself still hedges it
    ("These may be fatigue striations.", set(), {STRIATIONS}),
    ("They could be dimples.", set(), {"equiaxed dimples"}),
])
def test_modal_verbs_of_seeing_are_no_hedge(text, asserted, uncertain):
    got = feature_sets(text)
    assert got[0] == asserted and got[2] == uncertain


@pytest.mark.parametrize("text, asserted", [
    ("No significant difference in dimple size was found between the two states.", {"equiaxed dimples"}),
    ("There is no change in the striation spacing along the crack.", {STRIATIONS}),
])
def test_a_denied_difference_does_not_deny_the_feature(text, asserted):
    assert feature_sets(text)[:2] == (asserted, set())
