"""Label audit: per-feature agreement and Cohen's kappa (checked against scikit-learn), CSV handling, CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from dataset_builders.labelling.audit import AuditInputError, audit, cohen_kappa, read_human_csv
from dataset_builders.records import LabelRecord
from fracto_core.files import write_jsonl_atomic

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", range(6))
def test_kappa_matches_sklearn(seed):
    rng = random.Random(seed)
    n = rng.randint(5, 200)
    p, q = rng.random(), rng.random()
    a = [rng.random() < p for _ in range(n)]
    b = [x if rng.random() < 0.7 else rng.random() < q for x in a]
    if len(set(a) | set(b)) < 2:
        a[0], b[0] = True, False
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_kappa_edge_cases():
    assert cohen_kappa([True, False, True], [True, False, True]) == pytest.approx(1.0)
    assert cohen_kappa([True, True], [True, True]) is None  # p_e = 1: undefined
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa([], [])


def rec(item, features, status="labelled", origin="model:gpt-5.2"):
    return LabelRecord(item_id=item, features=features, origin=origin, status=status)


def write_case(tmp_path):
    csv = tmp_path / "human.csv"
    csv.write_text("item_id,features\n"
                   "a,fatigue striations; beach marks\n"
                   "b,dimples\n"
                   "c,\n"
                   "d,cleavage facets\n"
                   "e,rock candy\n"
                   "f,dimples\n", encoding="utf-8")
    labels = tmp_path / "labels.jsonl"
    write_jsonl_atomic(labels, [
        rec("a", ["fatigue striations"]),
        rec("b", ["equiaxed dimples", "shear lip"]),
        rec("c", [], status="no_features"),
        rec("d", ["cleavage facets"], origin="caption_rules"),
        rec("e", [], status="failed"),
        rec("x", ["equiaxed dimples"]),  # not in the human sample: ignored
    ])
    return csv, labels


def test_audit_per_feature_agreement_and_kappa(tmp_path):
    csv, labels = write_case(tmp_path)
    human = read_human_csv(csv)
    assert human["a"] == ["fatigue striations", "beach marks"] and human["e"] == ["intergranular facets"]
    from fracto_core.files import read_jsonl

    result = audit(human, read_jsonl(labels, LabelRecord))
    assert (result.compared, result.human_items) == (4, 6)
    assert result.failed_labels == ["e"] and result.missing_labels == ["f"]
    assert result.origins == {"caption_rules": 1, "model:gpt-5.2": 3}
    rows = {r.feature: r for r in result.features}
    assert set(rows) == {"equiaxed dimples", "shear lip", "cleavage facets", "fatigue striations", "beach marks"}
    # compared items in order a, b, c, d
    beach = rows["beach marks"]
    assert (beach.human, beach.labels, beach.both, beach.agreement) == (1, 0, 0, 0.75)
    assert beach.kappa == pytest.approx(cohen_kappa_score([1, 0, 0, 0], [0, 0, 0, 0]))
    assert rows["equiaxed dimples"].agreement == 1.0 and rows["equiaxed dimples"].kappa == pytest.approx(1.0)
    shear = rows["shear lip"]
    assert shear.kappa == pytest.approx(cohen_kappa_score([0, 0, 0, 0], [0, 1, 0, 0]))
    assert result.exact_set_agreement == 0.5  # c and d
    assert result.mean_jaccard == pytest.approx((1 / 2 + 1 / 2 + 1 + 1) / 4)
    from fracto_core.vocabulary import canonical_names  # pooled: every feature x compared item

    h = [f in s for s in (human["a"], human["b"], human["c"], human["d"]) for f in canonical_names()]
    lab = [f in s for s in (["fatigue striations"], ["equiaxed dimples", "shear lip"], [], ["cleavage facets"])
           for f in canonical_names()]
    assert result.pooled_agreement == pytest.approx(sum(x == y for x, y in zip(h, lab)) / len(h))
    assert result.pooled_kappa == pytest.approx(cohen_kappa_score(h, lab))


def test_bad_csv_names_the_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,features\na,dimples\nb,martensite laths\n", encoding="utf-8")
    with pytest.raises(AuditInputError, match=r"bad.csv:3: 'martensite laths' is not in the vocabulary"):
        read_human_csv(bad)
    bad.write_text("id,labels\na,dimples\n", encoding="utf-8")
    with pytest.raises(AuditInputError, match="missing column"):
        read_human_csv(bad)
    bad.write_text("item_id,features\na,dimples\na,cleavage\n", encoding="utf-8")
    with pytest.raises(AuditInputError, match="appears twice"):
        read_human_csv(bad)


def test_cli_prints_table_and_writes_json(tmp_path):
    csv, labels = write_case(tmp_path)
    out = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, "-m", "dataset_builders.labelling.audit", "--human", str(csv), "--labels",
                           str(labels), "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "4 of 6 human-labelled items compared" in proc.stdout
    assert "| beach marks | 1 | 0 | 0 | 0.750 |" in proc.stdout
    data = json.loads(out.read_text())
    assert data["exact_set_agreement"] == 0.5 and data["failed_labels"] == ["e"]
    bad = subprocess.run([sys.executable, "-m", "dataset_builders.labelling.audit", "--human", str(tmp_path / "no.csv"),
                          "--labels", str(labels)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no.csv" in bad.stderr


def test_a_csv_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Failed before: Excel's "CSV UTF-8" starts with a BOM, read as part of the first column's name
    ("missing column(s) ['item_id']"); manual.csv is read with utf-8-sig already."""
    path = tmp_path / "excel.csv"
    path.write_bytes("item_id,features\r\na,dimples\r\nb,\r\n".encode("utf-8-sig"))
    assert read_human_csv(path) == {"a": ["equiaxed dimples"], "b": []}


def test_a_bad_row_after_a_blank_line_is_named_by_its_own_row(tmp_path):
    """Failed before: csv.DictReader skips blank lines without counting them, so the row was called 3, not 4."""
    path = tmp_path / "gap.csv"
    path.write_text("item_id,features\na,dimples\n\nb,martensite laths\n", encoding="utf-8")
    with pytest.raises(AuditInputError, match=r"gap.csv:4: 'martensite laths' is not in the vocabulary"):
        read_human_csv(path)


def test_a_cell_the_csv_module_refuses_is_an_input_error_naming_the_row(tmp_path):
    """Failed before: _csv.Error (no ValueError) escaped main's handler: a traceback instead of 'error: ...'."""
    path = tmp_path / "huge.csv"
    path.write_text("item_id,features\na,dimples\nb,\"" + "x" * 200_000 + "\"\n", encoding="utf-8")
    with pytest.raises(AuditInputError, match=r"huge.csv:3: not readable as CSV \(field larger than field limit"):
        read_human_csv(path)
