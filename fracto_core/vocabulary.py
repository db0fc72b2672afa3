"""The fractography morphology vocabulary: the single source of truth.

Everything that names a fracture-surface feature reads it from here: the caption-rule labeller, the
LLM labelling prompt and its JSON schema, the training targets, answer parsing and the metrics.
Domain authority: ASM Handbook Vol. 12 *Fractography* (see ../shared/DESIGN.md §4).

Usage:
    from fracto_core.vocabulary import FEATURES, feature, canonical_names
    feature("fatigue striations").rare   # False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

# Bump when a feature is added, removed or renamed (or its meaning changes): expert reviews exported with one
# version are refused by another (dataset_builders.review.importer), since their choices name other features.
VOCABULARY_VERSION = "fracto-vocab-v1"


# Material classes a fracture surface can belong to; "ceramic" includes glass (ASM Handbook Vol. 12: metals,
# ceramics and glasses, polymers, composites are treated in separate chapters).
MATERIAL_CLASSES: tuple[str, ...] = ("metal", "polymer", "ceramic", "composite")


@dataclass(frozen=True)
class Feature:
    """One canonical morphology feature."""

    name: str  # canonical label, as it appears in training targets and model answers
    definition: str
    synonyms: tuple[str, ...] = ()  # caption/answer phrases that mean this feature (lower case)
    scale: str = "micro"  # "micro" (SEM scale) or "macro" (visible by eye / stereo microscope)
    rare: bool = False  # rare in the literature: worth manual collection and oversampling
    mechanisms: tuple[str, ...] = field(default=())  # mechanisms this feature points to
    # material classes whose fracture surfaces show it (crazing: polymers; striations: metals; mirror-mist-
    # hackle: glass, ceramics and glassy polymers such as PMMA; fibre pull-out: composites); the sample
    # corpus pairs features with materials by these
    materials: tuple[str, ...] = ("metal",)

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every phrase that names this feature: the canonical name first, then the synonyms."""
        return (self.name, *self.synonyms)


