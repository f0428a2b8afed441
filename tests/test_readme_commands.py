"""Every ```bash block of README.md and docs/*.md works as written.

Each block is checked in one or both of two ways.

Run for real, in document order (README.md, then docs/*.md by name), in a copy of the working
tree laid out as a fresh clone next to ``../shared`` (tracked and untracked, not ignored
files; no data, models or virtual environment), when the line above the block's fence is

    <!-- readme-test: run -->            run it
    <!-- readme-test: run if PATH -->    run it if PATH (relative to the repository root, e.g.
                                         ../shared/data/jhmdb14_gt) exists, else skip it

Mark only blocks that take seconds and need no network. Blocks without a marker are not run.

Checked statically, every command of every block, marked or not, so that a typo fails:

* ``dvc ...`` parses with DVC's own argument parser; the targets of ``dvc repro`` and ``dvc
  exp run`` are stages of dvc.yaml (``train@jmrn``, or the group ``train``); each ``-S
  key=value`` is applied to params.yaml by DVC's own override code, one command at a time,
  and the result must pass ``jmrn.config.load_params``. A comma list (``-S paa.beta=2,4``)
  is a sweep: every value must be valid, and DVC accepts a sweep only with ``--queue``.
* ``python script.py ARGS`` / ``python -m module ARGS``: the script or module exists, ``...
  ARGS --help`` exits 0 (argparse rejects a bad choice or type before it reaches --help), and
  every option in ARGS is one that --help lists (the --help runs share one interpreter, in
  the copy, so torch is imported once). ``python -c CODE`` and ``python -`` fed by a heredoc
  compile.
* ``pip install``: ``-e`` names this project and its extras, and a pinned requirement is one
  the project accepts.
* Any other program is a shell builtin, on PATH, or a documented external tool
  (``EXTERNAL_TOOLS``).
* Every word naming a file under the code folders (``CODE_FOLDERS``) exists.

The shell parsing is deliberately small: one logical line at a time (backslash continuations
joined, heredoc bodies attached to their command), quotes, ``$(...)``/``${...}`` and
comments understood, commands split at ``&& || ; | & ( )``, redirections and their targets
dropped, ``for`` headers skipped. The ffprobe recipe of docs/datasets.md is run with a
stand-in ffprobe by its own test below.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

from jmrn.config import ParamsError, load_params

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
CODE_FOLDERS = ("jmrn/", "stages/", "bench/", "tests/", "docs/")
EXTERNAL_TOOLS = {"ffprobe": "docs/datasets.md: measures each video's frame size"}
BUILTINS = {".", "cd", "echo", "export", "printf", "set", "source", "test", "true", "false"}
KEYWORDS = {"{", "}", "do", "done", "then", "else", "fi", "!", "time", "if", "while", "until"}
OPERATORS = ("&&", "||", ">>", ";", "|", "&", "(", ")", ">", "<")
REDIRECTS = {">", ">>", "<"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```bash[ \t]*$")
MARKER = re.compile(r"<!--\s*readme-test:\s*run(?:\s+if\s+(?P<path>\S+))?\s*-->")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


# ------------------------------------------------------------------------- parsing


@dataclass
class Block:
    """One ```bash block: where it is, its text, and its run marker."""

    doc: Path
    line: int
    text: str
    run: bool
    run_if: str | None

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(PROJECT_ROOT)}:{self.line}"


@dataclass
class Command:
    """One simple command: its words (quotes removed) and the heredoc fed to it, if any."""

    block: Block
    words: list[str]
    heredoc: str | None = None

    @property
    def name(self) -> str:
        return f"{self.block.name}: {' '.join(self.words)[:70]}"


def find_blocks(doc: Path, text: str | None = None) -> list[Block]:
    """The ```bash blocks of a Markdown file, with the marker on the line above each."""
    lines = (doc.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        indent = len(fence["indent"])
        body = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(above)
        blocks.append(Block(doc, i + 2, body, marker is not None,
                            marker["path"] if marker else None))  # fmt: skip
        i = end + 1
    return blocks


def _end_of_double_quotes(text: str, i: int) -> int:
    """Index of the '"' closing a string that starts at i ($(...) inside may hold quotes)."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith("$(", i):
            i = _matching(text, i + 1)
        elif text[i] == '"':
            return i
        i += 1
    raise ValueError(f"unterminated double quote in {text!r}")


def _matching(text: str, i: int) -> int:
    """Index of the bracket closing the '(' or '{' at i, skipping quoted text."""
    opening = text[i]
    closing = {"(": ")", "{": "}"}[opening]
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "'":
            j = text.index("'", j + 1)
        elif c == '"':
            j = _end_of_double_quotes(text, j + 1)
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError(f"unbalanced {opening!r} in {text!r}")


def split_words(text: str) -> list[tuple[str, str]]:
    """The ("word", text) and ("op", operator) tokens of one logical shell line."""
    tokens: list[tuple[str, str]] = []
    word: list[str] = []
    in_word, i = False, 0

    def flush() -> None:
        nonlocal word, in_word
        if in_word:
            tokens.append(("word", "".join(word)))
        word, in_word = [], False

    while i < len(text):
        c = text[i]
        if c in " \t":
            flush()
            i += 1
        elif c == "#" and not in_word:
            break
        elif c == "\\" and i + 1 < len(text):
            word.append(text[i + 1])
            in_word, i = True, i + 2
        elif c == "'":
            j = text.index("'", i + 1)
            word.append(text[i + 1:j])
            in_word, i = True, j + 1
        elif c == '"':
            j = _end_of_double_quotes(text, i + 1)
            word.append(text[i + 1:j])
            in_word, i = True, j + 1
        elif text.startswith("$(", i) or text.startswith("${", i):
            j = _matching(text, i + 1)
            word.append(text[i:j + 1])
            in_word, i = True, j + 1
        else:
            op = next((o for o in OPERATORS if text.startswith(o, i)), None)
            if op is None:
                word.append(c)
                in_word, i = True, i + 1
            else:
                flush()
                tokens.append(("op", op))
                i += len(op)
    flush()
    return tokens


def logical_lines(text: str) -> list[tuple[str, str | None]]:
    """Lines with backslash continuations joined, each with the heredoc body it opens."""
    lines, out, i, pending = text.splitlines(), [], 0, ""
    while i < len(lines):
        line, i = pending + lines[i], i + 1
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending, body = "", None
        heredoc = HEREDOC.search(line)
        if heredoc:
            end = lines.index(heredoc[2], i)
            body = "\n".join(lines[i:end]) + "\n"
            line, i = line[:heredoc.start()] + line[heredoc.end():], end + 1
        out.append((line, body))
    return out


def commands_of(block: Block) -> list[Command]:
    """The simple commands of a block, keywords, assignments and redirections removed."""
    commands = []
    for line, heredoc in logical_lines(block.text):
        segment: list[str] = []
        tokens = split_words(line) + [("op", ";")]
        skip_next = False
        for kind, text in tokens:
            if skip_next:
                skip_next = False
                continue
            if kind == "op" and text in REDIRECTS:
                skip_next = True
                continue
            if kind == "word":
                segment.append(text)
                continue
            while segment and segment[0] in KEYWORDS:
                segment.pop(0)
            if segment and segment[0] in ("for", "case", "select"):
                segment = []
            while segment and ASSIGNMENT.match(segment[0]):
                segment.pop(0)
            if segment:
                commands.append(Command(block, segment, heredoc))
            segment = []
    return commands


BLOCKS = [block for doc in DOCUMENTS for block in find_blocks(doc)]
COMMANDS = [command for block in BLOCKS for command in commands_of(block)]


def program(command: Command) -> str:
    return command.words[0]


def _ids(items) -> list[str]:
    return [item.name for item in items]


# ------------------------------------------------------------------------- static checks


def stage_names() -> set[str]:
    """Every target name dvc.yaml defines: stages, foreach groups and their name@item."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    names = set(stages)
    for name, stage in stages.items():
        items = stage.get("foreach") if isinstance(stage, dict) else None
        if isinstance(items, list | dict):
            names |= {f"{name}@{item}" for item in items}
    return names


@functools.cache
def check_params_overrides(overrides: tuple[str, ...], queued: bool) -> tuple[str, ...]:
    """Apply ``-S`` values to params.yaml as DVC does (each sweep separately) and validate
    each result with jmrn's loader."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps, to_hydra_overrides

    by_file = to_path_overrides(overrides)
    if set(by_file) != {"params.yaml"}:
        return (f"-S names another params file: {sorted(by_file)}",)
    try:
        sweep = any(o.is_sweep_override() for o in to_hydra_overrides(by_file["params.yaml"]))
        sweeps = get_hydra_sweeps(by_file) if sweep else [by_file]
    except Exception as err:  # hydra's grammar errors
        return (f"-S {list(overrides)}: {err}",)
    if sweep and not queued:
        return (f"-S {list(overrides)} is a sweep, which dvc exp run accepts only with --queue",)
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "params.yaml"
        for values in (s["params.yaml"] for s in sweeps):
            shutil.copy(PROJECT_ROOT / "params.yaml", copy)
            try:
                apply_overrides(copy, values)
                load_params(copy)
            except ParamsError as err:
                problems.append(f"-S {values}: {err}")
            except Exception as err:  # DVC's own rejection, e.g. a key params.yaml lacks
                cause = f" ({err.__cause__})" if err.__cause__ else ""
                problems.append(f"-S {values}: {err}{cause}")
    return tuple(problems)


def check_dvc(words: list[str]) -> list[str]:
    """A dvc command line: DVC's parser, its stage targets and its -S params."""
    from dvc.cli import DvcParserError, parse_args

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parse_args(words[1:])
    except (SystemExit, DvcParserError):
        return [f"dvc rejects {' '.join(words)!r}: {err.getvalue().strip()[-300:]}"]
    sub = [w for w in words[1:3] if not w.startswith("-")]
    if sub[:1] != ["repro"] and sub[:2] not in (["exp", "run"], ["experiments", "run"]):
        return []
    known = stage_names()
    problems = [f"{target!r} is not a stage of dvc.yaml (stages: {sorted(known)})"
                for target in args.targets or []
                if target.split(":")[-1] not in known and target != "dvc.yaml"]  # fmt: skip
    if getattr(args, "set_param", None):
        problems += check_params_overrides(tuple(args.set_param), bool(args.queue))
    return problems


def python_invocation(command: Command) -> tuple[str, list[str]] | None:
    """("script" | "module" | "code", target) and the arguments after it, or None."""
    words = command.words[1:]
    if words[:1] == ["-m"] and len(words) > 1:
        return ("module", words[1:])
    if words[:1] == ["-c"] and len(words) > 1:
        return ("code", words[1:])
    if words[:1] == ["-"]:
        return ("stdin", words)
    return ("script", words) if words else None


def check_python_statically(command: Command) -> list[str]:
    """What can be checked without running: the code compiles, the script exists."""
    kind, args = python_invocation(command) or ("", [])
    try:
        if kind == "code":
            compile(args[1], "<python -c>", "exec")
        elif kind == "stdin":
            if command.heredoc is None:
                return ["`python -` without a heredoc to read"]
            compile(command.heredoc, "<heredoc>", "exec")
    except SyntaxError as err:
        return [f"the Python code does not compile: {err}"]
    if kind == "script" and not (PROJECT_ROOT / args[0]).is_file():
        return [f"no script {args[0]}"]
    return []


def help_command(command: Command) -> list[str] | None:
    """[kind, script or module, *args, "--help"] for a python script or module command."""
    if program(command) not in ("python", "python3"):
        return None
    kind, args = python_invocation(command) or ("", [])
    if kind == "module" or (kind == "script" and (PROJECT_ROOT / args[0]).is_file()):
        return [kind, *args, "--help"]
    return None


# Runs each [kind, target, *args] as ``python target args`` would, in one interpreter (one
# torch import instead of one per command), and prints each one's exit code and output.
HELP_WORKER = r"""
import contextlib, io, json, os, runpy, sys
results = []
for kind, target, *args in json.load(sys.stdin):
    out, saved, code = io.StringIO(), list(sys.path), None
    sys.argv = [target, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
                runpy.run_path(target, run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except Exception as err:
        code, _ = 1, out.write(f"{type(err).__name__}: {err}")
    sys.path[:] = saved
    results.append({"code": code, "output": out.getvalue()})
print(json.dumps(results))
"""


def options_missing_from_help(argv: list[str], help_text: str) -> list[str]:
    """The options of a command line that its --help does not list."""
    options = [a.split("=")[0] for a in argv[2:-1]
               if a.startswith("-") and not re.fullmatch(r"-\d[\d.e-]*", a)]  # fmt: skip
    return [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", help_text)]


def check_pip(words: list[str]) -> list[str]:
    """``pip install``: -e names this project and existing extras; pins are accepted."""
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    deps = {Requirement(d).name: Requirement(d).specifier for d in project["dependencies"]}
    extras = set(project.get("optional-dependencies", {}))
    problems, args, i = [], words[2:], 0
    while i < len(args):
        arg = args[i]
        if arg == "-e":
            target = re.fullmatch(r"(?P<path>[^\[]+)(?:\[(?P<extras>[^\]]*)\])?", args[i + 1])
            if not (PROJECT_ROOT / target["path"] / "pyproject.toml").is_file():
                problems.append(f"pip install -e {args[i + 1]}: no project there")
            wanted = set(filter(None, (target["extras"] or "").split(",")))
            if wanted - extras:
                problems.append(f"pip install: no extra(s) {sorted(wanted - extras)} in "
                                f"pyproject.toml (it has {sorted(extras)})")  # fmt: skip
            i += 2
            continue
        if not arg.startswith("-"):
            req = Requirement(arg)
            pins = [s.version for s in req.specifier if s.operator == "=="]
            if req.name in deps and pins and pins[0] not in deps[req.name]:
                problems.append(f"pip install {arg}: the project requires "
                                f"{req.name}{deps[req.name]}")  # fmt: skip
        i += 1
    return problems


def check_program(command: Command) -> list[str]:
    """Programs other than dvc, python and pip: a builtin, on PATH, or documented."""
    name = program(command)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    if name in BUILTINS or name in EXTERNAL_TOOLS or shutil.which(name, path=path):
        return []
    return [f"program {name!r} is neither a shell builtin, on PATH, nor in EXTERNAL_TOOLS"]


def check_paths(command: Command) -> list[str]:
    """Words naming a file under the code folders name one that exists."""
    return [f"{word} does not exist" for word in command.words
            if word.startswith(CODE_FOLDERS) and "*" not in word
            and not (PROJECT_ROOT / word).exists()]  # fmt: skip


def static_problems(command: Command) -> list[str]:
    name = program(command)
    problems = check_paths(command)
    if name == "dvc":
        problems += check_dvc(command.words)
    elif name in ("python", "python3"):
        problems += check_python_statically(command)
    elif name == "pip":
        problems += check_pip(command.words) if command.words[1:2] == ["install"] else []
    else:
        problems += check_program(command)
    return problems


# ------------------------------------------------------------------------- the copy


def copy_working_tree(dest: Path) -> None:
    """What a fresh clone holds, uncommitted edits included: tracked and untracked files
    that git does not ignore (``git clone`` would copy commits only)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        src = PROJECT_ROOT / name
        if src.is_file():  # skips files deleted in the working tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def project_env(root: Path, extra_path: str = "") -> dict:
    """This interpreter's scripts on PATH and the copy's package first, as an activated venv."""
    path = f"{extra_path}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ, PATH=path, PYTHONPATH=str(root))


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the working tree at <tmp>/main, with <tmp>/shared standing for ../shared."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the working tree")
    top = tmp_path_factory.mktemp("fresh")
    copy_working_tree(top / "main")
    shared = PROJECT_ROOT.parent / "shared"
    if shared.is_dir():
        (top / "shared").symlink_to(shared, target_is_directory=True)
    return top / "main"


@pytest.fixture(scope="module")
def ran(clone) -> dict[str, subprocess.CompletedProcess | str]:
    """Every run-marked block, in document order, in the copy: the result, or why skipped."""
    results: dict[str, subprocess.CompletedProcess | str] = {}
    for block in BLOCKS:
        if not block.run:
            continue
        if block.run_if and not (clone / block.run_if).exists():
            results[block.name] = f"{block.run_if} does not exist"
            continue
        results[block.name] = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text], cwd=clone, env=project_env(clone),
            capture_output=True, text=True, timeout=120)  # fmt: skip
    return results


@pytest.fixture(scope="module")
def helps(clone) -> dict[tuple[str, ...], dict]:
    """``... ARGS --help`` of every python script and module command, run in the copy (plus
    one with a planted typo, for the test that the check can fail): code and output."""
    argvs = sorted({tuple(a) for c in COMMANDS if (a := help_command(c))} | {tuple(TYPO_HELP)})
    proc = subprocess.run([sys.executable, "-c", HELP_WORKER], input=json.dumps(argvs),
                          cwd=clone, env=project_env(clone), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(zip(argvs, json.loads(proc.stdout.splitlines()[-1]), strict=True))


TYPO_HELP = ["module", "jmrn.all_splits", "--models", "jmrm", "--help"]


# ------------------------------------------------------------------------- tests


def test_the_blocks_and_commands_are_found():
    """The parser sees the README's commands (an empty list would make every test vacuous)."""
    names = {c.block.doc.name for c in COMMANDS}
    assert {"README.md", "datasets.md", "results.md"} <= names
    words = [" ".join(c.words) for c in COMMANDS]
    assert any(w.startswith("dvc exp run -S dataset=jhmdb14_gt") for w in words)
    assert any(w.startswith("ln -sfn $PWD/../shared/data/jhmdb14_gt") for w in words)
    assert any(c.heredoc and "load_pickle" in c.heredoc for c in COMMANDS)
    assert sum(b.run for b in BLOCKS) >= 2
    # the ffprobe loop is parsed into its commands, not mistaken for one
    ffprobe = next(b for b in BLOCKS if "ffprobe" in b.text)
    assert [program(c) for c in commands_of(ffprobe)] == ["mkdir", "echo", "echo"]


def test_every_block_is_valid_bash():
    for block in BLOCKS:
        proc = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert proc.returncode == 0, f"{block.name}: {proc.stderr}"


@pytest.mark.parametrize("command", COMMANDS, ids=_ids(COMMANDS))
def test_command_is_valid(command):
    problems = static_problems(command)
    assert problems == [], f"{command.name}: {problems}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if help_command(c)],
                         ids=_ids([c for c in COMMANDS if help_command(c)]))  # fmt: skip
def test_python_command_accepts_its_arguments_and_help(command, helps):
    argv = help_command(command)
    result = helps[tuple(argv)]
    assert result["code"] == 0 and "usage:" in result["output"], f"{command.name}: {result}"
    missing = options_missing_from_help(argv, result["output"])
    assert missing == [], f"{command.name}: options not in --help: {missing}"


RUN_BLOCKS = [block for block in BLOCKS if block.run]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=_ids(RUN_BLOCKS))
def test_run_block_works_in_a_fresh_copy(block, ran):
    result = ran[block.name]
    if isinstance(result, str):
        pytest.skip(result)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"


