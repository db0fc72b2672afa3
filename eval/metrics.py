"""Scores for the evaluation tasks (DESIGN §5), in plain numpy, with bootstrap intervals.

Inputs are indicator matrices: y_true and y_pred of shape (n images, L labels), True where an image
has / a model named a label, plus per image `off_vocab`: how many names outside the vocabulary the reply
gave (each is a wrong feature: a false positive of no vocabulary column). A parse failure (empty,
invalid or truncated reply) is an all-False row of y_pred: it names no feature, so it costs recall and
leaves precision alone; it is flagged in `unparseable`, its share is reported beside the scores, and the
*strict* figures count each parse failure as one wrong answer (one more false positive). Multiple-choice
answers use the same matrices one-hot (an unparseable answer is an all-False row: wrong for its image,
a false positive for no class).

Definitions, each equal to scikit-learn's on the same arrays (tests/test_eval_metrics.py checks them):

| figure            | definition                                | scikit-learn equivalent                         |
|-------------------|-------------------------------------------|-------------------------------------------------|
| micro_precision   | sum TP / sum predicted   (0/0 -> NaN)     | precision_score(average="micro", zero_division=nan) |
| micro_recall      | sum TP / sum true          (0/0 -> 0)     | recall_score(average="micro", zero_division=0)  |
| micro_f1          | 2 sum TP / (sum predicted + sum true)     | f1_score(average="micro", zero_division=0)      |
| strict_micro_precision | as micro_precision, each parse failure one more wrong prediction | (the same, + one column) |
| strict_micro_f1   | as micro_f1, each parse failure one more wrong prediction |  (the same, + one column)      |
| macro_precision   | mean over labels of TP/predicted          | precision_score(average="macro", zero_division=nan) |
| macro_recall      | mean over labels of TP/true               | recall_score(average="macro", zero_division=nan) |
| macro_f1          | mean over labels of 2TP/(predicted+true)  | f1_score(average="macro", zero_division=nan)    |
| sample_precision  | mean of |P∩T|/|P| over images with |P|>0 | precision_score(average="samples", zero_division=nan) |
| exact_match       | share of images with P == T               | accuracy_score (subset accuracy)                |
| rare_recall       | micro recall over the rare labels' columns | recall_score(y[:, rare], average="micro")      |
| unparseable_share | share of images whose reply was unparseable | —                                             |
| accuracy (MC)     | share of images with the true choice      | accuracy_score                                  |
| balanced_accuracy | mean recall over classes with support     | balanced_accuracy_score (= macro_recall here)   |
| top{k}_accuracy   | true class among the k highest scores     | top_k_accuracy_score (ties: higher index first) |

"Predicted" counts the off-vocabulary names too (in sklearn terms: one extra column per such name,
never true); the macro figures cover the vocabulary's labels only.

Undefined ratios. Precision of a run, or an image, that named nothing is undefined (NaN, shown as
"n/a"), never 0: a parse failure names nothing, it is not a wrong answer in the lenient view. So that
saying nothing cannot pay, recall and F1 count 0/0 as 0, and the strict view counts each parse failure
as a wrong answer (strict precision of a run of parse failures is 0). In the
macro averages a per-label ratio with a zero denominator is undefined (NaN) and left out of that
average, exactly like scikit-learn's zero_division=np.nan: macro precision averages over labels the
model predicted at least once, macro recall over labels present in the truth, macro F1 over labels that
are predicted or present. A label never predicted and never present therefore affects no macro figure;
a label present but never predicted counts 0 in macro recall and macro F1. Rare recall is NaN when the
benchmark (or a bootstrap resample) holds no rare label: there is nothing to recall.

Bootstrap: resample images with replacement (seeded numpy Generator), recompute every figure on each
resample from count sums (one matrix product per resample batch: 100 images x 2000 resamples x 30
labels takes milliseconds), report the 2.5/97.5 percentiles. With n = 100 images and precision near 0.9
the 95 % interval is about ±0.06 wide. The paired bootstrap applies the same resampled images to two
runs and reports the difference A - B with its interval and the share of resamples where A > B.

Usage:
    from eval.metrics import indicator_matrix, multilabel_scores, bootstrap_multilabel
    yt = indicator_matrix(true_sets, labels); yp = indicator_matrix(pred_sets, labels)
    multilabel_scores(yt, yp, unparseable=flags, rare=rare_mask)["micro_precision"]
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

MULTILABEL_FIGURES = ("micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall",
                      "macro_f1", "sample_precision", "exact_match", "rare_recall", "unparseable_share",
                      "strict_micro_precision", "strict_micro_f1")
MULTIPLE_CHOICE_FIGURES = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                           "unparseable_share")
DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval (NaN when undefined)."""

    estimate: float
    low: float
    high: float
    n_resamples: int
    n_defined: int  # resamples where the figure was defined (rare recall may not be)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """Figure(A) - figure(B) on the same images, with a bootstrap interval and P*(A > B)."""

    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    share_a_better: float  # share of resamples where A's figure is strictly higher
    n_images: int
    n_resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LabelScore:
    """Per-label figures (NaN where the denominator is zero) with support (true count) and predicted count."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int

    def to_dict(self) -> dict:
        return asdict(self)


# --- inputs ------------------------------------------------------------------------------------------

def indicator_matrix(sets: Iterable[Iterable[str]], labels: Sequence[str]) -> np.ndarray:
    """Boolean (n, len(labels)) matrix; a label outside `labels` is a KeyError (never silently dropped)."""
    column = {name: j for j, name in enumerate(labels)}
    rows = list(sets)
    out = np.zeros((len(rows), len(labels)), dtype=bool)
    for i, row in enumerate(rows):
        for name in row:
            if name not in column:
                raise KeyError(f"label {name!r} (row {i}) is not one of the task's labels: {', '.join(labels)}")
            out[i, column[name]] = True
    return out


def one_hot(indices: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Boolean (n, n_classes) one-hot rows; index -1 (no answer) gives an all-False row."""
    idx = np.asarray(indices, dtype=int)
    if idx.size and (idx.min() < -1 or idx.max() >= n_classes):
        raise ValueError(f"class indices must lie in -1..{n_classes - 1}")
    out = np.zeros((idx.size, n_classes), dtype=bool)
    rows = np.flatnonzero(idx >= 0)
    out[rows, idx[rows]] = True
    return out


