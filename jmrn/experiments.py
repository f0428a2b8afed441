"""What the DVC experiments of a grid ran, read from git: the code of their stages, and which of
their metrics files their own run wrote (issue 23). ``jmrn.report`` and ``jmrn.sweep`` use it.

* **Code.** ``stage_code`` hashes dvc.yaml and every ``jmrn/`` and ``stages/`` file it declares,
  so experiments of several commits are pooled only where their stages' code is the same
  (``same_code``).
* **Metrics an experiment did not produce.** ``dvc exp run --queue ... train@jmrn`` runs only
  what its target needs; every other file of the experiment's commit, metrics files included,
  is the one its baseline commit holds. Such a file is another run's figure: in a grid of
  seeds it would enter a group as one more seed of the same value, a silently wrong mean and
  a too narrow interval. ``stale_metrics`` finds them in the experiment's own dvc.lock, as
  ``dvc status`` would: a metrics file is the experiment's own when the stage that wrote it
  ran with the experiment's params, with its commit's code (the ``jmrn/`` and ``stages/``
  files the stage declares; folders are not checked), and on the outputs that the stages
  upstream of it in the same lock wrote, which must be the experiment's own in turn.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # dvc.lock: ~1,400 lines


class ExperimentsError(ValueError):
    """The experiments cannot be summarised as asked: the message says why and what to do."""


def stage_code(commit: str, repo: Path | str = ".") -> dict[str, str]:
    """Git's blob hash of dvc.yaml and of every file under ``jmrn/`` or ``stages/`` that
    dvc.yaml declares as a stage dependency (directories expanded), at ``commit``: the code
    that produced an experiment's metrics."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        if done.returncode != 0:
            raise ExperimentsError(f"cannot read the code of commit {commit[:7]} with git "
                                   f"({done.stderr.strip() or 'git failed'}): pick one "
                                   "commit with --rev")  # fmt: skip
        return done.stdout

    stages = (yaml.safe_load(git("show", f"{commit}:dvc.yaml")) or {}).get("stages") or {}
    paths = set()
    for stage in stages.values():
        for dep in (stage.get("do", stage) or {}).get("deps") or []:
            path = dep if isinstance(dep, str) else next(iter(dep))
            if path.startswith(("jmrn/", "stages/")) and "${" not in path:
                paths.add(path.rstrip("/"))
    code = {"dvc.yaml": git("rev-parse", f"{commit}:dvc.yaml").strip()}
    for line in git("ls-tree", "-r", commit, "--", *sorted(paths)).splitlines():
        meta, path = line.split("\t", 1)
        code[path] = meta.split()[2]
    return code


def same_code(commits: list[str], code_of=stage_code) -> list[str]:
    """The distinct commits of ``commits`` (one per experiment), oldest name first as given;
    an error naming the files where their stages' code differs."""
    found = list(dict.fromkeys(commits))
    if len(found) == 1:
        return found
    first = code_of(found[0])
    for other in found[1:]:
        code = code_of(other)
        differ = sorted(p for p in first.keys() | code.keys() if first.get(p) != code.get(p))
        if differ:
            counts = {c[:7]: commits.count(c) for c in found}
            raise ExperimentsError(f"the experiments were run from {len(found)} commits "
                                   f"(experiments per commit: {counts}), and the stages' "
                                   f"code of {found[0][:7]} and {other[:7]} differs in "
                                   f"{differ[:4]}{' ...' if len(differ) > 4 else ''}; pick "
                                   f"one commit with --rev (e.g. --rev "
                                   f"{found[-1][:7]})")  # fmt: skip
    return found


def _git(repo: Path | str, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, input=stdin)
    if done.returncode != 0:
        raise ExperimentsError(f"git {args[0]} failed in {repo}: "
                               f"{done.stderr.decode(errors='replace').strip()}")  # fmt: skip
    return done.stdout


_MD5_OF_BLOB: dict[str, str] = {}


