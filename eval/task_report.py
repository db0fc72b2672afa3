"""Report parts for the multiple-choice tasks (issue 14): confusion matrices, per-class bars, circular view, context.

eval.report calls these for every run it reports:
    extra_metrics(rs)       -> metrics_<run>.json additions: confusion matrix (rows true, columns predicted,
                               an extra last column 'no answer'), circular view with a bootstrap interval,
                               context level and coverage
    extra_markdown(scores)  -> report.md sections: circular vs per-rotation accuracy and answer positions,
                               context levels side by side, confusion matrix of each run
    extra_plots(scores)     -> confusion_matrix_<run>.png (one per run), per_class_recall.png

Usage: used by eval.report (python -m eval.report RUN_DIR ...); not an entry point.
"""

from __future__ import annotations

import numpy as np

from eval.metrics import CONFIDENCE, DEFAULT_RESAMPLES, resample_weights


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(L, L + 1) counts from one-hot rows: true class x predicted class, last column = no (parsable) answer."""
    n_labels = y_true.shape[1]
    out = np.zeros((n_labels, n_labels + 1), dtype=int)
    for t, p in zip(y_true.argmax(1), y_pred):
        out[t, int(p.argmax()) if p.any() else n_labels] += 1
    return out


def _circular_interval(flags: np.ndarray, n_resamples: int, seed: int) -> dict:
    weights = resample_weights(flags.size, n_resamples, seed)
    boot = weights @ flags.astype(float) / weights.sum(1)
    alpha = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(boot, [alpha, 100 - alpha])
    return {"estimate": float(flags.mean()), "low": float(low), "high": float(high), "n_resamples": n_resamples}


def _scored(rs) -> list:
    by_id = {s.item_id: s for s in rs.run.samples if not s.failed}
    return [by_id[i] for i in rs.item_ids]


def extra_metrics(rs, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    card = rs.run.card
    out: dict = {"context": card.context or "none"}
    if card.protocol.get("context_coverage"):
        out["context_coverage"] = card.protocol["context_coverage"]
    if "clip" in card.protocol:  # top-1/top-2 or the validation threshold (prompts stay in the run card)
        out["clip"] = {k: v for k, v in card.protocol["clip"].items() if k != "prompts"}
    if rs.task.kind != "multiple_choice":
        return out
    out["confusion_matrix"] = {"labels": list(rs.task.labels), "columns": [*rs.task.labels, "(no answer)"],
                               "counts": confusion_counts(rs.y_true, rs.y_pred).tolist()}
    samples = _scored(rs)
    if samples and all(s.circular_correct is not None for s in samples):
        flags = np.array([s.circular_correct for s in samples], dtype=bool)
        answers = [c for s in samples for c in s.calls]
        positions: dict[str, int] = {}
        for c in answers:
            positions[c.position or "none"] = positions.get(c.position or "none", 0) + 1
        out["circular"] = {
            "circular_accuracy": _circular_interval(flags, n_resamples, seed),
            "per_rotation_accuracy": sum(bool(c.correct) for c in answers) / len(answers),
            "first_rotation_accuracy": float(np.mean([bool(s.calls[0].correct) for s in samples])),
            "position_share": {k: v / len(answers) for k, v in sorted(positions.items())},
            "n_rotations": len(samples[0].calls),
        }
    return out


def extra_markdown(scores) -> list[str]:
    lines: list[str] = []
    extras = [(rs, rs.extra) for rs in scores]
    circ = [(rs, e["circular"]) for rs, e in extras if "circular" in e]
    if circ:
        lines += ["## Circular evaluation (options shuffled with a fixed seed, rotated through every position)", "",
                  "The table above scores the first rotation. Circular: an image counts only when every rotation "
                  "is answered right; a gap between the views, or answers piling on one position, is position "
                  "bias.", "",
                  "| model | circular accuracy | per-rotation accuracy | first rotation | rotations | most chosen position |",
                  "|---|---|---|---|---|---|"]
        for rs, c in circ:
            ca = c["circular_accuracy"]
            top = max(c["position_share"].items(), key=lambda kv: kv[1])
            lines.append(f"| {rs.name} | {ca['estimate']:.3f} [{ca['low']:.3f}, {ca['high']:.3f}] | "
                         f"{c['per_rotation_accuracy']:.3f} | {c['first_rotation_accuracy']:.3f} | "
                         f"{c['n_rotations']} | {top[0]} ({top[1]:.0%}) |")
        lines.append("")
    clip = [(rs, e["clip"]) for rs, e in extras if "clip" in e]
    if clip:
        lines += ["## CLIP zero-shot (eval/clip_baseline.py)", ""]
        for rs, c in clip:
            figs = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items())
            lines.append(f"- **{rs.name}**: {figs}")
        lines.append("")
    contexts = {e["context"] for _, e in extras}
    if len(contexts) > 1 or contexts != {"none"}:
        lines += ["## Context levels", "", "What each run was told besides the image (eval/context.py): none, the "
                  "figure caption, or the caption and the paper's sentences citing the figure.", "",
                  "| model | context | items with caption | items with excerpts |", "|---|---|---|---|"]
        for rs, e in extras:
            cov = e.get("context_coverage", {})
            lines.append(f"| {rs.name} | {e['context']} | {cov.get('with_caption', '-')} | "
                         f"{cov.get('with_excerpts', '-')} |")
        lines.append("")
    for rs, e in extras:
        if "confusion_matrix" not in e:
            continue
        cm = e["confusion_matrix"]
        used = [j for j, row in enumerate(cm["counts"]) if sum(row)] or list(range(len(cm["labels"])))
        cols = [j for j in range(len(cm["columns"])) if any(cm["counts"][i][j] for i in used) or j in used]
        lines += [f"## Confusion matrix: {rs.name}", "", "Rows: true class; columns: answer (classes with no "
                  "image and no answer left out). Plot: `confusion_matrix_" + rs.slug + ".png`.", "",
                  "| true \\ answer | " + " | ".join(cm["columns"][j] for j in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for i in used:
            lines.append(f"| {cm['labels'][i]} | " + " | ".join(str(cm["counts"][i][j]) for j in cols) + " |")
        lines.append("")
    return lines


def extra_plots(scores, png) -> dict[str, bytes]:
    """Confusion matrix per run and per-class recall bars (multiple-choice tasks only)."""
    task = scores[0].task
    if task.kind != "multiple_choice":
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    for rs in scores:
        counts = np.array(rs.extra["confusion_matrix"]["counts"])
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * counts.shape[1], 1.0 + 0.5 * counts.shape[0]))
        ax.imshow(counts, cmap="Blues")
        for (i, j), v in np.ndenumerate(counts):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(counts.shape[1]), rs.extra["confusion_matrix"]["columns"], rotation=45, ha="right")
        ax.set_yticks(range(counts.shape[0]), list(task.labels))
        ax.set_xlabel("answer")
        ax.set_ylabel("true class")
        ax.set_title(f"{task.name}: {rs.name}")
        out[f"confusion_matrix_{rs.slug}.png"] = png(fig)
        plt.close(fig)
    labels = list(task.labels)
    width = 0.8 / len(scores)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.35 * len(labels))))
    y = np.arange(len(labels))
    for i, rs in enumerate(scores):
        ax.barh(y + i * width, np.nan_to_num([p.recall for p in rs.per_label]), height=width, label=rs.name)
    ax.set_yticks(y + width * (len(scores) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall (share of the class's images answered right; n/a drawn as 0)")
    ax.set_title(f"Per-class recall ({task.name})")
    ax.legend(loc="lower right", fontsize="small")
    out["per_class_recall.png"] = png(fig)
    plt.close(fig)
    return out