FEATURES: tuple[Feature, ...] = (
    Feature(
        "equiaxed dimples",
        "Cup-like depressions of roughly equal axes formed by microvoid nucleation, growth and "
        "coalescence under tensile overload.",
        ("dimples", "dimple", "dimpled", "microvoid coalescence", "dimple rupture", "dimpled rupture",
         "microvoids", "ductile dimples",
         # spelling variants ("void growth and coalescence" is not one: the mechanism's stages are shown on
         # polished sections as often as on fracture surfaces)
         "microvoid", "micro-voids", "micro-void coalescence", "ductile dimple",
         # German, Spanish, French (Wabenbruch: dimple rupture)
         "waben", "wabenbruch", "hoyuelos", "microcavidades", "cupules"),
        mechanisms=("ductile overload",),
    ),
    Feature(
        "elongated dimples",
        "Parabolic dimples elongated along the shear or tearing direction.",
        ("shear dimples", "parabolic dimples", "tear dimples", "elongated dimple", "shear dimple", "parabolic dimple",
         "elongated microvoids"),
        mechanisms=("ductile overload",),
    ),
    Feature(
        "shear lip",
        "Slanted band at about 45 degrees at the free surfaces of a ductile fracture.",
        ("shear lips", "slant fracture", "shear-lip", "scherlippe", "scherlippen", "labios de corte",
         "lèvres de cisaillement"),
        scale="macro",
        mechanisms=("ductile overload",),
    ),
    Feature(
        "cleavage facets",
        "Flat, highly reflective transgranular facets formed by separation along crystallographic planes.",
        ("cleavage", "transgranular cleavage", "cleavage facet", "cleavage fracture", "cleavage planes",
         "transgranular brittle fracture", "brittle transgranular fracture",
         "spaltbruch", "spaltflächen", "clivaje", "clivage"),
        mechanisms=("brittle overload",),
        materials=("metal", "ceramic"),
    ),
    Feature(
        "river patterns",
        "Converging steps on a cleavage facet that point back toward the local crack origin.",
        ("river pattern", "river lines", "river markings", "river-like patterns", "river marks"),
        mechanisms=("brittle overload",),
        materials=("metal", "ceramic"),
    ),
    Feature(
        "cleavage tongues",
        "Small tongue-shaped features on cleavage facets from local twinning.",
        ("tongues", "cleavage tongue"),
        rare=True,
        mechanisms=("brittle overload",),
    ),
    Feature(
        "chevron marks",
        "V-shaped ridges on a brittle fracture surface pointing back to the origin.",
        ("chevron", "chevrons", "herringbone pattern", "herringbone", "radial marks", "radial lines"),
        scale="macro",
        mechanisms=("brittle overload",),
    ),
    Feature(
        "quasi-cleavage",
        "Small cleavage-like facets joined by tear ridges, typical of tempered martensite and hydrogen.",
        ("quasi cleavage", "quasicleavage"),
        mechanisms=("brittle overload", "hydrogen embrittlement"),
    ),
    Feature(
        "tear ridges",
        "Ridges of local plastic tearing joining facets.",
        ("tear ridge", "tearing ridges", "tearing ridge"),
        mechanisms=("brittle overload",),
    ),
    Feature(
        "intergranular facets",
        "Grain-shaped facets from separation along grain boundaries.",
        ("intergranular fracture", "intergranular", "rock candy", "rock-candy", "grain boundary decohesion",
         "grain-boundary decohesion", "intergranular cracking", "intergranular facet",
         # British/older usage and German/French ("intercrystalline fracture", "interkristalliner Bruch")
         "intercrystalline", "intercrystalline fracture", "grain boundary facets", "grain boundary fracture",
         "interkristallin",
         "interkristalliner bruch", "intergranulaire"),
        mechanisms=("embrittlement", "creep", "intergranular stress corrosion cracking"),
        materials=("metal", "ceramic"),
    ),
    Feature(
        "intergranular dimples",
        "Fine dimples on grain-boundary facets from microvoid coalescence along boundaries.",
        ("intergranular microvoid coalescence", "dimpled grain boundaries"),
        mechanisms=("embrittlement",),
    ),
    Feature(
        "fatigue striations",
        "Fine parallel ridges, one per load cycle, normal to the local crack growth direction.",
        ("striations", "striation", "fatigue striation", "ductile striations", "brittle striations",
         "striation marks", "schwingstreifen", "estrías de fatiga", "estrias de fatiga", "stries de fatigue"),
        mechanisms=("fatigue",),
    ),
    Feature(
        "beach marks",
        "Macroscopic concentric arrest lines of a fatigue crack front.",
        ("beach mark", "beachmarks", "clamshell marks", "clamshell", "arrest lines", "arrest marks",
         "conchoidal marks",
         # ASM Vol. 12: "beach marks ... also called clamshell marks, arrest lines or progression marks"
         "progression marks", "progression lines", "beach lines", "arrest line", "arrest mark", "clam shell marks", "crack arrest marks",
         "rastlinien", "rastlinie", "marcas de playa", "líneas de playa", "lignes d'arrêt", "marques de plage"),
        scale="macro",
        mechanisms=("fatigue",),
        materials=("metal", "polymer", "composite"),
    ),
    Feature(
        "ratchet marks",
        "Steps between adjacent fatigue origins on the surface of a multiple-origin fatigue fracture.",
        ("ratchet mark", "ratchet lines"),
        scale="macro",
        rare=True,
        mechanisms=("fatigue",),
    ),
    Feature(
        "crack initiation site",
        "The origin of the fracture, where the crack started.",
        ("crack origin", "fracture origin", "initiation site", "crack initiation", "origin of the crack",
         "crack nucleation site", "initiation sites",
         "crack origins", "fracture origins", "fatigue origin", "fatigue origins", "origin of fracture",
         "origin of the fracture", "origin of failure", "failure origin", "initiation point", "initiation points",
         "crack nucleation sites",
         # German, Spanish, French
         "bruchausgang", "rissausgang", "origen de la fractura", "origen de la grieta", "site d'amorçage",
         "sites d'amorçage"),
        mechanisms=(),
        materials=MATERIAL_CLASSES,
    ),
    Feature(
        "secondary cracks",
        "Cracks branching off the main fracture plane into the material.",
        ("secondary crack", "secondary cracking", "branched cracks", "crack branching", "microcracks",
         "micro-cracks", "microcrack", "microcracking", "micro-cracking", "sekundärrisse", "grietas secundarias", "fissures secondaires"),
        mechanisms=("intergranular stress corrosion cracking",),
        materials=MATERIAL_CLASSES,
    ),
    Feature(
        "fish-eye",
        "Circular bright zone around a subsurface origin in very-high-cycle fatigue.",
        ("fish eye", "fisheye", "fish-eye pattern", "fish eyes", "fisheyes"),
        rare=True,
        mechanisms=("very-high-cycle fatigue",),
    ),
    Feature(
        "fine granular area",
        "Rough granular zone next to a subsurface origin in very-high-cycle fatigue.",
        ("fga", "optically dark area", "oda", "granular bright facet", "gbf", "fine-granular area"),
        rare=True,
        mechanisms=("very-high-cycle fatigue",),
    ),
    Feature(
        "inclusion at origin",
        "A non-metallic inclusion at the crack origin.",
        ("inclusion", "inclusions", "non-metallic inclusion", "nonmetallic inclusion", "oxide inclusion"),
        mechanisms=("defect-initiated fracture",),
        materials=("metal", "ceramic"),
    ),
    Feature(
        "gas pore",
        "A smooth-walled spherical void from trapped gas.",
        ("gas pores", "porosity", "pores", "pore", "keyhole pore", "keyhole pores", "gas porosity",
         "spherical pores", "spherical pore"),
        mechanisms=("defect-initiated fracture",),
        materials=("metal", "polymer", "ceramic", "composite"),
    ),
    Feature(
        "lack-of-fusion defect",
        "An irregular void with unfused layers or powder from insufficient melting in additive manufacturing.",
        ("lack of fusion", "lack-of-fusion", "lof defect", "lack-of-fusion defects", "lack of fusion defects",
         "lack-of-fusion pores", "unfused regions", "incomplete fusion",
         "lof defects"),
        mechanisms=("defect-initiated fracture",),
    ),
    Feature(
        "unmelted powder particles",
        "Spherical powder particles that did not melt, exposed on the fracture surface.",
        ("unmelted powder", "unmelted particles", "partially melted powder", "unfused powder",
         "unmelted powder particle", "un-melted powder", "un-melted particles", "partially melted particles",
         "unmelted powders", "unmolten powder", "unmolten particles"),
        rare=True,
        mechanisms=("defect-initiated fracture",),
    ),
    Feature(
        "corrosion products",
        "Oxide or corrosion deposits on the fracture surface, often cracked like dried mud.",
        ("mud-crack", "mud crack", "mudcrack", "mud-cracking", "corrosion deposits", "oxide layer",
         "corrosion product"),
        mechanisms=("intergranular stress corrosion cracking",),
    ),
    Feature(
        "creep cavities",
        "Grain-boundary cavities and wedge cracks from creep.",
        ("creep cavity", "wedge cracks", "wedge-type cracks", "grain boundary cavities", "cavitation", "creep voids",
         "wedge crack", "grain boundary cavity"),
        rare=True,
        mechanisms=("creep",),
        materials=("metal", "ceramic"),
    ),
    Feature(
        "mirror-mist-hackle",
        "Smooth mirror, misty and hackled zones around the origin of a glass or ceramic fracture.",
        ("mirror mist hackle", "mirror–mist–hackle", "fracture mirror", "mirror zone", "mist region",
         "wallner lines", "mirror, mist and hackle", "fracture mirrors", "mist zone"),
        rare=True,
        mechanisms=("brittle overload",),
        materials=("ceramic", "polymer"),
    ),
    Feature(
        "fibre pull-out",
        "Fibres pulled out of the matrix of a composite.",
        ("fiber pull-out", "fibre pullout", "fiber pullout", "fiber pull out", "fibre pull out",
         "pulled-out fibres", "pulled-out fibers", "fibre pull-outs", "fiber pull-outs"),
        mechanisms=("composite failure",),
        materials=("composite",),
    ),
    Feature(
        "matrix cracking",
        "Cracking and hackles in the matrix of a fibre composite.",
        ("matrix cracks", "hackles", "matrix hackles", "hackle marks", "matrix crack", "matrix microcracks",
         "matrix microcracking", "matrix micro-cracks"),
        mechanisms=("composite failure",),
        materials=("composite",),
    ),
    Feature(
        "crazing",
        "Fibrillated craze zones on a polymer fracture surface.",
        ("crazes", "craze", "craze zone"),
        rare=True,
        mechanisms=("polymer crazing",),
        materials=("polymer",),
    ),
)

