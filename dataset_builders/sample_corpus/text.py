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

MATERIALS = ("AA7075-T6", "Ti-6Al-4V", "316L stainless steel", "AISI 4340 steel", "Inconel 718",
             "AlSi10Mg", "S355 structural steel", "AZ31 magnesium alloy", "17-4PH steel", "CoCrMo alloy")
PROCESSES = ("laser powder bed fused", "wrought", "cast", "forged", "electron beam melted", "rolled")
TESTS = ("uniaxial tension", "high-cycle fatigue", "ultrasonic fatigue", "Charpy impact", "slow strain rate",
         "creep rupture")
SURNAMES = ("Nakamura", "Okafor", "Lindqvist", "Moreau", "Castillo", "Zhang", "Kowalski", "Haddad", "Rossi",
            "Petrov", "Fischer", "Singh", "Almeida", "O'Connor", "Tanaka", "Novak")
INITIALS = "ABCDEFGHJKLMNPRSTVW"
FILLER = (
    "Specimens were machined from the {material} plates with their axis parallel to the rolling direction.",
    "All tests were carried out at room temperature in laboratory air.",
    "The surfaces were ground with SiC paper up to grit 2000 before testing.",
    "Fracture surfaces were cleaned ultrasonically in acetone and examined in a field-emission SEM at 15 kV.",
    "The heat treatment consisted of solution annealing followed by artificial ageing.",
    "Load was applied with a sinusoidal waveform at a stress ratio of R = 0.1.",
    "Three specimens were tested for each condition and the scatter was below 5 %.",
    "Hardness was measured with a load of 0.5 kgf on polished cross sections.",
    "These observations agree with earlier reports on similar {material} grades.",
    "The yield strength increased after ageing while the elongation decreased slightly.",
    "Residual stresses were measured by X-ray diffraction using the sin²ψ method.",
    "The results are discussed in terms of the microstructure and the loading conditions.",
    "Further work will address the role of the build orientation and of the surface finish.",
    "A total of {n} specimens were tested, and the data are summarised in Table 1.",
)
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
