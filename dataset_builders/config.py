"""The builder's settings: one typed record, the single place where defaults live.

`python -m dataset_builders.build --help` is generated from these fields (their descriptions and
defaults), so the CLI and the code cannot disagree.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fracto_core.image_budget import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS

DEFAULT_OUT = Path("output/sample_build")


def default_workers() -> int:
    """the machine's CPUs, at most 8"""
    return max(1, min(os.cpu_count() or 1, 8))


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    papers: Path | None = Field(None, description="folder of PDFs (searched recursively); default: generate the "
                                                  "built-in sample corpus into OUT/sample_corpus")
    out: Path = Field(DEFAULT_OUT, description="output folder: stages/, dataset/ and the build report")
    manual: Path | None = Field(None, description="manual rare-feature collection: a folder with images and "
                                                  "manual.csv (file,features,source,notes); default with the "
                                                  "sample corpus: its built-in manual set")
    labeler: str = Field("caption_rules", description="who labels the panels: caption_rules (offline), or an "
                                                      "LLM through the openai SDK: openai, gemini (Google's "
                                                      "OpenAI-compatible endpoint), vllm (any OpenAI-compatible "
                                                      "server, with --base-url)")
    workers: int = Field(default_factory=default_workers, ge=1,
                         description="worker processes for the PDF checks, mine, panels, filter, the caption-rule "
                                     "labels and augment, and a second process for the export's card (they exit "
                                     "with the build)")
    seed: int = Field(0, description="seed for splits, augmentation and the sample corpus")
    n_sample_papers: int = Field(24, ge=1, description="papers in the generated sample corpus")

    # mine
    render_dpi: int = Field(150, ge=36, le=600, description="DPI for rendering vector figures from their page region")
    min_figure_px: int = Field(96, ge=1, description="embedded images smaller than this (either side, pixels) are "
                                                     "skipped as icons/logos")
    max_image_pixels: int = Field(60_000_000, ge=1, description="an embedded image declaring more pixels than "
                                                                "this is refused as a decompression bomb; a figure "
                                                                "rendered from its page is rendered to fit in it")
    excerpt_chars: int = Field(400, ge=80, description="length bound of a body-text excerpt citing a figure")
    ocr: Literal["auto", "off"] = Field("auto", description="scanned pages without a text layer (most pages one "
                                                            "image, no text): auto = OCR them with Tesseract "
                                                            "where installed (else reported), off = never")

    # filter / dedup
    filter_min_score: float = Field(1.0, description="keep a panel whose fracture-evidence score is at least this")
    dedup_max_distance: int = Field(6, ge=0, le=64, description="perceptual-hash Hamming distance at or below "
                                                                 "which two images are the same")
    exclude_benchmark: Path | None = Field(None, description="folder of benchmark images to exclude from every split "
                                                             "(matched by perceptual hash)")

    # label (LLM labellers; keys come from the environment: OPENAI_API_KEY, GEMINI_API_KEY/GOOGLE_API_KEY,
    # VLLM_API_KEY (optional); they are never written anywhere)
    label_model: str | None = Field(None, description="model for --labeler openai/gemini/vllm, e.g. gpt-5.2, "
                                                      "gemini-2.5-pro, or the vLLM --served-model-name")
    reasoning_effort: str | None = Field(None, description="reasoning models only (gpt-5*, o*, gemini-2.5+): "
                                                           "minimal|low|medium|high; default: the model's own")
    base_url: str | None = Field(None, description="OpenAI-compatible server for --labeler vllm, e.g. "
                                                   "http://host:8000/v1 (also overrides the openai/gemini URL)")
    concurrency: int = Field(8, ge=1, le=256, description="LLM requests in flight at once")
    max_cost: float | None = Field(None, gt=0, description="budget cap in USD for this label run: stops cleanly "
                                                           "before exceeding it (re-run later to continue)")
    label_max_pixels: int | None = Field(None, ge=1024, description="pixel budget of the images sent to the "
                                                                    "labelling model; default: --image-max-pixels")
    label_max_tokens: int = Field(8192, ge=16, description="max output tokens per reply (reasoning models: "
                                                           "reasoning tokens included)")
    label_temperature: float = Field(0.0, ge=0, le=2, description="non-reasoning models; only temperature 0 "
                                                                  "replies are cached")
    label_timeout: float = Field(180.0, gt=0, description="seconds per LLM request attempt")
    label_max_attempts: int = Field(5, ge=1, description="attempts per request (429/5xx/timeouts retried with "
                                                         "exponential backoff and jitter)")
    label_min_confidence: float = Field(0.5, ge=0, le=1, description="features the model gives a lower "
                                                                     "confidence are left out")
    dry_run: bool = Field(False, description="count the LLM requests, input image tokens and estimated cost; "
                                             "send nothing (the build stops after this estimate)")

    # split
    val_ratio: float = Field(0.1, ge=0, lt=1, description="share of the items in val (about: whole source-paper "
                                                          "groups move)")
    test_ratio: float = Field(0.1, ge=0, lt=1, description="share of the items in test (about: whole source-paper "
                                                           "groups move)")
    # held-out pool for the expert benchmark (dataset_builders.holdout): set aside before the split
    holdout_share: float = Field(0.0, ge=0, le=1, description="seeded share of the mined papers set aside as the "
                                                              "held-out benchmark pool (never in train/val/test)")
    holdout_list: Path | None = Field(None, description="file naming held-out papers, one a line: DOI, PDF file "
                                                        "name or paper id (the benchmark pool)")
    holdout_build: Path | None = Field(None, description="another build's pool (a separate folder of PDFs built "
                                                         "with --holdout-share 1): its papers and near-duplicates "
                                                         "of its images are kept out of this build")
    min_split_papers: int = Field(0, ge=0, description="at least this many source papers in val and in test "
                                                       "(groups moved from train, smallest first, features "
                                                       "still covered by train where possible); with few papers "
                                                       "the ratios alone can leave val/test empty")

    # augment
    rotations: list[int] = Field([90, 180, 270], description="lossless rotations added for every train image")
    arbitrary_rotations: int = Field(0, ge=0, description="extra rotations by random angles per train image, "
                                                          "cropped to the largest rectangle without empty corners")
    oversample_rare: int = Field(1, ge=0, description="extra copies (new random angle each) of every train image "
                                                      "that shows a rare feature")

    # export
    image_max_pixels: int = Field(IMAGE_MAX_PIXELS, ge=1024, description="pixel budget per image, as LlamaFactory's "
                                                                 "image_max_pixels (same for training, serving, eval)")
    image_min_pixels: int = Field(IMAGE_MIN_PIXELS, ge=1, description="as LlamaFactory's image_min_pixels")
    cutoff_len: int = Field(2048, ge=64, description="as LlamaFactory's cutoff_len; every sample's image tokens + "
                                                     "text must fit")
    dataset_name: str = Field("fracto", description="prefix of the dataset names in dataset_info.json")
    variants: bool = Field(True, description="also emit the ablation variants (no manual images, no rotations)")

    # qa (issue 15; a stage after export, run only with --qa; dataset_builders.qa)
    qa: bool = Field(False, description="also write the question-answer dataset <name>_qa_{train,val,test} from "
                                        "captions and citing excerpts (stage qa, after export)")
    qa_generator: str | None = Field(None, description="who writes the Q&A pairs: templates (offline), openai, "
                                                       "gemini, vllm (with --label-model, --base-url); default: "
                                                       "the --labeler if it is an LLM, else templates")

    @model_validator(mode="after")
    def _check(self) -> "BuildConfig":
        if self.val_ratio + self.test_ratio >= 1:
            raise ValueError("val_ratio + test_ratio must be below 1")
        bad = [r for r in self.rotations if r not in (90, 180, 270)]
        if bad:
            raise ValueError(f"rotations must be among 90, 180, 270 (got {bad}); use --arbitrary-rotations for others")
        if self.image_min_pixels > self.image_max_pixels:
            raise ValueError("image_min_pixels must not exceed image_max_pixels")
        return self


