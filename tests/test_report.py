"""jmrn.report: a grid of fake experiments with planted values gives the exact means, CIs and
paired differences, and every kind of experiment it must refuse is refused by name."""

from __future__ import annotations

import copy
import csv
import json
import math
import statistics
import subprocess

import cv2
import pytest
import yaml
from conftest import PROJECT_ROOT

from jmrn import experiments, report

PARAMS = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
T4 = 2.7764451051977987  # t(0.975, 4): five seeds
# planted: JMRN with the joint-contrastive loss over seeds 0-4, and the drop without it
PROPOSED = [0.70, 0.72, 0.74, 0.76, 0.78]
DROP = [0.01, 0.02, 0.03, 0.02, 0.02]
POTION = [0.65, 0.70, 0.70, 0.72, 0.73]


def experiment(name: str, *, seed: int, variant: str | None = None, jmrn: float | None = None,
               potion: float | None = None, finished: bool = True, dataset: str = "jhmdb14_gt",
               block_variant: str | None = None, raw_hash: str = "aaa.dir",
               **overrides) -> dict:  # fmt: skip
    """One finished experiment as `dvc exp show --json` lists it."""
    params = copy.deepcopy(PARAMS)
    params["dataset"] = dataset
    params["train"]["seed"] = seed
    params["contrastive"]["variant"] = variant
    if block_variant is not None:
        params["datasets"][dataset]["contrastive"]["variant"] = block_variant
    for key, value in overrides.items():
        section, name_ = key.split("__")
        params[section][name_] = value
    metrics = {}
    for model, top1 in (("jmrn", jmrn), ("potion", potion)):
        if top1 is not None:
            metrics[f"metrics/{dataset}/train/{model}.json"] = {"data": {
                "model": model, "finished": finished, "test": {"top1": top1, "loss": 1.0},
                "test_best_over_evaluations_paper_style": {"top1": top1 + 0.01}}}
    metrics[f"metrics/{dataset}/ingest.json"] = {"data": {"kept": 609}}
    return {"rev": (name * 8)[:40], "name": name,
            "data": {"rev": (name * 8)[:40], "params": {"params.yaml": {"data": params}},
                     "metrics": metrics,
                     "deps": {f"data/raw/{dataset}": {"hash": raw_hash}},
                     "outs": {f"data/{dataset}/heatmaps.h5": {"hash": "bbb"}}}}  # fmt: skip


def own_lock(e: dict) -> dict:
    """A dvc.lock in which each metrics file of the experiment was written by a stage that ran
    with its own train section: every file is its own (the tests below plant stale ones)."""
    stages = {path: {"params": {"params.yaml": {"train": e["params"]["train"]}},
                     "outs": [{"path": path, "md5": "m"}]} for path in e["files"]}  # fmt: skip
    return {"lock": {"stages": stages}, "code": {}}


@pytest.fixture(autouse=True)
def experiments_read_their_own_lock(monkeypatch):
    monkeypatch.setattr(report, "lock_from_git", own_lock)


def exp_show(*revs: dict, other_commit: tuple[dict, ...] = ()) -> list[dict]:
    commits = [("abc1234" * 5, revs), ("def5678" * 5, other_commit)]
    return [{"rev": "workspace", "name": None, "data": {}, "experiments": None},
            *[{"rev": commit, "name": "main", "data": {},
               "experiments": [{"revs": [r], "executor": None, "name": r["name"]}
                               for r in exps]}
              for commit, exps in commits if exps]]  # fmt: skip


def grid() -> list[dict]:
    """Seeds 0-4 with the loss (JMRN and PoTion + PAA, as `dvc exp run` of the whole DAG
    gives) and without it (JMRN only, as `... train@jmrn` gives)."""
    with_jcl = [experiment(f"p{s}", seed=s, variant="proposed", jmrn=PROPOSED[s],
                           potion=POTION[s]) for s in range(5)]  # fmt: skip
    without = [experiment(f"n{s}", seed=s, variant="none", jmrn=PROPOSED[s] - DROP[s])
               for s in range(5)]  # fmt: skip
    return with_jcl + without