def test_the_jhmdb14_gt_link_reaches_the_presets_files(clone, ran):
    """The Quickstart's link, made in a copy without data/raw, gives the preset its files."""
    if not (clone / "../shared/data/jhmdb14_gt").exists():
        pytest.skip("../shared/data is not present")
    block = load_params(clone / "params.yaml")["datasets"]["jhmdb14_gt"]
    raw = clone / block["raw_dir"]
    assert raw.is_symlink() and (raw / block["source"]["file"]).is_file()
    assert (clone / block["source"]["class_names"]).is_file()


def test_the_smoke_test_data_passes_ingest(clone, ran):
    """The README's 3-video copy, with the smoke command's own -S values, goes through the
    real ingest stage: 3 videos kept, 2 training and 1 test, one class."""
    if not (clone / "../shared/data/jhmdb14_gt").exists():
        pytest.skip("../shared/data is not present")
    from dvc.cli import parse_args
    from dvc.utils.hydra import apply_overrides

    smoke = next(c for c in COMMANDS if program(c) == "dvc" and "jhmdb14_gt_smoke" in str(c.words))
    params = clone / "params.yaml"
    original = params.read_text()
    try:
        apply_overrides(params, parse_args(smoke.words[1:]).set_param)
        proc = subprocess.run([sys.executable, "stages/ingest.py"], cwd=clone,
                              env=project_env(clone), capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = yaml.safe_load((clone / "reports/jhmdb14_gt/ingest.json").read_text())
    finally:
        params.write_text(original)
    assert report["kept"] == report["videos_read"] == 3
    assert report["splits"] == {"train1": 2, "test1": 1} and report["classes"] == 1


def test_the_ffprobe_recipe_writes_a_table_the_reader_reads(tmp_path):
    """docs/datasets.md's loop with a stand-in ffprobe that answers as the real one does for
    these options: the table it writes gives each video's (height, width)."""
    from jmrn.readers.common import read_frame_sizes

    block = next(b for b in BLOCKS if "ffprobe" in b.text)
    videos, out = tmp_path / "videos", tmp_path / "raw/hmdb/frame_sizes.csv"
    for name in ("brush_hair/a_clip.avi", "clap/b_clip.avi"):
        (videos / name).parent.mkdir(parents=True)
        (videos / name).touch()
    script, n_videos = re.subn(r"(?m)^VIDEOS=\S+", f"VIDEOS={videos}", block.text)
    script, n_out = re.subn(r"(?m)^OUT=\S+", f"OUT={out}", script)
    assert n_videos == n_out == 1, "the recipe no longer sets VIDEOS= and OUT= on lines of its own"
    fake = tmp_path / "bin/ffprobe"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *"stream=width,height -of csv=p=0"*) ;; *) exit 3;; esac\n'
                    'for f; do :; done\n'
                    'case "$f" in *a_clip.avi) echo 320,240;; *b_clip.avi) printf "640,480\\n'
                    '640,480\\n";; *) exit 4;; esac\n')  # fmt: skip
    fake.chmod(0o755)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                          env=project_env(PROJECT_ROOT, f"{fake.parent}{os.pathsep}"),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_frame_sizes(out) == {"a_clip": (240, 320), "b_clip": (480, 640)}


