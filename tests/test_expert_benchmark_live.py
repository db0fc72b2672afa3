"""The expert benchmark through a real Label Studio 1.23.2 (slow): two users annotate their own blind projects
(some answers agree, some not, one image "not a fractograph"), the agreement is pulled through the API and equals
scikit-learn's, the disagreements become the adjudication project, the adjudicator decides, and the benchmark CSV
and card come out. Label Studio runs from the cached venv and a cached two-user data folder (restart ~5 s)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score

from dataset_builders.review.__main__ import main
from dataset_builders.review.label_studio import NOT_FRACTOGRAPH, LabelStudioClient
from fracto_core.vocabulary import canonical_names

from support.label_studio_users import SECOND_TOKEN, SECOND_USER, two_user_data_dir
from support.review_tools import USER, label_studio
from test_expert_benchmark import _rebuild, simulate

pytestmark = pytest.mark.slow


def _tasks(client: LabelStudioClient, project: int) -> list[dict]:
    page = client.request("GET", "/api/tasks", query={"project": project, "page_size": 1000})
    return sorted(page["tasks"] if isinstance(page, dict) else page, key=lambda t: t["id"])


def _n_projects(client: LabelStudioClient) -> int:
    page = client.request("GET", "/api/projects", query={"page_size": 100})
    return len(page["results"] if isinstance(page, dict) else page)


def _annotate(client: LabelStudioClient, task_id: int, rec: dict) -> None:
    """Post what an annotator chose in the interface (the JSON-MIN record of simulate) as a real annotation."""
    result = []
    for name in ("features", "technique", "material", "mechanism"):
        value = rec.get(name)
        if value:
            choices = value["choices"] if isinstance(value, dict) else [value]
            result.append({"from_name": name, "to_name": "image", "type": "choices", "value": {"choices": choices}})
    client.request("POST", f"/api/tasks/{task_id}/annotations", {"result": result, "lead_time": 4.0})


def test_two_annotators_adjudication_and_benchmark_through_label_studio(built, corpus_dir, tmp_path):
    out = _rebuild(built[0], tmp_path / "out", corpus_dir, holdout_share=0.5)
    data_dir = two_user_data_dir(tmp_path / "ls_data", tmp_path / "scratch")
    with label_studio(data_dir, out, tmp_path / "label_studio.log") as (url, token):
        api = ["--url", url, "--token", token]
        assert main(["benchmark", "export", "--out", str(out), "--n", "8", "--seed", "2",
                     "--annotators", USER, SECOND_USER, *api]) == 0
        projects = json.loads((out / "benchmark" / "projects.json").read_text())["annotation"]
        admin, second = LabelStudioClient(url, token), LabelStudioClient(url, SECOND_TOKEN)
        assert main(["benchmark", "export", "--out", str(out), "--n", "8", "--seed", "2",  # run again: no copies
                     "--annotators", USER, SECOND_USER, *api]) == 0
        assert _n_projects(admin) == 2
        tasks = {slot: _tasks(admin, projects[slot]) for slot in ("A", "B")}
        for slot in ("A", "B"):
            info = admin.request("GET", f"/api/projects/{projects[slot]}")
            assert info["task_number"] == 8 and info["total_predictions_number"] == 0  # blind
            assert all(not t.get("predictions") and "label_features" not in t["data"] for t in tasks[slot])
        ids = [t["data"]["item_id"] for t in tasks["A"]]
        assert ids == [t["data"]["item_id"] for t in tasks["B"]]

        pool = {json.loads(x)["item_id"]: json.loads(x)["features"]
                for x in (out / "stages" / "holdout.jsonl").read_text().splitlines()}
        ea, eb, b_answers = simulate([{"data": t["data"]} for t in tasks["A"]], pool)
        for ta, tb, ra, rb in zip(tasks["A"], tasks["B"], ea, eb):
            _annotate(admin, ta["id"], ra)  # the first user labels project A ...
            _annotate(second, tb["id"], rb)  # ... the second user, with their own token, project B
        assert main(["benchmark", "agree", "--out", str(out), *api, "--resamples", "300"]) == 0
        ag = json.loads((out / "benchmark" / "agreement.json").read_text())
        assert ag["label_studio_users"] == {"A": [USER], "B": [SECOND_USER]}

        adj_project = json.loads((out / "benchmark" / "projects.json").read_text())["adjudication"]
        assert main(["benchmark", "agree", "--out", str(out), *api, "--resamples", "300"]) == 0  # again: same project
        assert json.loads((out / "benchmark" / "projects.json").read_text())["adjudication"] == adj_project
        assert _n_projects(admin) == 3
        adj_tasks = _tasks(admin, adj_project)
        differ = [i for k, i in enumerate(ids) if k == 1 or k == 3 or k % 3 == 2]
        assert [t["data"]["item_id"] for t in adj_tasks] == ag["disagreements"] == differ
        assert all(not t.get("predictions") for t in adj_tasks)
        assert NOT_FRACTOGRAPH in adj_tasks[0]["data"]["answer_b"]
        for k, t in enumerate(adj_tasks):  # the adjudicator keeps the rejection, otherwise sides with A
            feats = [NOT_FRACTOGRAPH] if k == 0 else pool[t["data"]["item_id"]]
            _annotate(admin, t["id"], {"features": {"choices": feats}, "technique": None if k == 0 else "SEM"})
        assert main(["benchmark", "finish", "--out", str(out), *api]) == 0

    labels = [*canonical_names(), NOT_FRACTOGRAPH]
    A = np.array([[x in pool[i] for x in labels] for i in ids])
    B = np.array([[x in b_answers[i][0] for x in labels] for i in ids])
    assert ag["kappa"] == pytest.approx(cohen_kappa_score(A.ravel(), B.ravel()))
    assert ag["agreement"] == pytest.approx(accuracy_score(A.ravel(), B.ravel()))
    j = labels.index(NOT_FRACTOGRAPH)
    assert ag["per_label"][NOT_FRACTOGRAPH]["kappa"] == pytest.approx(cohen_kappa_score(A[:, j], B[:, j]))
    rows = list(csv.DictReader(io.StringIO((out / "benchmark" / "set" / "benchmark.csv").read_text())))
    assert [r["item_id"] for r in rows] == [i for i in ids if i != ids[1]]
    assert {r["item_id"]: r["features"].split(";") for r in rows} == {i: pool[i] for i in ids if i != ids[1]}
    card = json.loads((out / "benchmark" / "set" / "benchmark.card.json").read_text())
    assert card["adjudication"] == {"disagreements": len(differ), "adjudicated": len(differ), "adjudicators": [USER]}
    assert card["annotators"] == {"A": USER, "B": SECOND_USER} and card["agreement"]["kappa"] == ag["kappa"]
