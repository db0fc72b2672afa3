"""How the sample papers word what they show, as real papers do, so the corpus is not the labeller's own
lexicon read back: paraphrases beyond the vocabulary's synonyms, abbreviations (built-in and defined by the
paper itself), hedged mentions, negations in many forms, and distractor micrographs named in another sense.

The ground truth is what an expert reading the text would label, decided here per wording:

* a vocabulary synonym, a paraphrase (``PARAPHRASES``) or an abbreviation (``ABBREVIATIONS``) names the
  feature: a label, whether or not the offline rules know the words (a paraphrase they cannot know is a
  legitimate miss, never a reason to drop the label from the truth);
* a hedge ("possibly striations", "dimple-like features", "resembling cleavage") is uncertain: recorded as
  hedged, not a label;
* a negation ("free of pores", "striations could not be found") is recorded as negated, not a label;
* a distractor micrograph (EBSD map, X-ray CT, wear scar, cavitation erosion, oxide scale) is no fractograph,
  whatever fracture words its caption uses in their other sense: no label.
"""

from __future__ import annotations

import random
import re

from fracto_core.vocabulary import can_show

from .text import KIND_PHRASES, NEG_WORDS, SYNONYMS
from .textures import KINDS

# Expert wordings of each feature that are not (necessarily) vocabulary phrases. Each reads, to a
# fractographer, as exactly that feature (so the truth labels it).
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "equiaxed dimples": ("cup-like microvoids", "ductile tearing with cup-like microvoids",
                         "honeycomb of small round microvoids", "shallow equiaxed cups"),
    "elongated dimples": ("sheared microvoids stretched along the loading direction",
                          "elongated microvoids", "shear-stretched cups"),
    "cleavage facets": ("flat transgranular facets", "flat brittle facets crossing whole grains"),
    "river patterns": ("branching steps converging along the crack path", "fan-shaped step markings"),
    "cleavage tongues": ("small tongue-shaped steps", "tongue-shaped protrusions"),
    "intergranular facets": ("smooth grain faces exposed by boundary separation",
                             "decohesion along grain boundaries", "faceted grain surfaces"),
    "fatigue striations": ("fine, evenly spaced crack-front markings", "regular crack-arrest lines, one per cycle"),
    "gas pore": ("spherical smooth-walled voids", "entrapped-gas voids"),
    "lack-of-fusion defect": ("irregular unfused gaps between melt tracks", "interlayer region that never fused"),
    "unmelted powder particles": ("spherical feedstock particles that did not melt",
                                  "partially sintered spherical particles"),
    "fish-eye": ("circular bright zone centred on the subsurface origin",),
    "fine granular area": ("rough, granular zone next to the origin",),
    "inclusion at origin": ("non-metallic particle at the origin", "Al2O3 particle at the crack origin"),
    "creep cavities": ("grain-boundary voids formed during creep", "cavities opened on boundaries by creep"),
    "ratchet marks": ("steps between neighbouring initiation sites",),
    "crazing": ("bands of drawn polymer fibrils",),
}

# abbreviation -> (canonical feature, how the paper defines it, how a caption uses it)
ABBREVIATIONS: dict[str, tuple[str, str, str]] = {
    "MVC": ("equiaxed dimples", "microvoid coalescence (MVC)", "MVC"),
    "IG": ("intergranular facets", "intergranular (IG) fracture", "IG fracture"),
    "TG": ("cleavage facets", "transgranular (TG) cleavage", "TG facets"),
    "LOF": ("lack-of-fusion defect", "lack-of-fusion (LOF) defects", "LOF"),
    "FGA": ("fine granular area", "fine granular area (FGA)", "FGA"),
    # not in the vocabulary's table: only the paper's own definition says what they mean
    "UPP": ("unmelted powder particles", "unmelted powder particles (UPP)", "UPP"),
    "GBC": ("creep cavities", "grain boundary cavities (GBC)", "GBC"),
}
BUILT_IN = ("MVC", "IG", "TG", "LOF", "FGA")  # an expert reads these even undefined

# a hedge makes a feature uncertain: {w} is a vocabulary word for it, {stem} its "-like" stem
HEDGE_STEMS = {"fatigue striations": "striation", "equiaxed dimples": "dimple", "cleavage facets": "cleavage",
               "gas pore": "pore", "intergranular facets": "intergranular", "secondary cracks": "crack"}
HEDGES = ("possibly {w}", "features resembling {w}", "{stem}-like features", "what appear to be {w}",
          "markings similar to {w}")

# negations attached to a caption part (",": after the phrase) and body sentences denying a feature
CAPTION_NEGATIONS = (", no {w} visible", " without {w}", ", free of {w}", ", with no evidence of {w}",
                     "; {W} are absent")