def _check(y_true: np.ndarray, y_pred: np.ndarray, unparseable, rare, off_vocab=None) -> tuple[np.ndarray, ...]:
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal (n, labels) matrices")
    n, n_labels = y_true.shape
    unp = np.zeros(n, bool) if unparseable is None else np.asarray(unparseable, dtype=bool)
    rare_mask = np.zeros(n_labels, bool) if rare is None else np.asarray(rare, dtype=bool)
    if unp.shape != (n,) or rare_mask.shape != (n_labels,):
        raise ValueError("unparseable must have one flag per image and rare one flag per label")
    extra = np.zeros(n, float) if off_vocab is None else np.asarray(off_vocab, dtype=float)
    if extra.shape != (n,) or (extra < 0).any():
        raise ValueError("off_vocab must be one non-negative count per image")
    if (y_pred[unp]).any() or (extra[unp] > 0).any():
        raise ValueError("an unparseable reply must be scored as an empty answer (all-False y_pred row)")
    return y_true, y_pred, unp, rare_mask, extra


# --- the arithmetic, shared by point estimates and resamples ----------------------------------------

def _ratio(num: np.ndarray, den: np.ndarray, undefined: float) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    out = np.full(np.broadcast(num, den).shape, undefined, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row is NaN: nothing to average
        return np.nanmean(x, axis=-1)


def _per_image(y_true: np.ndarray, y_pred: np.ndarray, unp: np.ndarray, rare: np.ndarray,
               extra: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-image quantities whose (weighted) sums determine every figure (extra: off-vocabulary names)."""
    tp = (y_true & y_pred).astype(float)
    pred, true = y_pred.astype(float), y_true.astype(float)
    extra = np.zeros(y_true.shape[0]) if extra is None else extra
    n_pred = pred.sum(1) + extra
    return {
        "tp": tp, "pred": pred, "true": true,  # (n, L)
        "extra": extra,
        "sample_precision": _ratio(tp.sum(1), n_pred, 0.0), "said": (n_pred > 0).astype(float),
        "exact": ((y_true == y_pred).all(1) & (extra == 0)).astype(float),
        "unparseable": unp.astype(float),
        "rare_tp": tp[:, rare].sum(1), "rare_true": true[:, rare].sum(1),
    }


def _figures(weights: np.ndarray, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every multilabel figure from image weights (n,) for the point estimate or (B, n) for resamples."""
    n_images = weights.sum(-1)
    tp, pred, true = weights @ parts["tp"], weights @ parts["pred"], weights @ parts["true"]  # (..., L)
    unp = weights @ parts["unparseable"]
    stp, spred, strue = tp.sum(-1), pred.sum(-1) + weights @ parts["extra"], true.sum(-1)
    return {
        "micro_precision": _ratio(stp, spred, np.nan),
        "micro_recall": _ratio(stp, strue, 0.0),
        "micro_f1": _ratio(2 * stp, spred + strue, 0.0),
        "strict_micro_precision": _ratio(stp, spred + unp, np.nan),
        "strict_micro_f1": _ratio(2 * stp, spred + unp + strue, 0.0),
        "macro_precision": _nanmean(_ratio(tp, pred, np.nan)),
        "macro_recall": _nanmean(_ratio(tp, true, np.nan)),
        "macro_f1": _nanmean(_ratio(2 * tp, pred + true, np.nan)),
        "sample_precision": _ratio(weights @ parts["sample_precision"], weights @ parts["said"], np.nan),
        "exact_match": _ratio(weights @ parts["exact"], n_images, 0.0),
        "rare_recall": _ratio(weights @ parts["rare_tp"], weights @ parts["rare_true"], np.nan),
        "unparseable_share": _ratio(unp, n_images, 0.0),
    }


def resample_weights(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) counts: how often each image is drawn in each resample (with replacement)."""
    if n < 1:
        raise ValueError("bootstrap needs at least one image")
    if n_resamples < 1:
        raise ValueError("n_resamples must be positive")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    flat = (draws + np.arange(n_resamples)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def _interval(estimate: float, samples: np.ndarray, confidence: float) -> Interval:
    defined = samples[~np.isnan(samples)]
    alpha = (1 - confidence) / 2 * 100
    if defined.size == 0:
        low = high = float("nan")
    else:
        low, high = (float(v) for v in np.percentile(defined, [alpha, 100 - alpha]))
    return Interval(float(estimate), low, high, int(samples.size), int(defined.size))


# --- multilabel --------------------------------------------------------------------------------------

def multilabel_scores(y_true, y_pred, unparseable=None, rare=None, off_vocab=None) -> dict[str, float]:
    """Point estimates of every multilabel figure (see the module docstring for definitions)."""
    y_true, y_pred, unp, rare_mask, extra = _check(y_true, y_pred, unparseable, rare, off_vocab)
    if y_true.shape[0] == 0:
        raise ValueError("no images to score")
    parts = _per_image(y_true, y_pred, unp, rare_mask, extra)
    return {k: float(v) for k, v in _figures(np.ones(y_true.shape[0]), parts).items()}


def per_label_scores(y_true, y_pred, labels: Sequence[str]) -> list[LabelScore]:
    """Per-label precision/recall/F1 (NaN where undefined, as sklearn's average=None with zero_division=np.nan)."""
    y_true, y_pred, _, _, _ = _check(y_true, y_pred, None, None)
    if len(labels) != y_true.shape[1]:
        raise ValueError("one label name per column expected")
    tp = (y_true & y_pred).sum(0)
    pred, true = y_pred.sum(0), y_true.sum(0)
    p, r, f = _ratio(tp, pred, np.nan), _ratio(tp, true, np.nan), _ratio(2 * tp, pred + true, np.nan)
    return [LabelScore(name, float(p[j]), float(r[j]), float(f[j]), int(true[j]), int(pred[j]))
            for j, name in enumerate(labels)]


def bootstrap_multilabel(y_true, y_pred, unparseable=None, rare=None, n_resamples: int = DEFAULT_RESAMPLES,
                         seed: int = 0, confidence: float = CONFIDENCE, off_vocab=None) -> dict[str, Interval]:
    """Every multilabel figure with its bootstrap interval (images resampled with replacement, seeded)."""
    y_true, y_pred, unp, rare_mask, extra = _check(y_true, y_pred, unparseable, rare, off_vocab)
    parts = _per_image(y_true, y_pred, unp, rare_mask, extra)
    point = _figures(np.ones(y_true.shape[0]), parts)
    boot = _figures(resample_weights(y_true.shape[0], n_resamples, seed), parts)
    return {k: _interval(point[k], boot[k], confidence) for k in point}


def paired_bootstrap(y_true, pred_a, pred_b, unparseable_a=None, unparseable_b=None, rare=None,
                     metrics: Sequence[str] = ("micro_precision", "micro_f1"),
                     n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE,
                     off_vocab_a=None, off_vocab_b=None) -> dict[str, PairedDifference]:
    """Figure(A) - figure(B) for two runs on the same images (rows aligned), resampling images jointly."""
    y_true, pred_a, unp_a, rare_mask, extra_a = _check(y_true, pred_a, unparseable_a, rare, off_vocab_a)
    _, pred_b, unp_b, _, extra_b = _check(y_true, pred_b, unparseable_b, rare, off_vocab_b)
    n = y_true.shape[0]
    weights = resample_weights(n, n_resamples, seed)
    parts_a = _per_image(y_true, pred_a, unp_a, rare_mask, extra_a)
    parts_b = _per_image(y_true, pred_b, unp_b, rare_mask, extra_b)
    point_a, point_b = _figures(np.ones(n), parts_a), _figures(np.ones(n), parts_b)
    boot_a, boot_b = _figures(weights, parts_a), _figures(weights, parts_b)
    out: dict[str, PairedDifference] = {}
    for m in metrics:
        diff = boot_a[m] - boot_b[m]
        iv = _interval(float(point_a[m] - point_b[m]), diff, confidence)
        defined = ~np.isnan(diff)
        better = float((boot_a[m][defined] > boot_b[m][defined]).mean()) if defined.any() else float("nan")
        out[m] = PairedDifference(m, float(point_a[m]), float(point_b[m]), iv.estimate, iv.low, iv.high,
                                  better, n, n_resamples)
    return out


def sample_scores(true: Iterable[str], predicted: Iterable[str], off_vocab: int = 0) -> dict[str, float | int | bool]:
    """One image's scores for the per-sample log; off_vocab names are false positives; precision of an
    answer naming nothing is None (undefined, as in the metrics), never 0."""
    t, p = set(true), set(predicted)
    tp, n_pred = len(t & p), len(p) + off_vocab
    return {"tp": tp, "fp": len(p - t) + off_vocab, "fn": len(t - p),
            "precision": tp / n_pred if n_pred else None, "recall": tp / len(t) if t else 0.0,
            "f1": 2 * tp / (n_pred + len(t)) if (n_pred or t) else 0.0, "exact": t == p and not off_vocab}


# --- multiple choice ---------------------------------------------------------------------------------

# One-hot rows turn the multilabel figures into the multiple-choice ones: a correct answer is the only
# case where the predicted row equals the true row (accuracy = exact match), and balanced accuracy is the
# mean recall over classes with support (= macro recall with undefined classes left out, like sklearn).
MULTIPLE_CHOICE_FROM_MULTILABEL = {
    "accuracy": "exact_match", "balanced_accuracy": "macro_recall", "macro_precision": "macro_precision",
    "macro_recall": "macro_recall", "macro_f1": "macro_f1", "unparseable_share": "unparseable_share",
}


def _mc_figures(weights: np.ndarray, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    figs = _figures(weights, parts)
    return {mc: figs[ml] for mc, ml in MULTIPLE_CHOICE_FROM_MULTILABEL.items()}


def _mc_parts(y_true, y_pred, n_classes: int, unparseable) -> dict[str, np.ndarray]:
    t, p = one_hot(y_true, n_classes), one_hot(y_pred, n_classes)
    if (t.sum(1) != 1).any():
        raise ValueError("every image needs a true class (0..n_classes-1)")
    unp = np.asarray(y_pred) < 0 if unparseable is None else np.asarray(unparseable, bool)
    _, _, unp, rare_mask, _ = _check(t, p, unp, None)
    return _per_image(t, p, unp, rare_mask)


def top_k_accuracy(y_true, scores, k: int) -> float:
    """Share of images whose true class is among the k highest scores (ties: higher class index first, as sklearn)."""
    scores = np.asarray(scores, float)
    order = np.argsort(scores, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return float((order == np.asarray(y_true)[:, None]).any(1).mean())


def multiple_choice_scores(y_true, y_pred, n_classes: int, unparseable=None, scores=None) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro P/R/F1, unparseable share; top-1/top-2 when ranked scores are given.

    y_true: class index per image; y_pred: class index or -1 for no (unparseable) answer;
    scores: optional (n, n_classes) choice scores (e.g. an embedding baseline's similarities).
    """
    parts = _mc_parts(y_true, y_pred, n_classes, unparseable)
    out = {k: float(v) for k, v in _mc_figures(np.ones(len(y_true)), parts).items()}
    if scores is not None:
        out["top1_accuracy"] = top_k_accuracy(y_true, scores, 1)
        out["top2_accuracy"] = top_k_accuracy(y_true, scores, 2)
    return out


def bootstrap_multiple_choice(y_true, y_pred, n_classes: int, unparseable=None,
                              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                              confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """Every multiple-choice figure with its bootstrap interval."""
    parts = _mc_parts(y_true, y_pred, n_classes, unparseable)
    n = len(y_true)
    point = _mc_figures(np.ones(n), parts)
    boot = _mc_figures(resample_weights(n, n_resamples, seed), parts)
    return {k: _interval(point[k], boot[k], confidence) for k in point}
