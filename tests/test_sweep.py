"""jmrn.sweep: supplementary Fig. 4 from what `dvc exp show --json` reports."""

from __future__ import annotations

import copy
import json

import cv2
import pytest
import yaml
from conftest import PROJECT_ROOT

from jmrn import sweep

PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def experiment(name: str, top1: float | None, *, beta=None, gamma=None, seed=None,
               block_beta=None, dataset="synthetic", epochs=None) -> dict:  # fmt: skip
    """One experiment as `dvc exp show --json` lists it (only the fields jmrn.sweep reads)."""
    params = copy.deepcopy(PARAMS)
    params["dataset"] = dataset
    params["paa"]["beta"], params["paa"]["gamma"] = beta, gamma
    params["train"]["seed"], params["train"]["epochs"] = seed, epochs
    if block_beta is not None:
        params["datasets"][dataset]["paa"]["beta"] = block_beta
    metrics = {}
    if top1 is not None:
        metrics[f"metrics/{dataset}/train/jmrn.json"] = {"data": {"test": {"top1": top1}}}
    return {"rev": name * 5, "name": name,
            "data": {"params": {"params.yaml": {"data": params}}, "metrics": metrics}}  # fmt: skip


def own_lock(e: dict) -> dict:
    """A dvc.lock in which the experiment's own run wrote each of its metrics files."""
    stages = {path: {"params": {"params.yaml": {"paa": e["params"]["paa"]}},
                     "outs": [{"path": path}]} for path in e["metrics"]}  # fmt: skip
    return {"lock": {"stages": stages}, "code": {}}


@pytest.fixture(autouse=True)
def experiments_read_their_own_lock(monkeypatch):
    monkeypatch.setattr(sweep, "lock_from_git", own_lock)


def exp_show(*revs: dict, other_commit: tuple[dict, ...] = ()) -> list[dict]:
    commits = [("abc1234", revs), ("def5678", other_commit)]
    return [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            *[{"rev": commit, "name": "main", "data": {},
               "experiments": [{"revs": [r], "executor": None, "name": r["name"]}
                               for r in exps]}
              for commit, exps in commits if exps]]  # fmt: skip


def grid() -> list[dict]:
    """beta 0, 4 x gamma 0, 2 x seeds 0, 1, with a planted answer: top1 = 0.5 + beta/100 +
    gamma/10 + seed/100 (so the mean over seeds is 0.505 + beta/100 + gamma/10)."""
    return [experiment(f"e{b}{g}{s}", 0.5 + b / 100 + g / 10 + s / 100, beta=b, gamma=g, seed=s)
            for b in (0, 4) for g in (0, 2) for s in (0, 1)]  # fmt: skip


def test_the_summary_is_the_planted_mean_and_spread_over_seeds():
    table = sweep.collect(exp_show(*grid()), dataset=None, model="jmrn", metric=None, only={})
    assert table["dataset"] == "synthetic" and table["metric"] == "top1"
    assert len(table["rows"]) == 8
    summary = {(p["gamma"], p["beta"]): p for p in sweep.summarise(table)}
    assert set(summary) == {(0, 0), (0, 4), (2, 0), (2, 4)}
    for (g, b), p in summary.items():
        assert p["mean"] == pytest.approx(0.505 + b / 100 + g / 10)
        assert p["std"] == pytest.approx(0.005) and p["seeds"] == 2


def test_effective_values_come_from_the_block_when_not_overridden():
    revs = [experiment("blk", 0.7, block_beta=5, gamma=1, seed=0),
            experiment("ovr", 0.6, beta=3, gamma=1, seed=0)]  # fmt: skip
    table = sweep.collect(exp_show(*revs), dataset=None, model="jmrn", metric=None, only={})
    assert {r["experiment"]: r["beta"] for r in table["rows"]} == {"blk": 5, "ovr": 3}


def test_unfinished_and_other_dataset_experiments_are_left_out():
    revs = [*grid(), experiment("queued", None, beta=8, gamma=0, seed=0),
            experiment("jh", 0.9, beta=8, gamma=0, seed=0, dataset="jhmdb14_gt")]  # fmt: skip
    table = sweep.collect(exp_show(*revs), dataset="synthetic", model="jmrn", metric=None,
                          only={})  # fmt: skip
    assert {r["beta"] for r in table["rows"]} == {0, 4}
    other = sweep.collect(exp_show(*revs), dataset="jhmdb14_gt", model="jmrn", metric=None,
                          only={})  # fmt: skip
    assert [r["experiment"] for r in other["rows"]] == ["jh"]


def test_experiments_that_differ_in_another_param_are_an_error_unless_narrowed():
    revs = [*grid(), experiment("long", 0.99, beta=0, gamma=0, seed=5, epochs=40)]
    with pytest.raises(ValueError, match="train.epochs"):
        sweep.collect(exp_show(*revs), dataset=None, model="jmrn", metric=None, only={})
    narrowed = sweep.collect(exp_show(*revs), dataset=None, model="jmrn", metric=None,
                             only={"train.epochs": "40"})  # fmt: skip
    assert [r["experiment"] for r in narrowed["rows"]] == ["long"]


