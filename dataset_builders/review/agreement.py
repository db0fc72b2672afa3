"""Inter-annotator agreement of the expert benchmark: two experts' answers on the same images, compared.

Pure computation (no files). Each image carries, per annotator, a set of labels: the vocabulary features plus
"not a fractograph" (a label of its own, so a rejected image counts in every figure). Over the images both
annotated:

- per label: raw agreement (share of images where both say the same), Cohen's kappa
  (p_o - p_e) / (1 - p_e) with p_e from each annotator's own rate (None when p_e = 1: both constant and equal,
  as scikit-learn's cohen_kappa_score gives nan), and the 2 x 2 confusion (both, only A, only B, neither);
- overall: the same pooled over every (image, label) pair, plus exact-set agreement (both gave the same set);
- the class questions (technique, material, mechanism; single choice, optional): raw agreement and Cohen's
  kappa over the images where both answered;
- a 95 % percentile bootstrap interval for every kappa and agreement figure, resampling images (seeded): with
  n = 100 images a kappa interval is typically +-0.05..0.1 wide.

Usage:
    from dataset_builders.review.agreement import agreement
    data = agreement(a_sets, b_sets, labels, classes_a, classes_b, seed=0)   # JSON-able dict
"""

from __future__ import annotations

import numpy as np

DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95


def _kappa_from_counts(n11, n10, n01, n00) -> np.ndarray:
    """Binary Cohen's kappa from the 2 x 2 counts (arrays broadcast); nan where undefined (p_e = 1)."""
    n = n11 + n10 + n01 + n00
    with np.errstate(divide="ignore", invalid="ignore"):
        p_o = (n11 + n00) / n
        pa, pb = (n11 + n10) / n, (n11 + n01) / n
        p_e = pa * pb + (1 - pa) * (1 - pb)
        kappa = (p_o - p_e) / (1 - p_e)
    return np.where(np.isclose(p_e, 1.0), np.nan, kappa)


