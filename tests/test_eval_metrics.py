"""eval.metrics: every figure against scikit-learn on the same arrays, hand-computed cases, edge cases, bootstrap."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from eval.metrics import (
    bootstrap_multilabel,
    bootstrap_multiple_choice,
    indicator_matrix,
    multilabel_scores,
    multiple_choice_scores,
    one_hot,
    paired_bootstrap,
    per_label_scores,
    resample_weights,
    sample_scores,
)


def random_case(seed: int, n: int = 100, n_labels: int = 28, unparseable_rate: float = 0.1):
    """Sparse true sets, a noisy model, some unparseable replies (empty rows), rare columns."""
    rng = np.random.default_rng(seed)
    y_true = rng.random((n, n_labels)) < rng.uniform(0.02, 0.25, n_labels)
    y_pred = (y_true & (rng.random((n, n_labels)) < 0.7)) | (rng.random((n, n_labels)) < 0.04)
    y_pred[:, -1] = False  # a label never predicted
    y_true[:, -2] = False  # a label never present (may still be predicted)
    y_true[:, -3] = False
    y_pred[:, -3] = False  # a label neither present nor predicted
    unp = rng.random(n) < unparseable_rate
    y_pred[unp] = False
    rare = np.zeros(n_labels, bool)
    rare[[0, 5, 13, 16, 21]] = True
    return y_true, y_pred, unp, rare


def sklearn_figures(y_true, y_pred, unp, rare, off_vocab=None) -> dict[str, float]:
    """sklearn on the same arrays; off-vocabulary names become extra never-true columns (micro, samples, exact),
    and the strict figures one more such column per parse failure."""
    nan = np.nan
    n = len(y_true)
    width = int(max(off_vocab)) if off_vocab is not None and len(off_vocab) and max(off_vocab) else 0
    extra = np.zeros((n, width), bool)
    for i, k in enumerate(off_vocab if off_vocab is not None else np.zeros(n)):
        extra[i, :int(k)] = True
    yt_x, yp_x = np.hstack([y_true, np.zeros_like(extra)]), np.hstack([y_pred, extra])
    yt_s, yp_s = np.hstack([yt_x, np.zeros((n, 1), bool)]), np.hstack([yp_x, np.asarray(unp, bool)[:, None]])
    return {
        "micro_precision": precision_score(yt_x, yp_x, average="micro", zero_division=nan),
        "strict_micro_precision": precision_score(yt_s, yp_s, average="micro", zero_division=nan),
        "strict_micro_f1": f1_score(yt_s, yp_s, average="micro", zero_division=0),
        "micro_recall": recall_score(yt_x, yp_x, average="micro", zero_division=0),
        "micro_f1": f1_score(yt_x, yp_x, average="micro", zero_division=0),
        "macro_precision": precision_score(y_true, y_pred, average="macro", zero_division=nan),
        "macro_recall": recall_score(y_true, y_pred, average="macro", zero_division=nan),
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=nan),
        "sample_precision": precision_score(yt_x, yp_x, average="samples", zero_division=nan),
        "exact_match": accuracy_score(yt_x, yp_x),
        "rare_recall": recall_score(y_true[:, rare], y_pred[:, rare], average="micro", zero_division=nan),
        "unparseable_share": float(unp.mean()),
    }


def assert_figures_equal(ours: dict, theirs: dict) -> None:
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_multilabel_figures_equal_sklearn(seed):
    y_true, y_pred, unp, rare = random_case(seed)
    assert_figures_equal(multilabel_scores(y_true, y_pred, unp, rare), sklearn_figures(y_true, y_pred, unp, rare))
    # names outside the vocabulary: each one a false positive (0-3 per parseable reply)
    off_vocab = np.random.default_rng(seed).integers(0, 4, len(y_true)) * (np.random.default_rng(seed + 9)
                                                                           .random(len(y_true)) < 0.2)
    off_vocab[unp] = 0
    ours = multilabel_scores(y_true, y_pred, unp, rare, off_vocab=off_vocab)
    assert off_vocab.sum() > 0 and ours["micro_precision"] < multilabel_scores(y_true, y_pred, unp, rare)[
        "micro_precision"]
    assert_figures_equal(ours, sklearn_figures(y_true, y_pred, unp, rare, off_vocab))


def test_per_label_scores_equal_sklearn_average_none():
    y_true, y_pred, _, _ = random_case(5)
    labels = [f"f{j}" for j in range(y_true.shape[1])]
    ours = per_label_scores(y_true, y_pred, labels)
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=np.nan)
    np.testing.assert_allclose([s.precision for s in ours], p, equal_nan=True)
    np.testing.assert_allclose([s.recall for s in ours], r, equal_nan=True)
    np.testing.assert_allclose([s.f1 for s in ours], f, equal_nan=True)
    assert [s.support for s in ours] == support.tolist()
    assert [s.predicted for s in ours] == y_pred.sum(0).tolist()
    # the never-predicted, never-present label is undefined everywhere; never-present has recall n/a
    assert np.isnan(ours[-3].precision) and np.isnan(ours[-3].recall) and np.isnan(ours[-3].f1)
    assert np.isnan(ours[-2].recall)


def test_hand_computed_tiny_case():
    labels = ["dimples", "striations", "cleavage", "fish-eye"]
    true = [{"dimples", "striations"}, {"cleavage"}, {"fish-eye"}, {"dimples"}]
    pred = [{"dimples"}, {"cleavage", "striations"}, set(), {"dimples"}]  # image 3: unparseable -> empty
    yt, yp = indicator_matrix(true, labels), indicator_matrix(pred, labels)
    unp = np.array([False, False, True, False])
    rare = np.array([False, False, False, True])
    s = multilabel_scores(yt, yp, unp, rare)
    # TP = 1 + 1 + 0 + 1 = 3, predicted = 1 + 2 + 0 + 1 = 4, true = 2 + 1 + 1 + 1 = 5
    assert s["micro_precision"] == pytest.approx(3 / 4)
    assert s["micro_recall"] == pytest.approx(3 / 5)
    assert s["micro_f1"] == pytest.approx(2 * 3 / (4 + 5))
    # per label P: dimples 2/2, striations 0/1, cleavage 1/1, fish-eye undefined -> mean(1, 0, 1)
    assert s["macro_precision"] == pytest.approx(2 / 3)
    # per label R: dimples 2/2, striations 0/1, cleavage 1/1, fish-eye 0/1 -> 2/4
    assert s["macro_recall"] == pytest.approx(0.5)
    # per label F1: 1, 0, 1, 0
    assert s["macro_f1"] == pytest.approx(0.5)
    # per image precision: 1, 1/2, n/a (named nothing: left out), 1
    assert s["sample_precision"] == pytest.approx(2.5 / 3)
    # strict: the parse failure is one more wrong prediction: 3 / 5, F1 6 / (5 + 5)
    assert s["strict_micro_precision"] == pytest.approx(3 / 5) and s["strict_micro_f1"] == pytest.approx(0.6)
    assert s["exact_match"] == pytest.approx(1 / 4)
    assert s["rare_recall"] == pytest.approx(0.0)
    assert s["unparseable_share"] == pytest.approx(0.25)
    assert sample_scores(true[1], pred[1]) == {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0,
                                               "f1": pytest.approx(2 / 3), "exact": False}
    assert sample_scores(true[2], pred[2])["precision"] is None  # named nothing: undefined, never 0
    # two off-vocabulary names: false positives of the image
    assert sample_scores(true[0], pred[0], off_vocab=2) == {"tp": 1, "fp": 2, "fn": 1, "precision": pytest.approx(1 / 3),
                                                           "recall": 0.5, "f1": pytest.approx(2 / 5), "exact": False}
    with_names = multilabel_scores(yt, yp, unp, rare, off_vocab=np.array([0, 0, 0, 2]))  # image 3 was exact
    assert with_names["micro_precision"] == pytest.approx(3 / 6) and with_names["exact_match"] == 0.0


def test_no_predictions_at_all():
    y_true, _, _, rare = random_case(7)
    y_pred = np.zeros_like(y_true)
    s = multilabel_scores(y_true, y_pred, None, rare)
    assert np.isnan(s["micro_precision"])  # named nothing: precision undefined ("n/a"), never 0
    assert s["micro_recall"] == 0.0 and s["micro_f1"] == 0.0
    assert np.isnan(s["macro_precision"])  # no label predicted: nothing to average
    assert s["macro_recall"] == 0.0 and s["macro_f1"] == 0.0 and np.isnan(s["sample_precision"])
    assert_figures_equal(s, sklearn_figures(y_true, y_pred, np.zeros(len(y_true), bool), rare))


def test_all_unparseable():
    y_true, _, _, rare = random_case(8)
    unp = np.ones(len(y_true), bool)
    s = multilabel_scores(y_true, np.zeros_like(y_true), unp, rare)
    assert s["unparseable_share"] == 1.0 and np.isnan(s["micro_precision"]) and s["micro_recall"] == 0.0
    assert s["strict_micro_precision"] == 0.0 and s["strict_micro_f1"] == 0.0  # strict: all wrong
    iv = bootstrap_multilabel(y_true, np.zeros_like(y_true), unp, rare, n_resamples=1000)
    assert iv["unparseable_share"].low == iv["unparseable_share"].high == 1.0


def test_unparseable_rows_must_be_empty():
    y_true, y_pred, _, _ = random_case(9, unparseable_rate=0.0)
    row = int(np.flatnonzero(y_pred.any(1))[0])
    unp = np.zeros(len(y_true), bool)
    unp[row] = True
    with pytest.raises(ValueError, match="empty answer"):
        multilabel_scores(y_true, y_pred, unp)


def test_feature_never_present_nor_predicted_does_not_move_macro():
    y_true, y_pred, unp, rare = random_case(10)
    extra = np.zeros((len(y_true), 1), bool)
    a = multilabel_scores(y_true, y_pred, unp, rare)
    b = multilabel_scores(np.hstack([y_true, extra]), np.hstack([y_pred, extra]), unp, np.append(rare, True))
    for key in ("macro_precision", "macro_recall", "macro_f1", "micro_precision", "rare_recall"):
        assert a[key] == pytest.approx(b[key]), key


def test_rare_recall_undefined_without_rare_support():
    y_true, y_pred, unp, _ = random_case(11)
    rare = np.zeros(y_true.shape[1], bool)
    rare[-2] = True  # never present
    assert np.isnan(multilabel_scores(y_true, y_pred, unp, rare)["rare_recall"])


def test_indicator_matrix_rejects_unknown_labels():
    with pytest.raises(KeyError, match="not one of"):
        indicator_matrix([{"dimples", "unicorn marks"}], ["dimples"])


def test_resample_weights_are_resampling_with_replacement():
    w = resample_weights(50, 1000, seed=4)
    assert w.shape == (1000, 50) and (w.sum(1) == 50).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, resample_weights(50, 1000, seed=4))
    assert not np.array_equal(w, resample_weights(50, 1000, seed=5))
    # each image is drawn on average once per resample; ~36.6 % of images are left out of each resample
    assert w.mean() == pytest.approx(1.0)
    assert (w == 0).mean() == pytest.approx((1 - 1 / 50) ** 50, abs=0.01)


def test_bootstrap_resamples_equal_recomputation_on_resampled_images():
    """Each resample's figure equals sklearn's on the resampled images (checked via the percentiles)."""
    y_true, y_pred, unp, rare = random_case(12, n=60)
    n_resamples, seed = 200, 3  # few resamples: sklearn in a loop is slow, and the arithmetic is the same
    weights = resample_weights(len(y_true), n_resamples, seed).astype(int)
    naive = {"micro_precision": [], "macro_f1": [], "sample_precision": []}
    for row in weights:
        idx = np.repeat(np.arange(len(y_true)), row)
        naive["micro_precision"].append(precision_score(y_true[idx], y_pred[idx], average="micro",
                                                        zero_division=np.nan))
        naive["macro_f1"].append(f1_score(y_true[idx], y_pred[idx], average="macro", zero_division=np.nan))
        naive["sample_precision"].append(precision_score(y_true[idx], y_pred[idx], average="samples",
                                                         zero_division=np.nan))
    ours = bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=n_resamples, seed=seed)
    for key, values in naive.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert ours[key].low == pytest.approx(low) and ours[key].high == pytest.approx(high), key
        assert ours[key].estimate == pytest.approx(multilabel_scores(y_true, y_pred, unp, rare)[key])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    y_true, y_pred, unp, rare = random_case(13)
    a = bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=1000, seed=1)
    b = bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=1000, seed=1)
    c = bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=1000, seed=2)
    assert a == b
    assert a["micro_precision"].low != c["micro_precision"].low
    for key, iv in a.items():
        if key != "unparseable_share" or iv.high > iv.low:
            assert iv.low <= iv.estimate <= iv.high, key
        assert iv.n_resamples == 1000


def test_bootstrap_is_fast():
    """100 images x 2000 resamples x 30 labels: well under a second."""
    y_true, y_pred, unp, rare = random_case(14, n=100, n_labels=30)
    start = time.perf_counter()
    bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=2000, seed=0)
    assert time.perf_counter() - start < 0.5


def test_interval_half_width_for_100_images_at_precision_090():
    """DESIGN §5: n = 100 gives an interval about ±0.06 wide (binomial: 1.96 * sqrt(.9 * .1 / 100) = 0.059)."""
    labels = 28
    y_true = np.zeros((100, labels), bool)
    y_pred = np.zeros((100, labels), bool)
    y_true[np.arange(100), np.arange(100) % labels] = True
    y_pred[np.arange(100), np.arange(100) % labels] = True  # one feature named per image ...
    wrong = np.arange(0, 100, 10)  # ... 10 of them wrong: precision 0.90
    y_pred[wrong] = False
    y_pred[wrong, (wrong + 1) % labels] = True
    iv = bootstrap_multilabel(y_true, y_pred, n_resamples=2000, seed=0)["micro_precision"]
    assert iv.estimate == pytest.approx(0.90)
    assert 0.045 <= iv.half_width <= 0.07
    assert iv.low == pytest.approx(0.84, abs=0.015) and iv.high == pytest.approx(0.96, abs=0.015)


def test_paired_bootstrap():
    y_true, y_pred, unp, rare = random_case(15)
    same = paired_bootstrap(y_true, y_pred, y_pred, unp, unp, rare, n_resamples=1000)
    assert same["micro_precision"].difference == 0.0
    assert same["micro_precision"].low == same["micro_precision"].high == 0.0
    assert same["micro_precision"].share_a_better == 0.0  # strictly ahead: never

    better = y_pred | y_true  # B plus every missing true feature: higher precision and F1
    better[unp] = False
    res = paired_bootstrap(y_true, better, y_pred, unp, unp, rare, n_resamples=1000, seed=2)
    for key in ("micro_precision", "micro_f1"):
        d = res[key]
        a = multilabel_scores(y_true, better, unp, rare)[key]
        b = multilabel_scores(y_true, y_pred, unp, rare)[key]
        assert d.a == pytest.approx(a) and d.b == pytest.approx(b) and d.difference == pytest.approx(a - b)
        assert 0 < d.low <= d.difference <= d.high
        assert d.share_a_better > 0.99
        assert d.n_images == len(y_true)
    # reversed order: the difference changes sign and the share complements
    rev = paired_bootstrap(y_true, y_pred, better, unp, unp, rare, n_resamples=1000, seed=2)["micro_f1"]
    assert rev.difference == pytest.approx(-res["micro_f1"].difference)
    assert rev.low == pytest.approx(-res["micro_f1"].high) and rev.share_a_better < 0.01


def test_paired_interval_is_narrower_than_unpaired_for_correlated_runs():
    y_true, y_pred, unp, rare = random_case(16)
    rng = np.random.default_rng(0)
    other = y_pred.copy()
    flip = rng.random(y_pred.shape) < 0.01
    other[flip] = ~other[flip]
    other[unp] = False
    paired = paired_bootstrap(y_true, other, y_pred, unp, unp, rare, n_resamples=2000)["micro_precision"]
    a = bootstrap_multilabel(y_true, other, unp, rare, n_resamples=2000, seed=1)["micro_precision"]
    b = bootstrap_multilabel(y_true, y_pred, unp, rare, n_resamples=2000, seed=2)["micro_precision"]
    unpaired_half = np.hypot(a.half_width, b.half_width)
    assert (paired.high - paired.low) / 2 < unpaired_half / 2


# --- multiple choice ----------------------------------------------------------------------------------

def mc_case(seed: int, n: int = 120, n_classes: int = 7):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes - 1, n)  # the last class never occurs in the truth
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, n_classes, n))
    y_pred[rng.random(n) < 0.1] = -1  # unparseable: no answer
    scores = rng.random((n, n_classes)) + np.eye(n_classes)[y_true] * rng.random(n)[:, None]
    return y_true, y_pred, scores, n_classes


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiple_choice_equals_sklearn(seed):
    y_true, y_pred, scores, n_classes = mc_case(seed)
    ours = multiple_choice_scores(y_true, y_pred, n_classes, scores=scores)
    labels = list(range(n_classes))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=np.nan)
    assert ours["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert ours["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert ours["macro_precision"] == pytest.approx(p)
    assert ours["macro_recall"] == pytest.approx(r)
    assert ours["macro_f1"] == pytest.approx(f)
    assert ours["unparseable_share"] == pytest.approx((y_pred == -1).mean())
    for k in (1, 2):
        assert ours[f"top{k}_accuracy"] == pytest.approx(top_k_accuracy_score(y_true, scores, k=k, labels=labels))


def test_multiple_choice_hand_case_and_bootstrap():
    y_true = [0, 0, 1, 2]
    y_pred = [0, 1, 1, -1]
    s = multiple_choice_scores(y_true, y_pred, 3)
    assert s["accuracy"] == pytest.approx(0.5)
    # recall per class: 1/2, 1/1, 0/1 -> balanced accuracy 0.5; precision: 1/1, 1/2, undefined -> 0.75
    assert s["balanced_accuracy"] == pytest.approx(0.5)
    assert s["macro_precision"] == pytest.approx(0.75)
    assert s["unparseable_share"] == pytest.approx(0.25)
    iv = bootstrap_multiple_choice(y_true, y_pred, 3, n_resamples=1000)
    assert iv["accuracy"].estimate == pytest.approx(0.5) and 0.0 <= iv["accuracy"].low < 0.5 < iv["accuracy"].high
    assert one_hot([2, -1], 3).tolist() == [[False, False, True], [False, False, False]]
    with pytest.raises(ValueError):
        one_hot([3], 3)