def build(*revs, **kw) -> dict:
    return report.build(exp_show(*revs), baseline_params=PARAMS, **kw)


def test_groups_give_the_planted_mean_std_and_t_interval():
    out = build(*grid())
    assert out["differing_params"] == ["contrastive.variant"]
    groups = {g["params"]["contrastive.variant"]: g for g in out["groups"]}
    assert set(groups) == {"proposed", "none"} and groups["proposed"]["n"] == 5
    stats = groups["proposed"]["metrics"]["train/jmrn/test/top1"]
    std = math.sqrt(0.004 / 4)  # deviations -4, -2, 0, 2, 4 points
    assert stats["mean"] == pytest.approx(0.74, abs=1e-12)
    assert stats["std"] == pytest.approx(std, abs=1e-12)
    half = T4 * std / math.sqrt(5)
    assert stats["ci95"] == pytest.approx([0.74 - half, 0.74 + half], abs=1e-12)
    assert stats["values"] == PROPOSED
    assert "train/potion/test/top1" not in groups["none"]["metrics"]  # never trained there
    assert "ingest/kept" not in groups["none"]["metrics"]  # not a result metric


def test_the_pair_is_the_paired_difference_by_seed_with_its_interval():
    (pair,) = build(*grid())["pairs"]
    assert pair["differs"] == "contrastive.variant" and pair["n"] == 5
    # a is the commit's own value (jhmdb14_gt's block says proposed): b - a = none - proposed
    assert pair["a"] == {"contrastive.variant": "proposed"}
    assert pair["b"] == {"contrastive.variant": "none"}
    stats = pair["metrics"]["train/jmrn/test/top1"]
    std = math.sqrt(0.0002 / 4)  # the drops' deviations from 0.02: -1, 0, 1, 0, 0 points
    assert stats["mean"] == pytest.approx(-0.02, abs=1e-12)
    assert stats["std"] == pytest.approx(std, abs=1e-12)
    half = T4 * std / math.sqrt(5)
    assert stats["ci95"] == pytest.approx([-0.02 - half, -0.02 + half], abs=1e-12)
    # unpaired, the groups' intervals overlap widely; paired, the CI excludes 0
    assert stats["ci95"][1] < 0
    assert set(pair["metrics"]) == {"train/jmrn/test/top1",  # not the loss: not a default
                                    "train/jmrn/test_best_over_evaluations_paper_style/top1"}


def test_pairs_use_only_the_seeds_both_groups_have():
    revs = [r for r in grid() if r["name"] not in ("n3", "p1")]
    (pair,) = build(*revs)["pairs"]
    stats = pair["metrics"]["train/jmrn/test/top1"]
    assert stats["n"] == 3 and stats["values"] == pytest.approx([-0.01, -0.03, -0.02])  # 0, 2, 4
    assert stats["std"] == pytest.approx(0.01)
    assert stats["ci95"][1] - stats["mean"] == pytest.approx(
        4.302652729749464 * 0.01 / math.sqrt(3))  # t(0.975, 2)


def test_within_a_group_jmrn_minus_potion_and_the_selection_regret():
    comps = build(*grid())["comparisons"]
    gain = next(c for c in comps if c["a"] == "train/potion/test/top1")
    assert gain["b"] == "train/jmrn/test/top1" and gain["params"]["contrastive.variant"] == \
        "proposed"  # fmt: skip
    diffs = [j - p for j, p in zip(PROPOSED, POTION, strict=True)]
    assert gain["values"] == pytest.approx(diffs) and gain["n"] == 5
    assert gain["mean"] == pytest.approx(sum(diffs) / 5)
    custom = build(*grid(), compare=[("train/jmrn/test/top1",
                                      "train/jmrn/test_best_over_evaluations_paper_style/top1")])
    assert {c["n"] for c in custom["comparisons"]} == {5}
    assert all(c["mean"] == pytest.approx(0.01) for c in custom["comparisons"])
    assert all(c["std"] == pytest.approx(0.0, abs=1e-12) for c in custom["comparisons"])