def nominal_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters over nominal categories; None when undefined (one shared category only)."""
    if len(a) != len(b):
        raise ValueError("two equally long rating lists are needed")
    if not a:
        return None
    cats = sorted(set(a) | set(b))
    ia = np.array([cats.index(x) for x in a])
    ib = np.array([cats.index(x) for x in b])
    p_o = float(np.mean(ia == ib))
    p_e = float(sum(np.mean(ia == k) * np.mean(ib == k) for k in range(len(cats))))
    return None if np.isclose(p_e, 1.0) else (p_o - p_e) / (1 - p_e)


def _none(x) -> float | None:
    x = round(float(x), 12) + 0.0  # float noise (-1e-17) would print as "-0.000"
    return None if np.isnan(x) else x


def _interval(samples: np.ndarray) -> list[float | None]:
    ok = samples[~np.isnan(samples)]
    if ok.size == 0:
        return [None, None]
    lo, hi = np.percentile(ok, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return [round(float(lo), 12) + 0.0, round(float(hi), 12) + 0.0]


def _weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap resamples as counts per image (n_resamples x n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    w = np.zeros((n_resamples, n), dtype=np.int64)
    for r in range(n_resamples):
        np.add.at(w[r], idx[r], 1)
    return w


def agreement(a_sets: list[set[str]], b_sets: list[set[str]], labels: list[str],
              classes_a: dict[str, list[str | None]] | None = None,
              classes_b: dict[str, list[str | None]] | None = None,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Agreement of annotator A and B on the same images (lists in the same image order); see the module doc."""
    n = len(a_sets)
    if n == 0 or n != len(b_sets):
        raise ValueError(f"both annotators must label the same, non-empty list of images ({n} vs {len(b_sets)})")
    A = np.array([[x in s for x in labels] for s in a_sets], dtype=np.int64)
    B = np.array([[x in s for x in labels] for s in b_sets], dtype=np.int64)
    parts = {"n11": A * B, "n10": A * (1 - B), "n01": (1 - A) * B, "n00": (1 - A) * (1 - B)}
    exact = np.all(A == B, axis=1).astype(np.int64)
    w = _weights(n, n_resamples, seed)
    full = {k: v.sum(0) for k, v in parts.items()}  # per label
    boot = {k: w @ v for k, v in parts.items()}  # resamples x labels

    kappa = _kappa_from_counts(**full)
    kappa_b = _kappa_from_counts(**boot)
    agree = (full["n11"] + full["n00"]) / n
    agree_b = (boot["n11"] + boot["n00"]) / n
    pooled = _kappa_from_counts(*(full[k].sum() for k in ("n11", "n10", "n01", "n00")))
    pooled_b = _kappa_from_counts(*(boot[k].sum(1) for k in ("n11", "n10", "n01", "n00")))
    raw = (full["n11"].sum() + full["n00"].sum()) / (n * len(labels))
    raw_b = (boot["n11"].sum(1) + boot["n00"].sum(1)) / (n * len(labels))
    exact_b = (w @ exact) / n

    per_label = {}
    for j, name in enumerate(labels):
        if not (full["n11"][j] + full["n10"][j] + full["n01"][j]):
            continue  # neither annotator used it: nothing to say
        per_label[name] = {
            "kappa": _none(kappa[j]), "kappa_ci": _interval(kappa_b[:, j]),
            "agreement": float(agree[j]), "agreement_ci": _interval(agree_b[:, j]),
            "confusion": {"both": int(full["n11"][j]), "only_a": int(full["n10"][j]),
                          "only_b": int(full["n01"][j]), "neither": int(full["n00"][j])},
            "a": int(A[:, j].sum()), "b": int(B[:, j].sum())}
    out = {
        "n_images": n, "n_labels": len(labels), "n_resamples": n_resamples, "seed": seed, "confidence": CONFIDENCE,
        "kappa": _none(pooled), "kappa_ci": _interval(pooled_b),
        "agreement": float(raw), "agreement_ci": _interval(raw_b),
        "exact_set_agreement": float(exact.mean()), "exact_set_agreement_ci": _interval(exact_b),
        "per_label": per_label, "classes": {},
    }
    for field, values_a in (classes_a or {}).items():
        values_b = (classes_b or {}).get(field, [None] * n)
        both = [i for i in range(n) if values_a[i] is not None and values_b[i] is not None]
        if not both:
            continue
        va, vb = [values_a[i] for i in both], [values_b[i] for i in both]
        rng = np.random.default_rng(seed)
        ks, ags = [], []
        for _ in range(n_resamples):
            pick = rng.integers(0, len(both), len(both))
            k = nominal_kappa([va[i] for i in pick], [vb[i] for i in pick])
            ks.append(np.nan if k is None else k)
            ags.append(np.mean([va[i] == vb[i] for i in pick]))
        out["classes"][field] = {
            "n_images": len(both), "kappa": nominal_kappa(va, vb), "kappa_ci": _interval(np.array(ks)),
            "agreement": float(np.mean([x == y for x, y in zip(va, vb)])), "agreement_ci": _interval(np.array(ags)),
            "answered_by_one_only": sum((values_a[i] is None) != (values_b[i] is None) for i in range(n))}
    return out


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(iv) -> str:
    return "n/a" if iv[0] is None else f"[{iv[0]:.2f}, {iv[1]:.2f}]"


def agreement_markdown(data: dict, annotators: list[str]) -> str:
    """The agreement report (agreement.md)."""
    md = [f"# Inter-annotator agreement: {' vs '.join(annotators)}", "",
          f"- images annotated by both: {data['n_images']}; labels: {data['n_labels']} (features + not a fractograph)",
          f"- Cohen's kappa, pooled over image x label: **{_f(data['kappa'])}** {_ci(data['kappa_ci'])}",
          f"- raw agreement (image x label): {_f(data['agreement'])} {_ci(data['agreement_ci'])}",
          f"- exact-set agreement (same set of labels): {_f(data['exact_set_agreement'])} "
          f"{_ci(data['exact_set_agreement_ci'])}",
          f"- intervals: {int(data['confidence'] * 100)} % percentile bootstrap, {data['n_resamples']} resamples of "
          f"the images, seed {data['seed']}", "",
          "| label | A | B | both | only A | only B | neither | agreement | kappa | kappa 95 % |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, row in data["per_label"].items():
        c = row["confusion"]
        md.append(f"| {name} | {row['a']} | {row['b']} | {c['both']} | {c['only_a']} | {c['only_b']} | "
                  f"{c['neither']} | {row['agreement']:.3f} | {_f(row['kappa'])} | {_ci(row['kappa_ci'])} |")
    for field, row in data["classes"].items():
        md += ["", f"- {field}: kappa {_f(row['kappa'])} {_ci(row['kappa_ci'])}, agreement {_f(row['agreement'])} "
                   f"over {row['n_images']} image(s) both answered ({row['answered_by_one_only']} answered by one only)"]
    return "\n".join(md) + "\n"