_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

# Abbreviations real papers use for features, matched case-sensitively as whole words ("MVC+TG", "IG
# fracture", "QC-like"). A paper may also introduce its own ("quasi-cleavage (QC)"): labelling/mentions.py
# reads those definitions from the text and lets them override these. TG (transgranular) is read as
# cleavage because papers write it as a fracture mode beside MVC/IG/QC ("brittle TG fracture of ferrite");
# "TG fatigue" or "TGSCC" are other words and do not match.
ABBREVIATIONS: Mapping[str, str] = MappingProxyType({
    "MVC": "equiaxed dimples",  # microvoid coalescence
    "IG": "intergranular facets",  # intergranular fracture
    "TG": "cleavage facets",  # (brittle) transgranular fracture
    "QC": "quasi-cleavage",
    "LOF": "lack-of-fusion defect",
    "LoF": "lack-of-fusion defect",
    "FGA": "fine granular area",
    "ODA": "fine granular area",  # optically dark area
    "GBF": "fine granular area",  # granular bright facet
})


@dataclass(frozen=True)
class SenseExclusion:
    """A context in which a feature's phrase names something else ("cavitation erosion" is no creep cavity).

    A mention of ``feature`` (through one of ``phrases``, or any phrase when empty) is not that feature when
    ``context`` (a case-insensitive regex) matches in the same sentence.
    """

    feature: str
    context: str
    reason: str
    phrases: tuple[str, ...] = ()