def test_a_value_set_by_override_or_in_the_block_is_one_setting():
    revs = grid()
    revs[0] = experiment("p0", seed=0, variant=None, block_variant="proposed",
                         jmrn=PROPOSED[0], potion=POTION[0])  # fmt: skip
    groups = build(*revs)["groups"]
    assert sorted(g["n"] for g in groups) == [5, 5]


def test_one_seed_has_no_interval_and_the_markdown_says_only_the_mean():
    out = build(experiment("a", seed=0, variant="proposed", jmrn=0.7),
                experiment("b", seed=0, variant="none", jmrn=0.6))
    stats = out["groups"][0]["metrics"]["train/jmrn/test/top1"]
    assert stats["std"] is None and stats["ci95"] is None
    text = report.markdown(out)
    assert "| 60.0 |" in text or "| 70.0 |" in text


@pytest.mark.parametrize("case, message", [
    ("unfinished", "have not finished: p2 (running"),
    ("queued", "have not finished: q (queued"),
    ("failed", "have not finished: f (failed"),
    ("duplicate", "have the same params"),
    ("commits", "run from 2 commits .* differs in ['jmrn/train.py']"),
    ("data", "differ in their data: data/raw/jhmdb14_gt has 2 versions"),
    ("datasets", "of 2 datasets"),
])  # fmt: skip
def test_what_cannot_be_compared_is_refused_by_name(case, message):
    revs, other = grid(), ()
    if case == "unfinished":
        revs[2] = experiment("p2", seed=2, variant="proposed", jmrn=0.5, finished=False)
    elif case == "queued":
        revs.append({"rev": "q" * 40, "name": "q", "data": {"rev": "q" * 40, "params": {},
                                                             "metrics": {}}})  # fmt: skip
    elif case == "failed":
        revs.append({**experiment("f", seed=9, jmrn=0.1), "error": {"msg": "stage failed"}})
    elif case == "duplicate":
        revs.append(experiment("again", seed=1, variant="none", jmrn=0.9))
    elif case == "commits":
        other = (experiment("old", seed=7, variant="none", jmrn=0.9),)
    elif case == "data":
        revs[5] = experiment("n0", seed=0, variant="none", jmrn=0.7, raw_hash="zzz.dir")
    elif case == "datasets":
        revs.append(experiment("s", seed=0, dataset="synthetic", jmrn=0.9))
    escaped = message.replace("(", r"\(").replace("[", r"\[")
    with pytest.raises(report.ExperimentsError, match=escaped):
        report.build(exp_show(*revs, other_commit=other), baseline_params=PARAMS,
                     code_of=lambda commit: {"jmrn/train.py": commit[:3]})  # fmt: skip


def test_seeds_of_another_commit_with_the_same_stage_code_join_the_grid():
    """Seeds 5 and 6 queued from a later commit that changed no stage code add to the groups;
    the report names both commits."""
    later = (experiment("p5", seed=5, variant="proposed", jmrn=0.80, potion=0.75),
             experiment("n5", seed=5, variant="none", jmrn=0.77))  # fmt: skip
    same = {"jmrn/train.py": "same", "dvc.yaml": "same"}
    out = report.build(exp_show(*grid(), other_commit=later), baseline_params=PARAMS,
                       code_of=lambda commit: same)  # fmt: skip
    assert {g["n"] for g in out["groups"]} == {6}
    assert out["commits"] == ["abc1234" * 5, "def5678" * 5]
    assert "commits `abc1234`, `def5678` (the same stage code)" in report.markdown(out)
    jcl = next(p for p in out["pairs"] if p["differs"] == "contrastive.variant")
    assert jcl["metrics"]["train/jmrn/test/top1"]["n"] == 6