def test_the_static_checks_catch_typos(helps):
    """Each check fails on a planted mistake (a check that cannot fail protects nothing)."""
    block = Block(PROJECT_ROOT / "README.md", 0, "", False, None)

    def problems(line: str) -> list[str]:
        return static_problems(Command(block, [w for _, w in split_words(line)]))

    assert problems("dvc exp run -S paa.beta=6 train@jmrn") == []
    assert "Could not override 'paa.betta'" in str(problems("dvc exp run -S paa.betta=6"))
    assert "did you mean paa.beta" in str(problems("dvc exp run -S +paa.betta=6"))
    assert "paa.beta = -1" in str(problems("dvc exp run -S paa.beta=-1"))
    assert "not a stage of dvc.yaml" in str(problems("dvc exp run train@jmnr"))
    assert "dvc rejects" in str(problems("dvc exp run --qeue"))
    assert "only with --queue" in str(problems("dvc exp run -S paa.beta=2,4"))
    assert problems("dvc exp run --queue -S paa.beta=2,4") == []
    assert "paa.type" in str(problems("dvc exp run --queue -S paa.type=global,glbal"))
    assert "no script bench/seed.py" in str(problems("python bench/seed.py --seeds 0"))
    assert "does not exist" in str(problems("ruff check stages/trian.py"))
    assert "no extra(s) ['tests']" in str(problems('pip install -e ".[tests]"'))
    assert "requires torch>=2.1" in str(problems("pip install torch==2.0.0 -e ."))
    assert "neither a shell builtin" in str(problems("dcv repro"))
    assert helps[tuple(TYPO_HELP)]["code"] == 2  # argparse: invalid choice 'jmrm'
    assert options_missing_from_help(["script", "x.py", "--sead", "0", "--help"],
                                     "usage: x.py [--seeds SEEDS]") == ["--sead"]  # fmt: skip