SENSE_EXCLUSIONS: tuple[SenseExclusion, ...] = (
    SenseExclusion("creep cavities", r"erosi\w*|erod\w*|bubbles?|ultrasonic|hydrodynamic|sonotrode|slurry|"
                   r"propeller|pump|impeller|pits?\b|pitting",
                   "cavitation erosion (liquid-flow damage), not creep cavitation", ("cavitation",)),
    SenseExclusion("secondary cracks", r"oxide[s]?\s+(?:scale|layer|film)s?|\bscales?\b|coatings?\b|"
                   r"galvani[sz]\w*|zn[- ]?(?:coat\w*|layer)|zinc|\bplating",
                   "cracks in an oxide scale or coating, not secondary cracks of a fracture surface"),
    SenseExclusion("gas pore", r"x-?ray|\b(?:micro-?|µ|u)?ct\b|tomograph\w*|archimedes|densit(?:y|ies)\b|"
                   r"polished|cross[- ]?sections?|m[eé]tallograph\w*",
                   "volume porosity (CT, density, polished section), not a pore on a fracture surface"),
    SenseExclusion("lack-of-fusion defect", r"x-?ray|\b(?:micro-?|µ|u)?ct\b|tomograph\w*|polished|"
                   r"cross[- ]?sections?|m[eé]tallograph\w*",
                   "defects seen in CT or a polished section, not on a fracture surface"),
    SenseExclusion("crack initiation site", r"crack initiation\s+(?:energy|energies|component|life|stage|"
                   r"period|time|cycles?|resistance|toughness|threshold|load)|\bKCVI\b",
                   "crack initiation as a quantity (energy, life, cycles), not a site on the surface"),
    # intergranular corrosion / attack / oxidation is a corrosion morphology seen in sections, and an
    # intergranular crack path in a polished or etched section is no facet of a fracture surface (as for pores)
    SenseExclusion("intergranular facets", r"inter(?:granular|crystalline)\s+(?:corrosion|attack|oxidation|penetration)|"
                   # French word order: "corrosion intergranulaire"
                   r"(?:corrosion|attaque|oxydation|p[eé]n[eé]tration)\s+inter(?:granulaire|cristalline)|"
                   r"\bIGC\b|polished|cross[- ]?sections?|m[eé]tallograph\w*|\betched\b",
                   "intergranular corrosion or a crack path in a section, not facets of a fracture surface",
                   ("intergranular", "intergranular cracking", "intercrystalline", "interkristallin",
                    "intergranulaire")),
    # German "Waben" are dimples on a fracture surface (Wabenbruch) but also the honeycomb core of a sandwich panel
    SenseExclusion("equiaxed dimples", r"sandwich|\bkern\w*|honeycomb|deckschicht\w*|\bcores?\b|bienen",
                   "a honeycomb (sandwich core), not dimples", ("waben",)),
    # hackle is a marking of glass and ceramic fracture (the hackle zone of mirror-mist-hackle, ASM Vol. 12),
    # matrix hackles are a composite's: in a sentence about glass or ceramics "hackles" is no matrix cracking
    SenseExclusion("matrix cracking", r"\bglass(?!\s*[-/]?\s*(?:fib(?:re|er)s?|reinforced|/epoxy))\w*|ceramic\w*|"
                   r"\bmirror|\bmist\b|wallner|porcelain|\bsilica\b|alumina|zirconia",
                   "the hackle of glass and ceramic fracture, not matrix cracking of a composite",
                   ("hackles", "hackle marks")),
    # "Fracture starts from crack initiation and is accompanied by crack propagation": the two stages of the
    # process named in one breath are no site on an image; "the crack initiation and propagation zones" are
    SenseExclusion("crack initiation site", r"crack initiation,?\s+(?:and\s+)?(?:(?:is\s+)?(?:accompanied|followed)"
                   r"\s+by\s+)?(?:crack\s+|subsequent\s+)?(?:propagation|growth)\b(?!\s+(?:regions?|zones?|areas?|"
                   r"sites?))",
                   "crack initiation and propagation as stages of a process, not a site on the surface",
                   ("crack initiation",)),
)