def test_by_commit_pairs_the_seeds_of_two_code_versions_instead_of_refusing_them():
    """A change of the stages' code: the same seeds from a later commit, JMRN moved by a
    planted amount; --by-commit makes the commit a setting and pairs it by seed."""
    moved = [0.01, 0.03, 0.02, 0.02, 0.02]
    later = tuple(experiment(f"c{s}", seed=s, variant="proposed", jmrn=PROPOSED[s] + moved[s],
                             potion=POTION[s]) for s in range(5))  # fmt: skip
    data = exp_show(*grid(), other_commit=later)
    differ = {"code_of": lambda commit: {"jmrn/models.py": commit[:3]}}
    with pytest.raises(report.ExperimentsError, match="differs in"):
        report.build(data, baseline_params=PARAMS, **differ)
    out = report.build(data, baseline_params=PARAMS, by_commit=True, rev=["abc1234", "def5678"],
                       **differ)  # fmt: skip
    pair = next(p for p in out["pairs"] if p["differs"] == "commit")
    assert (pair["a"]["commit"], pair["b"]["commit"]) == ("abc1234", "def5678")
    jmrn = pair["metrics"]["train/jmrn/test/top1"]
    assert jmrn["n"] == 5 and jmrn["mean"] == pytest.approx(0.02)
    assert jmrn["std"] == pytest.approx(statistics.stdev(moved))
    assert pair["metrics"]["train/potion/test/top1"]["mean"] == pytest.approx(0.0)
    assert "commits `abc1234`, `def5678` (compared)" in report.markdown(out)
    out = report.build(data, baseline_params=PARAMS, by_commit=True, rev=["def5678", "abc1234"],
                       **differ)  # fmt: skip  # a is the first --rev, whichever it is
    pair = next(p for p in out["pairs"] if p["differs"] == "commit")
    assert pair["a"]["commit"] == "def5678"
    assert pair["metrics"]["train/jmrn/test/top1"]["mean"] == pytest.approx(-0.02)


@pytest.mark.parametrize("old_commit_first", [True, False])
def test_by_commit_pairs_seeds_across_a_param_that_only_the_later_commit_has(old_commit_first):
    """A later commit adds a param (train.schedule, at its default): its seeds still pair with
    the earlier commit's, whichever commit dvc lists first, and the new param shows as absent
    in the earlier one."""
    def without_schedule(e: dict) -> dict:
        params = e["data"]["params"]["params.yaml"]["data"]
        del params["train"]["schedule"], params["datasets"]["jhmdb14_gt"]["train"]["schedule"]
        return e

    moved = [0.01, 0.03, 0.02, 0.02, 0.02]
    earlier = [without_schedule(e) for e in grid()[:5]]
    later = [experiment(f"c{s}", seed=s, variant="proposed", jmrn=PROPOSED[s] + moved[s],
                        potion=POTION[s]) for s in range(5)]  # fmt: skip
    first, second = (earlier, later) if old_commit_first else (later, earlier)
    data = exp_show(*first, other_commit=tuple(second))
    old, new = ("abc1234", "def5678") if old_commit_first else ("def5678", "abc1234")
    out = report.build(data, baseline_params=PARAMS, by_commit=True, rev=[old, new],
                       code_of=lambda commit: {"jmrn/train.py": commit[:3]})  # fmt: skip
    assert "train.schedule" in out["differing_params"]
    (pair,) = out["pairs"]
    assert pair["keys"] == ["commit", "train.schedule"]
    assert pair["a"]["train.schedule"] == report.ABSENT and pair["b"]["train.schedule"] == "plateau"
    jmrn = pair["metrics"]["train/jmrn/test/top1"]
    assert jmrn["n"] == 5 and jmrn["mean"] == pytest.approx(0.02)
    assert 'schedule="(absent)"' in report.markdown(out)


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_stage_code_hashes_exactly_the_declared_code_dependencies(tmp_path):
    """dvc.yaml and the files under jmrn/ and stages/ it declares (directories expanded):
    a change there splits commits, a change anywhere else does not."""
    (tmp_path / "jmrn" / "readers").mkdir(parents=True)
    (tmp_path / "stages").mkdir()
    files = {"jmrn/train.py": "a = 1\n", "jmrn/readers/x.py": "b = 1\n",
             "jmrn/report.py": "c = 1\n", "stages/train.py": "d = 1\n", "README.md": "hi\n",
             "dvc.yaml": yaml.safe_dump({"stages": {
                 "train": {"foreach": ["jmrn"], "do": {"cmd": "python -m stages.train",
                           "deps": ["data/${dataset}/h.h5", "stages/train.py",
                                    "jmrn/train.py", "jmrn/readers"]}}}})}  # fmt: skip
    for path, text in files.items():
        (tmp_path / path).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")

    def commit(message):
        _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", message)
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    first = commit("one")
    code = report.stage_code(first, tmp_path)
    assert sorted(code) == ["dvc.yaml", "jmrn/readers/x.py", "jmrn/train.py", "stages/train.py"]
    (tmp_path / "README.md").write_text("docs\n")
    (tmp_path / "jmrn/report.py").write_text("c = 2\n")  # not a stage dependency
    docs = commit("docs")
    assert report.stage_code(docs, tmp_path) == code
    assert report.same_code([first, docs, docs], lambda c: report.stage_code(c, tmp_path)) \
        == [first, docs]  # fmt: skip
    (tmp_path / "jmrn/readers/x.py").write_text("b = 2\n")
    changed = commit("code")
    with pytest.raises(report.ExperimentsError, match=r"differs in \['jmrn/readers/x.py'\]"):
        report.same_code([first, changed], lambda c: report.stage_code(c, tmp_path))
    with pytest.raises(report.ExperimentsError, match="cannot read the code of commit 0000000"):
        report.stage_code("0" * 40, tmp_path)