SENTENCE_NEGATIONS = ("No {w} were observed in {ref}.", "{W} could not be found in {ref}.",
                      "{Ref} does not show any {w}.", "The surface in {ref} is free of {w}.",
                      "There is no evidence of {w} in {ref}.", "{W} were absent in {ref}.")

# distractor micrographs: caption bodies and citing sentences that use fracture words in another sense
DISTRACTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ebsd_map": (("EBSD inverse pole figure map of the {m} microstructure showing equiaxed grains.",
                  "EBSD orientation map of the as-built {m}; colours give the grain orientation."),
                 ("The EBSD map ({ref}) shows a weak texture with equiaxed grains.",)),
    "ct_render": (("X-ray CT reconstruction of the gauge section showing gas porosity and lack-of-fusion defects.",
                   "Micro-CT rendering of the internal porosity of the {m} specimen."),
                  ("X-ray tomography ({ref}) reveals gas porosity and lack of fusion in the gauge volume.",)),
    "wear_scar": (("SEM image of the wear scar on {m} after fretting, with grooves and delaminated debris.",
                   "Worn surface of {m} after the pin-on-disc test."),
                  ("The worn track in {ref} is covered by grooves parallel to the sliding direction.",)),
    "cavitation_pits": (("Cavitation erosion pits on the {m} surface after 5 h of ultrasonic exposure.",
                         "SEM image of cavitation damage on the {m} surface: erosion pits and craters."),
                        ("Cavitation erosion pits cover the exposed surface ({ref}).",)),
    "oxide_scale": (("SEM of the oxide scale formed on {m} at 800 °C with microcracks.",
                     "Cross-section of the oxide scale on {m}, with secondary cracks in the scale."),
                    ("The oxide scale in {ref} contains microcracks normal to the surface.",)),
}


class Wording:
    """One paper's way of naming features: which abbreviations it defined, how often it paraphrases."""

    def __init__(self, r: random.Random, defined: dict[str, str]):
        self.r = r
        self.defined = defined  # abbreviation -> canonical feature, defined in the paper's introduction
        self.by_feature = {feat: abbr for abbr, feat in defined.items()}

    def name(self, feature: str) -> str:
        """Words for ``feature``: a vocabulary synonym, a paraphrase or an abbreviation."""
        r = self.r
        x = r.random()
        abbr = self.by_feature.get(feature) or next(
            (a for a in BUILT_IN if ABBREVIATIONS[a][0] == feature and r.random() < 0.3), None)
        if abbr and x < 0.3:
            return ABBREVIATIONS[abbr][2]
        if feature in PARAPHRASES and x > 0.7:
            return r.choice(PARAPHRASES[feature])
        return r.choice(SYNONYMS[feature])

    def phrase(self, kind: str) -> str:
        """Words naming every feature of texture ``kind`` (an expert reads all of them)."""
        template = self.r.choice(KIND_PHRASES[kind])
        text = template.format_map({name: self.name(name) for name in KINDS[kind].features})
        text = re.sub(r"\ban? (?=[aeiou])", "an ", text)  # the article agrees with the words put after it
        return re.sub(r"\ban (?=[b-df-hj-np-tv-z])", "a ", text)

    def hedge(self, feature: str) -> str:
        r = self.r
        w = r.choice(NEG_WORDS.get(feature, SYNONYMS[feature]))
        return r.choice(HEDGES).format(w=w, stem=HEDGE_STEMS[feature])

    def caption_negation(self, feature: str) -> str:
        w = self.r.choice(NEG_WORDS[feature])
        return self.r.choice(CAPTION_NEGATIONS).format(w=w, W=w[0].upper() + w[1:])

    def sentence_negation(self, feature: str, ref: str) -> str:
        w = self.r.choice(NEG_WORDS[feature])
        return self.r.choice(SENTENCE_NEGATIONS).format(w=w, W=w[0].upper() + w[1:], ref=ref,
                                                        Ref=ref[0].upper() + ref[1:])


def definitions_sentence(defined: dict[str, str], material: str) -> str:
    """The introduction's sentence that defines the paper's abbreviations."""
    parts = [ABBREVIATIONS[a][1] for a in defined]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Failure of {material} is commonly discussed in terms of {listed}."


def hedgeable(excluded: set[str], r: random.Random, material_class: str = "metal") -> str | None:
    """A feature to hedge that is not among ``excluded`` (the panel's features and negations) and that the
    material could show (nobody writes "possibly striations" of a polymer)."""
    options = [f for f in HEDGE_STEMS if f not in excluded and can_show(f, material_class)]
    return r.choice(options) if options else None