def test_two_experiments_of_the_same_point_are_an_error():
    revs = [*grid(), experiment("twin", 0.1, beta=0, gamma=0, seed=0)]
    with pytest.raises(ValueError, match="same beta, gamma and seed"):
        sweep.collect(exp_show(*revs), dataset=None, model="jmrn", metric=None, only={})


def test_no_finished_experiment_is_a_clear_error():
    with pytest.raises(ValueError, match="no finished experiment"):
        sweep.collect(exp_show(experiment("q", None)), dataset=None, model="jmrn",
                      metric=None, only={})  # fmt: skip


def test_the_command_writes_the_csv_the_json_and_the_picture(tmp_path, capsys):
    source = tmp_path / "exp_show.json"
    source.write_text(json.dumps(exp_show(*grid())))
    assert sweep.main(["--input", str(source), "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out/paa.csv").read_text().splitlines()
    assert lines[0] == "gamma,beta,mean,std,low,high,seeds" and len(lines) == 5
    assert lines[-1] == "2,4,74.50,0.50,74.00,75.00,2"
    image = cv2.imread(str(tmp_path / "out/paa.png"))
    assert image is not None and image.shape == (480, 640, 3)
    assert (image != 255).any(axis=2).mean() > 0.01  # something is drawn
    assert "gamma 2 beta 4: 74.5 ± 0.5 % (2 seeds)" in capsys.readouterr().out
    source.write_text(json.dumps(exp_show(experiment("q", None))))
    assert sweep.main(["--input", str(source), "--out", str(tmp_path / "none")]) == 1
    assert not (tmp_path / "none").exists()


def test_the_dvc_plot_template_draws_one_line_per_gamma_with_the_csv_columns(tmp_path):
    from dvc_render import VegaRenderer

    source = tmp_path / "exp_show.json"
    source.write_text(json.dumps(exp_show(*grid())))
    assert sweep.main(["--input", str(source), "--out", str(tmp_path)]) == 0
    header, *rows = (tmp_path / "paa.csv").read_text().splitlines()
    points = [dict(zip(header.split(","), row.split(","), strict=True)) for row in rows]
    template = PROJECT_ROOT / ".dvc/plots/sweep.json"  # as `dvc plots show --template sweep`
    spec = VegaRenderer(points, "paa.csv", template=str(template), x="beta",
                        y="mean").get_filled_template()  # fmt: skip
    assert spec["data"]["values"] == points
    assert spec["encoding"]["color"]["field"] == "gamma"
    fields = {layer["encoding"]["y"]["field"] for layer in spec["layer"]}
    assert fields == {"mean", "low"} and spec["layer"][1]["encoding"]["y2"]["field"] == "high"


def test_experiments_of_commits_with_different_code_are_an_error_unless_one_is_picked():
    """As in jmrn.report: commits whose stages' code differs do not mix, and --rev picks one;
    commits with the same stage code (a docs change between them) pool."""
    later = [experiment("new", 0.2, beta=0, gamma=0, seed=2)]
    shown = exp_show(*grid(), other_commit=tuple(later))
    differs = lambda commit: {"jmrn/train.py": commit[:3]}  # noqa: E731
    with pytest.raises(ValueError, match=r"run from 2 commits.*differs in \['jmrn/train.py'\]"):
        sweep.collect(shown, dataset=None, model="jmrn", metric=None, only={}, code_of=differs)
    picked = sweep.collect(shown, dataset=None, model="jmrn", metric=None, only={}, rev="def",
                           code_of=differs)  # fmt: skip
    assert [r["experiment"] for r in picked["rows"]] == ["new"]
    assert picked["commits"] == ["def5678"]
    assert len(sweep.collect(shown, dataset=None, model="jmrn", metric=None, only={},
                             rev="abc1", code_of=differs)["rows"]) == 8  # fmt: skip
    pooled = sweep.collect(shown, dataset=None, model="jmrn", metric=None, only={},
                           code_of=lambda commit: {"jmrn/train.py": "same"})  # fmt: skip
    assert len(pooled["rows"]) == 9 and len(pooled["commits"]) == 2


def test_a_model_its_experiment_did_not_train_is_left_out(monkeypatch):
    """An experiment queued for PoTion only (beta 8) holds the baseline's JMRN metrics, which
    its lock says ran with another beta: it is no point of the JMRN sweep."""
    potion_only = experiment("p8", 0.99, beta=8, gamma=0, seed=0)

    def lock(e):
        ran = own_lock(e)
        if e["name"] == "p8":
            for stage in ran["lock"]["stages"].values():
                stage["params"]["params.yaml"]["paa"] = {**e["params"]["paa"], "beta": None}
        return ran

    monkeypatch.setattr(sweep, "lock_from_git", lock)
    table = sweep.collect(exp_show(*grid(), potion_only), dataset=None, model="jmrn",
                          metric=None, only={})  # fmt: skip
    assert len(table["rows"]) == 8 and 8 not in {r["beta"] for r in table["rows"]}
    assert table["left_out_not_their_own"] == {
        "p8": "metrics/synthetic/train/jmrn.json ran with paa.beta = null, the experiment has 8"}