def test_experiments_from_before_a_params_key_existed_still_read():
    """Their params.yaml lacks a key today's schema requires (clips.per_video came later):
    they are read as recorded, not refused by today's schema."""
    revs = grid()
    for rev in revs:
        params = rev["data"]["params"]["params.yaml"]["data"]
        del params["datasets"]["jhmdb14_gt"]["clips"]["per_video"]
        del params["clips"]["per_video"]
    out = build(*revs)
    assert {g["n"] for g in out["groups"]} == {5}
    assert out["differing_params"] == ["contrastive.variant"]


def test_precision_is_a_setting_of_its_own():
    """bf16 and fp32 runs of one seed are two groups paired by seed, not duplicates."""
    revs = [experiment(f"f{s}", seed=s, variant="proposed", jmrn=PROPOSED[s]) for s in range(3)]
    revs += [experiment(f"b{s}", seed=s, variant="proposed", jmrn=PROPOSED[s] + DROP[s],
                        compute__precision="bf16") for s in range(3)]  # fmt: skip
    for rev in revs[:3]:
        rev["data"]["params"]["params.yaml"]["data"]["compute"]["precision"] = "fp32"
    out = build(*revs)
    pair = out["pairs"][0]
    assert pair["differs"] == "compute.precision"
    sign = 1 if pair["b"]["compute.precision"] == "bf16" else -1  # b - a
    assert pair["metrics"]["train/jmrn/test/top1"]["mean"] == pytest.approx(
        sign * sum(DROP[:3]) / 3)  # fmt: skip
    assert pair["metrics"]["train/jmrn/test/top1"]["n"] == 3


def test_unfinished_ones_can_be_left_out_by_choice_and_are_listed():
    revs = grid()
    revs[2] = experiment("p2", seed=2, variant="proposed", jmrn=0.5, finished=False)
    out = build(*revs, skip_unfinished=True)
    assert out["left_out_unfinished"] == ["p2"]
    assert {g["n"] for g in out["groups"]} == {4, 5}


def test_a_third_setting_pairs_only_with_the_groups_one_param_away():
    revs = grid() + [experiment(f"b{s}", seed=s, variant="none", jmrn=0.5,
                                paa__beta=5) for s in range(2)]  # fmt: skip
    out = build(*revs)
    assert len(out["groups"]) == 3
    assert sorted(p["differs"] for p in out["pairs"]) == ["contrastive.variant", "paa.beta"]