def experiment_lock(rev: str, repo: Path | str = ".") -> dict[str, Any]:
    """An experiment's dvc.lock (``lock``; {} where its commit has none) and the md5 of every
    file under ``jmrn/`` and ``stages/`` of its commit (``code``), as dvc.lock records them."""
    try:
        lock = yaml.load(_git(repo, "show", f"{rev}:dvc.lock"), Loader=_SAFE_LOADER) or {}
    except ExperimentsError:
        lock = {}
    listing = _git(repo, "ls-tree", "-r", rev, "--", "jmrn", "stages").decode().splitlines()
    blobs = {}
    for line in listing:
        meta, path = line.split("\t", 1)
        blobs[path] = meta.split()[2]
    missing = sorted(set(blobs.values()) - _MD5_OF_BLOB.keys())
    if missing:  # one git process for all of them: --batch prints "<sha> blob <size>\n<bytes>\n"
        out = _git(repo, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in missing).encode())
        at = 0
        for blob in missing:
            end = out.index(b"\n", at)
            size = int(out[at:end].split()[2])
            _MD5_OF_BLOB[blob] = hashlib.md5(out[end + 1:end + 1 + size]).hexdigest()
            at = end + 1 + size + 1
    return {"lock": lock, "code": {path: _MD5_OF_BLOB[b] for path, b in blobs.items()}}


def lock_from_git(experiment: dict) -> dict[str, Any]:
    """``experiment_lock`` of an experiment as ``jmrn.report`` and ``jmrn.sweep`` list it."""
    return experiment_lock(experiment["rev"])


_ABSENT = object()


def _lookup(params: dict, dotted: str) -> Any:
    """The value at ``a.b.c`` of params.yaml (``_ABSENT`` where there is none)."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _shown(value: Any) -> str:
    return "no such key" if value is _ABSENT else json.dumps(value)[:60]


def _first_difference(key: str, ran: Any, have: Any) -> tuple[str, Any, Any]:
    """Where a section differs, its first differing key: train.seed, not the whole section."""
    if isinstance(ran, dict) and isinstance(have, dict):
        for sub in sorted(ran.keys() | have.keys()):
            a, b = ran.get(sub, _ABSENT), have.get(sub, _ABSENT)
            if not _same(a, b):
                return _first_difference(f"{key}.{sub}", a, b)
    return key, ran, have


def stale_metrics(lock: dict, params: dict, code: dict[str, str],
                  paths: list[str]) -> dict[str, str]:  # fmt: skip
    """Of the metrics files ``paths``, those the experiment did not produce, each with why:
    ``lock`` is its dvc.lock, ``params`` its params.yaml and ``code`` the md5 of its commit's
    ``jmrn/`` and ``stages/`` files (``experiment_lock``)."""
    stages = lock.get("stages") or {}
    writer = {out["path"]: name for name, stage in stages.items()
              for out in stage.get("outs") or []}  # fmt: skip
    written = {out["path"]: out.get("md5") for stage in stages.values()
               for out in stage.get("outs") or []}  # fmt: skip
    why: dict[str, str] = {}
    for name, stage in stages.items():
        for key, value in ((stage.get("params") or {}).get("params.yaml") or {}).items():
            have = _lookup(params, key)
            if not _same(value, have):
                key, value, have = _first_difference(key, value, have)
                why[name] = (f"{name} ran with {key} = {_shown(value)}, the experiment has "
                             f"{_shown(have)}")  # fmt: skip
                break
        if name in why:
            continue
        for dep in stage.get("deps") or []:
            path, md5 = dep["path"], dep.get("md5", "")
            if path.startswith(("jmrn/", "stages/")) and not md5.endswith(".dir"):
                if code.get(path) != md5:
                    why[name] = f"{name} ran with another {path} than the experiment's commit"
                    break
            elif path in written and written[path] != md5:
                why[name] = f"{name} ran on another {path} than {writer[path]} wrote"
                break
    changed = True
    while changed:  # upstream of a stage that is not the experiment's own: neither is it
        changed = False
        for name, stage in stages.items():
            if name in why:
                continue
            for dep in stage.get("deps") or []:
                upstream = writer.get(dep["path"])
                if upstream in why and upstream != name:
                    why[name] = f"{name} ran on {dep['path']}, which is not the experiment's own"
                    changed = True
                    break
    stale = {}
    for path in paths:
        if path not in writer:
            stale[path] = "no stage of the experiment's dvc.lock wrote it"
        elif writer[path] in why:
            stale[path] = why[writer[path]]
    return stale