# --- command line: one flag per field -----------------------------------------------------------

def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, names: typing.Iterable[str] | None = None,
                         suppress_defaults: bool = False) -> None:
    """One flag per BuildConfig field (all, or ``names``), help and default from the field.

    suppress_defaults: flags not given stay absent from the namespace (the label CLI layers the given
    ones over a stored build_config.json); the help still shows the built-in default.
    """
    for name in names or BuildConfig.model_fields:
        field = BuildConfig.model_fields[name]
        default = field.get_default(call_default_factory=True)
        ann = field.annotation
        args = typing.get_args(ann)
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS if suppress_defaults else default,
                        "help": field.description + (f" (default: {default})" if suppress_defaults else "")}
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(ann) is typing.Literal:
            kwargs.update(type=type(args[0]), choices=args)
        elif typing.get_origin(ann) is list:
            kwargs.update(nargs="*", type=args[0], metavar="N")
        elif isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
            inner = next(a for a in args if a is not type(None))
            kwargs.update(type=inner, metavar={Path: "DIR", str: "NAME"}.get(inner, inner.__name__.upper()))
        else:
            kwargs["type"] = ann
        parser.add_argument(flag_name(name), **kwargs)


# --- documentation: the options table of docs/builder_options.md ---------------------------------

def _doc_default(action: argparse.Action) -> str:
    field = BuildConfig.model_fields.get(action.dest)
    if field is not None and field.default_factory is not None:  # machine-dependent: say how it is chosen
        return (field.default_factory.__doc__ or "").strip().splitlines()[0]
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS:  # not "in": 0 == False
        return "off" if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)) else ""
    if default is True:
        return "on (`--no-" + action.dest.replace("_", "-") + "`: off)"
    return " ".join(map(str, default)) if isinstance(default, list) else str(default)


def options_markdown(parser: argparse.ArgumentParser) -> str:
    """The builder's options as a markdown table, one row per flag, from the parser itself (default and
    help), so docs/builder_options.md cannot drift from the code (tests/test_docs.py compares them)."""
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for action in parser._actions:  # argparse keeps no public list of its actions
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        text = " ".join((action.help or "").split()).replace("|", "\\|").replace("<", "\\<")
        if action.choices:
            text += " (one of: " + ", ".join(map(str, action.choices)) + ")"
        rows.append(f"| `{flag}` | {_doc_default(action).replace('|', chr(92) + '|')} | {text} |")
    return "\n".join(rows) + "\n"