def test_a_setting_of_several_keys_of_one_section_pairs_with_the_commits_setting():
    """A stronger loss (lambda and its schedule) against the default: one pair, oriented
    b = the setting; groups that differ in several sections, or where neither side is the
    commit's setting, do not pair."""
    strong = [experiment(f"s{s}", seed=s, variant="proposed", jmrn=PROPOSED[s] - 0.05,
                         contrastive__lambda=0.5, contrastive__start_epoch=0)
              for s in range(3)]  # fmt: skip
    mixed = [experiment(f"m{s}", seed=s, variant="proposed", jmrn=0.5, contrastive__lambda=0.5,
                        contrastive__start_epoch=0, paa__beta=5) for s in range(3)]  # fmt: skip
    out = report.build(exp_show(*grid(), *strong, *mixed), baseline_params=PARAMS)
    assert len(out["groups"]) == 4
    pairs = {p["differs"]: p for p in out["pairs"]}
    assert set(pairs) == {"contrastive.variant", "contrastive.lambda, contrastive.start_epoch",
                          "paa.beta"}  # fmt: skip
    pair = pairs["contrastive.lambda, contrastive.start_epoch"]
    assert pair["keys"] == ["contrastive.lambda", "contrastive.start_epoch"]
    assert pair["b"]["contrastive.lambda"] == 0.5 and pair["a"]["contrastive.lambda"] == 0.05
    stats = pair["metrics"]["train/jmrn/test/top1"]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(-0.05, abs=1e-12)
    assert pairs["paa.beta"]["a"]["contrastive.lambda"] == 0.5  # strong vs mixed: one key
    assert "| `contrastive.lambda, contrastive.start_epoch` | lambda=0.05, start_epoch=20 | " \
        "lambda=0.5, start_epoch=0 |" in report.markdown(out)  # fmt: skip
    # --recipes: the setting that spans two sections pairs with the default too, b = it
    out = report.build(exp_show(*grid(), *strong, *mixed), baseline_params=PARAMS, recipes=True)
    pairs = {p["differs"]: p for p in out["pairs"]}
    recipe = pairs["contrastive.lambda, contrastive.start_epoch, paa.beta"]
    assert recipe["b"]["paa.beta"] == 5
    assert recipe["a"]["paa.beta"] == PARAMS["datasets"]["jhmdb14_gt"]["paa"]["beta"]
    stats = recipe["metrics"]["train/jmrn/test/top1"]
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(0.5 - sum(PROPOSED[:3]) / 3, abs=1e-12)


