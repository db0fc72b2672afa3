"""The words of the sample corpus: feature synonyms and phrasings, negations, materials, processes, tests,
authors, filler sentences, and the sentence record the body text is built from.

Every feature phrase is a vocabulary name or synonym (tests/test_sample_corpus.py checks that each
canonicalises back to its feature), so what a caption or sentence asserts is known exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .textures import KINDS


# caption/body wording for each canonical feature; every phrase is a vocabulary name or synonym
# (tests/test_sample_corpus.py checks that each canonicalises back to its feature)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "equiaxed dimples": ("equiaxed dimples", "microvoid coalescence", "dimple rupture", "ductile dimples"),
    "elongated dimples": ("elongated dimples", "shear dimples", "parabolic dimples", "tear dimples"),
    "cleavage facets": ("cleavage facets", "transgranular cleavage", "cleavage planes"),
    "river patterns": ("river patterns", "river markings", "river lines"),
    "cleavage tongues": ("cleavage tongues", "tongues"),
    "intergranular facets": ("intergranular facets", "intergranular fracture", "rock candy",
                             "grain boundary decohesion"),
    "fatigue striations": ("fatigue striations", "striations", "ductile striations"),
    "gas pore": ("gas pores", "porosity", "spherical pores", "gas porosity"),
    "lack-of-fusion defect": ("lack-of-fusion defect", "lack of fusion", "LOF defect", "unfused regions"),
    "unmelted powder particles": ("unmelted powder particles", "unmelted powder", "partially melted powder"),
    "fish-eye": ("fish-eye", "fisheye", "fish eye"),
    "fine granular area": ("fine granular area", "FGA", "optically dark area"),
    "inclusion at origin": ("non-metallic inclusion", "oxide inclusion", "inclusion"),
    "creep cavities": ("creep cavities", "grain boundary cavities", "wedge cracks", "cavitation"),
    "ratchet marks": ("ratchet marks", "ratchet lines"),
    "crazing": ("crazing", "crazes"),
    "secondary cracks": ("secondary cracks", "secondary cracking"),
}

# how a texture's features are put into words ({canonical name} -> a synonym)
KIND_PHRASES: dict[str, tuple[str, ...]] = {
    "equiaxed_dimples": ("{equiaxed dimples}", "{equiaxed dimples} typical of ductile overload"),
    "elongated_dimples": ("{elongated dimples}", "{elongated dimples} pointing along the shear direction"),
    "cleavage": ("{river patterns} on {cleavage facets}", "{cleavage facets} with {river patterns}"),
    "cleavage_tongues": ("{cleavage tongues} on {cleavage facets}", "{cleavage facets} with {cleavage tongues}"),
    "intergranular": ("{intergranular facets}", "{intergranular facets} along prior austenite grains"),
    "striations": ("{fatigue striations}", "closely spaced {fatigue striations}"),
    "gas_pores": ("{gas pore}", "{gas pore} near the surface"),
    "lack_of_fusion": ("a {lack-of-fusion defect} with {unmelted powder particles}",
                       "{unmelted powder particles} inside a {lack-of-fusion defect}"),
    "fish_eye": ("a {fish-eye} around an {inclusion at origin}", "an {inclusion at origin} inside a {fish-eye}"),
    "fine_granular_area": ("a {fine granular area} around an {inclusion at origin}",
                           "an {inclusion at origin} surrounded by a {fine granular area}"),
    "creep_cavities": ("{creep cavities} on {intergranular facets}",
                       "{intergranular facets} decorated with {creep cavities}"),
    "unmelted_powder": ("{unmelted powder particles}", "{unmelted powder particles} on the fracture surface"),
    "ratchet_marks": ("{ratchet marks}", "{ratchet marks} at the specimen surface"),
    "crazing": ("{crazing}", "{crazing} in the polymer matrix"),
}

NEGATABLE = ("fatigue striations", "cleavage facets", "intergranular facets", "gas pore", "secondary cracks",
             "equiaxed dimples")
NEG_WORDS = {"fatigue striations": ("fatigue striations", "striations"), "cleavage facets": ("cleavage facets",),
             "intergranular facets": ("intergranular facets",), "gas pore": ("gas pores",),
             "secondary cracks": ("secondary cracks",), "equiaxed dimples": ("dimples",)}

# material -> its class (fracto_core.vocabulary.MATERIAL_CLASSES): a paper shows only features its class can
# show (Feature.materials). No composite: no texture here draws a composite-only feature (fibre pull-out).
MATERIALS: dict[str, str] = {
    "AA7075-T6": "metal", "Ti-6Al-4V": "metal", "316L stainless steel": "metal", "AISI 4340 steel": "metal",
    "Inconel 718": "metal", "AlSi10Mg": "metal", "S355 structural steel": "metal", "AZ31 magnesium alloy": "metal",
    "17-4PH steel": "metal", "CoCrMo alloy": "metal", "PMMA": "polymer", "polycarbonate": "polymer",
    "alumina": "ceramic",
}
PROCESSES = {"metal": ("laser powder bed fused", "wrought", "cast", "forged", "electron beam melted", "rolled"),
             "polymer": ("injection moulded", "extruded", "compression moulded"),
             "ceramic": ("sintered", "hot-pressed")}
TESTS = ("uniaxial tension", "high-cycle fatigue", "ultrasonic fatigue", "Charpy impact", "slow strain rate",
         "creep rupture")
SURNAMES = ("Nakamura", "Okafor", "Lindqvist", "Moreau", "Castillo", "Zhang", "Kowalski", "Haddad", "Rossi",
            "Petrov", "Fischer", "Singh", "Almeida", "O'Connor", "Tanaka", "Novak")
INITIALS = "ABCDEFGHJKLMNPRSTVW"
FILLER = (
    "All tests were carried out at room temperature in laboratory air.",
    "The surfaces were ground with SiC paper up to grit 2000 before testing.",
    "Load was applied with a sinusoidal waveform at a stress ratio of R = 0.1.",
    "Three specimens were tested for each condition and the scatter was below 5 %.",
    "These observations agree with earlier reports on similar {material} grades.",
    "The results are discussed in terms of the microstructure and the loading conditions.",
    "A total of {n} specimens were tested, and the data are summarised in Table 1.",
)
CLASS_FILLER = {  # sentences only true of one material class
    "metal": (
        "Specimens were machined from the {material} plates with their axis parallel to the rolling direction.",
        "Fracture surfaces were cleaned ultrasonically in acetone and examined in a field-emission SEM at 15 kV.",
        "The heat treatment consisted of solution annealing followed by artificial ageing.",
        "Hardness was measured with a load of 0.5 kgf on polished cross sections.",
        "The yield strength increased after ageing while the elongation decreased slightly.",
        "Residual stresses were measured by X-ray diffraction using the sin²ψ method.",
        "Further work will address the role of the build orientation and of the surface finish.",
    ),
    "polymer": (
        "Specimens were cut from {material} sheets and conditioned at 23 °C and 50 % relative humidity.",
        "Fracture surfaces were sputter-coated with gold and examined in a field-emission SEM at 5 kV.",
        "The glass transition temperature was measured by differential scanning calorimetry.",
    ),
    "ceramic": (
        "Bars of {material} were ground and chamfered before four-point bending.",
        "Fracture surfaces were sputter-coated with carbon and examined in a field-emission SEM at 10 kV.",
        "The density of the sintered bars was measured by the Archimedes method.",
    ),
}
JOURNAL = "Journal of Synthetic Fractography"


@dataclass
class Sentence:
    """One body sentence: what it cites (``figure``, ``panels``, ``others``), asserts (``features``), denies
    and hedges."""

    text: str
    figure: int | None = None
    panels: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)
    hedged: list[str] = field(default_factory=list)
    others: list[int] = field(default_factory=list)  # further figures cited ("Figures 2 and 4")


def phrase(kind: str, r: random.Random) -> str:
    """Words naming the features of texture ``kind``, each feature as a random synonym."""
    template = r.choice(KIND_PHRASES[kind])
    return template.format_map({name: r.choice(SYNONYMS[name]) for name in KINDS[kind].features})


def negation_for(kind: str, r: random.Random) -> str:
    """A negatable feature that texture ``kind`` does not show (so denying it is true)."""
    return r.choice([n for n in NEGATABLE if n not in KINDS[kind].features])