# Features papers name by their parts within one sentence rather than by one phrase: "the mirror ...
# the mist/hackle part", "mirror would better be black, mist ... white" (glass and ceramics). Each entry is
# (feature, regex matching the first part when a second part follows in the same sentence).
CO_MENTIONS: tuple[tuple[str, str], ...] = (
    ("mirror-mist-hackle", r"\bmirrors?\b(?=[^.;:]{0,120}\b(?:mist|hackle)s?\b)"),
)

# Words that make a mention a hedge or a comparison, not an assertion ("possibly striations",
# "dimple-like", "resembling cleavage"): such mentions are recorded as uncertain, never as labels.
HEDGE_CUES: tuple[str, ...] = (
    "possibly", "possible", "probably", "perhaps", "presumably", "apparently", "likely", "maybe",
    "resembling", "resemble", "resembles", "resembled", "reminiscent of", "similar to", "akin to",
    "suggestive of", "appears to", "appear to", "appeared to", "seems to", "seem to", "seemed to",
    "may be", "might be", "could be", "may have", "might have", "could have", "tentatively",
)


def canonical_names() -> list[str]:
    """All canonical labels, in vocabulary order (the order answers are written in)."""
    return [f.name for f in FEATURES]


def rare_names() -> list[str]:
    return [f.name for f in FEATURES if f.rare]


def feature(name: str) -> Feature:
    """The feature with this canonical name; KeyError lists the valid names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; valid: {', '.join(_BY_NAME)}") from None


@lru_cache(maxsize=1)
def phrase_index() -> Mapping[str, str]:
    """Lower-case phrase -> canonical name, for every canonical name and synonym (built once, read-only)."""
    index: dict[str, str] = {}
    for f in FEATURES:
        for phrase in f.phrases:
            key = phrase.lower()
            if key in index and index[key] != f.name:
                raise ValueError(f"phrase {phrase!r} names both {index[key]!r} and {f.name!r}")
            index[key] = f.name
    return MappingProxyType(index)


def canonicalize(label: str) -> str | None:
    """Map a label or synonym (any case, surrounding space) to its canonical name, or None."""
    return phrase_index().get(" ".join(label.lower().replace("_", " ").split()))


def sort_features(names: set[str] | list[str]) -> list[str]:
    """Canonical names in vocabulary order, without duplicates."""
    order = {f.name: i for i, f in enumerate(FEATURES)}
    unknown = [n for n in names if n not in order]
    if unknown:
        raise KeyError(f"unknown feature(s) {unknown}; valid: {', '.join(order)}")
    return sorted(set(names), key=order.__getitem__)


def can_show(feature_name: str, material_class: str) -> bool:
    """Whether a fracture surface of this material class can show the feature."""
    if material_class not in MATERIAL_CLASSES:
        raise KeyError(f"unknown material class {material_class!r}; valid: {', '.join(MATERIAL_CLASSES)}")
    return material_class in feature(feature_name).materials


def mechanism_hints(names: set[str] | list[str]) -> list[str]:
    """Fracture mechanisms suggested by a set of features (DESIGN §4), most specific first."""
    present = set(names)
    hints: list[str] = []
    if {"fish-eye", "fine granular area"} & present:
        hints.append("very-high-cycle fatigue")
    if {"fatigue striations", "beach marks", "ratchet marks"} & present:
        hints.append("fatigue")
    if {"gas pore", "lack-of-fusion defect", "unmelted powder particles", "inclusion at origin"} & present:
        hints.append("defect-initiated fracture")
    if "intergranular facets" in present:
        if "creep cavities" in present:
            hints.append("creep")
        elif "corrosion products" in present or "secondary cracks" in present:
            hints.append("intergranular stress corrosion cracking")
        elif "quasi-cleavage" in present:
            hints.append("hydrogen embrittlement")
        else:
            hints.append("embrittlement")
    if {"cleavage facets", "river patterns", "chevron marks", "cleavage tongues"} & present:
        hints.append("brittle overload")
    if {"equiaxed dimples", "elongated dimples", "shear lip"} & present and "fatigue" not in hints:
        hints.append("ductile overload")
    return hints