def test_the_command_writes_markdown_csv_png_and_json(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show(*grid())))
    code = report.main(["--input", str(saved), "--out", str(tmp_path / "r"),
                        "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) >= {"groups", "pairs", "comparisons", "experiments", "command"}
    group = data["groups"][0]
    assert set(group) >= {"params", "n", "metrics"}
    assert set(group["metrics"]["train/jmrn/test/top1"]) >= {"mean", "std", "ci95"}
    assert set(data["pairs"][0]) >= {"a", "b", "differs", "n", "metrics"}
    rows = list(csv.reader((tmp_path / "r/report.csv").read_text().splitlines()))
    assert rows[0] == ["kind", "setting", "metric", "n", "mean", "std", "ci_low", "ci_high"]
    pair = next(r for r in rows if r[0] == "pair" and r[2] == "train/jmrn/test/top1")
    assert pair[1].startswith("contrastive.variant: ") and float(pair[4]) == pytest.approx(-0.02)
    text = (tmp_path / "r/report.md").read_text()
    assert "74.0 ± 3.2 [70.1, 77.9]" in text  # planted: 0.74, std 0.0316, CI ± 0.0393
    assert "-2.0 ± 0.7 [-2.9, -1.1]" in text
    assert cv2.imread(str(tmp_path / "r/report.png")) is not None
    assert "74.0 ± 3.2" in capsys.readouterr().out
    assert report.main(["--input", str(tmp_path / "missing.json")]) == 1


def test_metric_patterns_match_segment_by_segment():
    assert report.matches("train/jmrn/test/top1", "train/*/test/top1")
    assert not report.matches("train/jmrn/selection/rules/last/test/top1", "train/*/test/top1")
    assert report.matches("train/jmrn/selection/rules/last/test/top1",
                          "train/*/selection/rules/*/test/top1")
    out = build(*grid(), metrics=("train/*/test/top1",))
    assert set(out["groups"][0]["metrics"]) == {"train/jmrn/test/top1"}


def test_stale_metrics_names_each_file_the_experiments_own_run_did_not_write():
    """A dvc.lock in which only heatmaps and train@jmrn ran for this experiment: the others
    ran with another seed, other code, on another cache, or downstream of such a stage."""
    def stage(params, deps, outs):
        return {"params": {"params.yaml": params}, "deps": deps,
                "outs": [{"path": p, "md5": m} for p, m in outs]}  # fmt: skip

    dep = lambda path, md5: {"path": path, "md5": md5}  # noqa: E731
    lock = {"stages": {
        "heatmaps": stage({"dataset": "d"}, [dep("jmrn/heatmaps.py", "h1")],
                          [("data/d/heatmaps.h5", "H"), ("metrics/d/heatmaps.json", "x")]),
        "train@jmrn": stage({"train": {"seed": 1}}, [dep("data/d/heatmaps.h5", "H"),
                                                     dep("jmrn/train.py", "t1"),
                                                     dep("jmrn/skeletons", "s.dir")],
                            [("metrics/d/train/jmrn.json", "x")]),
        "train@potion": stage({"train": {"seed": 0}}, [dep("data/d/heatmaps.h5", "H")],
                              [("models/d/potion.pt", "P"), ("metrics/d/train/potion.json", "x")]),
        "logits@potion": stage({}, [dep("models/d/potion.pt", "P")], [("data/d/potion.h5", "L")]),
        "fusion": stage({}, [dep("data/d/potion.h5", "L")], [("metrics/d/fusion.json", "x")]),
        "clip_train": stage({"train": {"seed": 1}}, [dep("jmrn/train.py", "t0")],
                            [("metrics/d/clips/train.json", "x")]),
        "clip_select": stage({"train": {"seed": 1}}, [dep("data/d/heatmaps.h5", "OLD")],
                             [("metrics/d/clips/selection.json", "x")]),
    }}  # fmt: skip
    params = {"dataset": "d", "train": {"seed": 1}}
    code = {"jmrn/heatmaps.py": "h1", "jmrn/train.py": "t1"}
    paths = ["metrics/d/heatmaps.json", "metrics/d/train/jmrn.json",
             "metrics/d/train/potion.json", "metrics/d/fusion.json", "metrics/d/clips/train.json",
             "metrics/d/clips/selection.json", "metrics/d/extra.json"]  # fmt: skip
    stale = experiments.stale_metrics(lock, params, code, paths)
    assert sorted(stale) == sorted(paths[2:])
    assert stale["metrics/d/train/potion.json"] == \
        "train@potion ran with train.seed = 0, the experiment has 1"
    assert "data/d/potion.h5, which is not the experiment's own" in stale["metrics/d/fusion.json"]
    assert "another jmrn/train.py" in stale["metrics/d/clips/train.json"]
    assert "on another data/d/heatmaps.h5 than heatmaps wrote" in \
        stale["metrics/d/clips/selection.json"]  # fmt: skip
    assert "no stage" in stale["metrics/d/extra.json"]


def test_metrics_of_a_stage_the_experiment_did_not_run_are_left_out_and_listed(monkeypatch):
    """JMRN-only experiments (`... train@jmrn`) carry the baseline's PoTion metrics (planted
    0.99), written with seed 0: only seed 0's is its own; the others would be four more
    "seeds" of one value."""
    revs = grid()
    for e in revs[5:]:
        e["data"]["metrics"]["metrics/jhmdb14_gt/train/potion.json"] = {"data": {
            "model": "potion", "finished": True, "test": {"top1": 0.99}}}

    def baseline_potion(e):
        ran = own_lock(e)
        potion = ran["lock"]["stages"].get("metrics/jhmdb14_gt/train/potion.json")
        if potion is not None and e["params"]["contrastive"]["variant"] == "none":
            potion["params"]["params.yaml"]["train"] = {**e["params"]["train"], "seed": 0}
        return ran

    monkeypatch.setattr(report, "lock_from_git", baseline_potion)
    out = build(*revs)
    none = next(g for g in out["groups"] if g["params"]["contrastive.variant"] == "none")
    assert none["metrics"]["train/potion/test/top1"]["values"] == [0.99]
    assert sorted(out["left_out_not_their_own"]) == ["n1", "n2", "n3", "n4"]
    assert "train@potion" not in out["left_out_not_their_own"]["n1"]  # a path, then why
    assert out["left_out_not_their_own"]["n1"]["metrics/jhmdb14_gt/train/potion.json"] == \
        "metrics/jhmdb14_gt/train/potion.json ran with train.seed = 0, the experiment has 1"
    within = next(c for c in out["comparisons"] if c["params"]["contrastive.variant"] == "none"
                  and c["a"] == "train/potion/test/top1")  # fmt: skip
    assert within["n"] == 1
    assert "Left out: 4 metrics file(s) of 4 experiment(s)" in report.markdown(out)


def test_an_experiments_lock_and_code_are_read_from_its_commit(tmp_path):
    import hashlib

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip

    git("init", "-q")
    (tmp_path / "jmrn").mkdir()
    (tmp_path / "jmrn/train.py").write_bytes(b"print('v1')\n")
    (tmp_path / "jmrn/notes.txt").write_bytes(b"")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  s:\n    cmd: x\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    (tmp_path / "jmrn/train.py").write_bytes(b"print('v2')\n")
    (tmp_path / "dvc.lock").unlink()
    git("commit", "-qam", "two")
    ran = experiments.experiment_lock(first, tmp_path)
    assert ran["lock"]["stages"] == {"s": {"cmd": "x"}}
    assert ran["code"] == {"jmrn/train.py": hashlib.md5(b"print('v1')\n").hexdigest(),
                           "jmrn/notes.txt": hashlib.md5(b"").hexdigest()}  # fmt: skip
    later = experiments.experiment_lock(git("rev-parse", "HEAD"), tmp_path)
    assert later["lock"] == {}  # no dvc.lock: nothing is the experiment's own
    assert later["code"]["jmrn/train.py"] == hashlib.md5(b"print('v2')\n").hexdigest()
    with pytest.raises(report.ExperimentsError, match="git ls-tree failed"):
        experiments.experiment_lock("0" * 40, tmp_path)


def test_a_comparison_may_take_its_b_from_another_setting_of_the_same_seeds():
    """JMRN without the loss (its own group) against PoTion + PAA of the default group, paired
    by seed: the planted JMRN - drop - PoTion."""
    compare = [("train/potion/test/top1", "train/jmrn/test/top1@contrastive.variant=none")]
    out = build(*grid(), compare=compare)
    (c,) = out["comparisons"]
    assert c["params"] == {"contrastive.variant": "proposed"}
    assert c["b_params"] == {"contrastive.variant": "none"}
    assert c["values"] == pytest.approx([PROPOSED[s] - DROP[s] - POTION[s] for s in range(5)])
    assert "`train/jmrn/test/top1@contrastive.variant=none`" in report.markdown(out)
    with pytest.raises(report.ExperimentsError, match="paa.beta is not a param the"):
        build(*grid(), compare=[("train/potion/test/top1", "train/jmrn/test/top1@paa.beta=4")])
    with pytest.raises(report.ExperimentsError, match="write metric@key=value"):
        build(*grid(), compare=[("train/potion/test/top1", "train/jmrn/test/top1@none")])
