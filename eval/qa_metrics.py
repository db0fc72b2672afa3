"""Aggregates of a sem_qa run: judged scores with bootstrap intervals, judgement failures, judge agreement.

Inputs are the per-sample records of eval.qa_task (``QASample``). Definitions:
- scored = samples with a model reply and an "ok" judgement; failures (no model reply; judge malformed,
  refused or without reply) are counted by kind and left out — never scored as 0 or guessed;
- quality = mean judged quality (0-100); feature_identification = mean judged score (1-4), over all
  scored samples and over the "features" questions alone; each with a 95 % bootstrap interval
  (resampling samples, fixed seed);
- self-agreement, on the re-asked sample where both judgements are "ok": mean |quality difference|,
  share of quality within 10 points, share of identical feature_identification;
- exact-match agreement, on scored "features" questions whose reference is not a refusal: the features
  named in the model's answer (vocabulary phrases, negated mentions skipped) against the reference's;
  reported: exact-set share, mean F1, the share where "judge >= 3" equals "exact set", and the Spearman
  correlation between the judge's 1-4 and the F1 (None when either is constant).

Usage:
    metrics = aggregate(samples)     # a JSON-able dict
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from fracto_core.phrases import CONTRAST_WORDS
from fracto_core.vocabulary import phrase_index

BOOTSTRAP_RESAMPLES = 2000
_NEGATION = re.compile(r"\b(no|not|without|absence|absent|neither|nor|lack of)\b", re.IGNORECASE)
# a negation reaches to the end of its clause: punctuation, or a contrasting conjunction ("no striations but beach
# marks" names beach marks; "not only dimples but also ..." still drops the dimples, as before)
_CLAUSE_END = re.compile(r"[;,.:]|" + CONTRAST_WORDS)


def features_in_text(text: str) -> list[str]:
    """Canonical features a free-text answer names (longest phrase first; negated mentions skipped)."""
    low = " ".join((text or "").lower().replace("_", " ").split())
    found: list[str] = []
    taken = [False] * len(low)
    for phrase, name in sorted(phrase_index().items(), key=lambda kv: -len(kv[0])):
        for m in re.finditer(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", low):
            if any(taken[m.start():m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            clause = _CLAUSE_END.split(low[:m.start()])[-1]
            if not _NEGATION.search(clause) and name not in found:
                found.append(name)
    return found


def _mean_ci(values: Sequence[float], seed: int = 0) -> dict:
    if not values:
        return {"n": 0, "mean": None, "low": None, "high": None}
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": len(x), "mean": float(x.mean()), "low": float(low), "high": float(high)}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None with fewer than 2 points or a constant side."""
    if len(a) < 2:
        return None
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def f1(reference: Sequence[str], predicted: Sequence[str]) -> float:
    t, p = set(reference), set(predicted)
    return 2 * len(t & p) / (len(t) + len(p)) if (t or p) else 1.0


def aggregate(samples: Sequence) -> dict:
    """Every figure of the module docstring from QASample records."""
    n = len(samples)
    model_failed = [s for s in samples if s.model_error is not None]
    answered = [s for s in samples if s.model_error is None]
    judge_status = Counter(s.judge.status for s in answered)
    scored = [s for s in answered if s.judge.status == "ok"]
    features = [s for s in scored if s.kind == "features"]
    out: dict = {
        "n_samples": n, "n_model_failed": len(model_failed), "n_judged": len(answered),
        "judge_status": {k: judge_status.get(k, 0) for k in ("ok", "malformed", "refused", "failed")},
        "n_scored": len(scored),
        "judge_failure_share": (len(answered) - len(scored)) / len(answered) if answered else None,
        "quality": _mean_ci([s.judge.quality for s in scored]),
        "feature_identification": _mean_ci([s.judge.feature_identification for s in scored], seed=1),
        "quality_features_questions": _mean_ci([s.judge.quality for s in features], seed=2),
        "feature_identification_features_questions": _mean_ci([s.judge.feature_identification for s in features],
                                                              seed=3),
        "quality_by_kind": {k: _mean_ci([s.judge.quality for s in scored if s.kind == k], seed=4)["mean"]
                            for k in sorted({s.kind for s in scored})},
    }
    reasked = [s for s in answered if s.reask is not None]
    both = [s for s in reasked if s.judge.status == "ok" and s.reask.status == "ok"]
    diffs = [abs(s.judge.quality - s.reask.quality) for s in both]
    out["self_agreement"] = {
        "n_reasked": len(reasked), "n_both_ok": len(both),
        "reask_status": dict(Counter(s.reask.status for s in reasked)),
        "mean_abs_quality_diff": float(np.mean(diffs)) if diffs else None,
        "quality_within_10": float(np.mean([d <= 10 for d in diffs])) if diffs else None,
        "feature_identification_equal": (float(np.mean([s.judge.feature_identification
                                                        == s.reask.feature_identification for s in both]))
                                         if both else None),
    }
    exact_rows = [s for s in features if not s.reference_refused]
    f1s = [f1(s.reference_features, features_in_text(s.model_reply or "")) for s in exact_rows]
    exact = [set(s.reference_features) == set(features_in_text(s.model_reply or "")) for s in exact_rows]
    judged = [s.judge.feature_identification for s in exact_rows]
    out["exact_match_agreement"] = {
        "n": len(exact_rows),
        "exact_set_share": float(np.mean(exact)) if exact else None,
        "mean_f1": float(np.mean(f1s)) if f1s else None,
        "judge_ge3_equals_exact": (float(np.mean([(j >= 3) == e for j, e in zip(judged, exact)]))
                                   if exact else None),
        "spearman_judge_vs_f1": spearman(judged, f1s),
    }
    return out
