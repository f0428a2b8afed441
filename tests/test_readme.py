"""The README and docs/ document the parameters that exist and nothing that does not, agree
with params.yaml and with each other, and link only to files and headings that exist."""

from __future__ import annotations

import re
import shlex
import shutil

import yaml
from conftest import PROJECT_ROOT

from jmrn.config import COMPUTE, SECTIONS, SPLITS, load_params, section

README = (PROJECT_ROOT / "README.md").read_text()
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
PARAMETERS = (PROJECT_ROOT / "docs/parameters.md").read_text()
# Keys in which jhmdb14_gt differs from jhmdb because of its data, not its configuration.
DATA_KEYS = {"ingest.max_outside_fraction", "train.val_group"}


def between(text: str, heading: str) -> str:
    """The text under ``heading`` down to the next heading of the same or a higher level."""
    level = heading.split()[0]
    start = text.index(f"\n{heading}\n") + 1
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text[start + 1:])]
    return text[start:start + 1 + ends[0]] if ends else text[start:]


def parameter_table_keys(text: str = PARAMETERS) -> list[str]:
    """Every key the parameter table names: `section.key`, and `.key` continuing the section
    of the key before it in the same cell."""
    keys = []
    for row in between(text, "## Every key").splitlines():
        if not row.startswith("| `"):
            continue
        section_name = None
        for token in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if "." in token and not token.startswith("."):
                section_name = token.split(".")[0]
                keys.append(token)
            elif token.startswith(".") and section_name:
                keys.append(section_name + token)
    return keys


def test_every_documented_parameter_is_in_the_schema():
    schema = {f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys}
    schema |= {f"splits.{k}" for k in SPLITS} | {f"compute.{k}" for k in COMPUTE}
    keys = parameter_table_keys()
    assert "fusion.l2_penalty" in keys and "train.val_group" in keys
    unknown = [k for k in keys if not k.startswith("source.") and k not in schema]
    assert unknown == [], f"docs/parameters.md documents parameters that do not exist: {unknown}"
    planted = PARAMETERS.replace("| `fusion.l2_penalty` |", "| `fusion.l2_penalti` |")
    assert "fusion.l2_penalti" in parameter_table_keys(planted)  # the parser sees a typo


def test_every_section_parameter_is_documented():
    documented = set(parameter_table_keys())
    missing = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys
               if f"{s}.{k}" not in documented]  # fmt: skip
    assert missing == [], f"parameters missing from docs/parameters.md's table: {missing}"


def test_the_readme_states_its_differences_from_the_paper_and_the_frame_size_table():
    assert "## Differences from the paper" in README
    datasets = (PROJECT_ROOT / "docs/datasets.md").read_text()
    assert "source.frame_sizes" in datasets and "ffprobe" in datasets


# ------------------------------------------------------------------------- links


def outside_fences(text: str) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped,
    spaces to hyphens, -1, -2 ... for repeats)."""
    seen: dict[str, int] = {}
    out = set()
    for line in outside_fences(text):
        heading = re.match(r"#{1,6} (.+)", line.replace("`", ""))
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


def broken_links(doc) -> list[str]:
    """Relative links of a Markdown file whose file or heading does not exist."""
    broken = []
    for line in outside_fences(doc.read_text()):
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{target}: no file {file}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
                broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    return broken


def test_anchors_follow_github():
    text = "# jmrn — a title\n## Kinetics50 → Mimetics\n```\n# not a heading\n```\n## `x.y` keys\n"
    assert anchors(text + "## Kinetics50 → Mimetics\n") == {
        "jmrn--a-title", "kinetics50--mimetics", "xy-keys", "kinetics50--mimetics-1"}


def test_every_link_of_the_readme_and_docs_resolves(tmp_path):
    for doc in [PROJECT_ROOT / "README.md", *DOCS]:
        assert broken_links(doc) == [], doc.name
    planted = tmp_path / "x.md"
    planted.write_text("## Real heading\n[a](#real-heading) [b](#no-such) [c](missing.md)\n")
    assert broken_links(planted) == ["#no-such: no heading with anchor #no-such in x.md",
                                     f"missing.md: no file {tmp_path / 'missing.md'}"]


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README))
    assert {doc.name for doc in DOCS} <= linked
    assert len(DOCS) >= 7


# ------------------------------------------------------------------------- CPU and GPU


def flat(block: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def gpu_table() -> dict[str, tuple]:
    """The README's table of the keys to change for a GPU: key -> (CPU value, GPU value)."""
    rows = {}
    header = "| key | `jhmdb14_gt` (CPU) | `jhmdb` (paper, GPU) |"
    table = README[README.index(header):].split("\n\n")[0]
    for row in table.splitlines()[2:]:
        cells = [cell.strip().strip("`") for cell in row.strip("|").split("|")]
        rows[cells[0]] = (yaml.safe_load(cells[1]), yaml.safe_load(cells[2]))
    return rows


def test_the_gpu_table_lists_exactly_the_configuration_keys_that_differ():
    datasets = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["datasets"]
    cpu, gpu = flat(datasets["jhmdb14_gt"]), flat(datasets["jhmdb"])
    differ = {k for k in cpu.keys() & gpu.keys() if k.split(".")[0] in SECTIONS
              and cpu[k] != gpu[k]} - DATA_KEYS  # fmt: skip
    table = gpu_table()
    assert set(table) == differ
    assert {k: (cpu[k], gpu[k]) for k in differ} == table
    byod = between(README, "### Bring your own dataset")
    assert all(f"`{key}`" in byod for key in DATA_KEYS)  # the data keys are explained there


def test_the_gpu_command_gives_the_papers_jhmdb_settings(tmp_path):
    """The README's overrides turn jhmdb14_gt's CPU configuration into jhmdb's, key for key,
    applied by DVC's own -S code."""
    from dvc.utils.hydra import apply_overrides

    block = next(b for b in README.split("```bash\n")[1:] if "heatmap.height=64" in b)
    words = shlex.split(block.split("```")[0].replace("\\\n", " "))
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT_ROOT / "params.yaml", params)
    apply_overrides(params, overrides)
    on_gpu = load_params(params)
    paper = dict(on_gpu, dataset="jhmdb", **{name: None for name in SECTIONS})
    for name in SECTIONS:
        got, want = section(on_gpu, name), section(paper, name)
        differ = {k for k in want if got[k] != want[k]} - {k.split(".")[1] for k in DATA_KEYS
                                                            if k.startswith(name + ".")}
        assert differ == set(), f"{name}: {[(k, got[k], want[k]) for k in differ]}"


def test_the_readme_headline_results_are_those_of_docs_results():
    results = (PROJECT_ROOT / "docs/results.md").read_text()
    figures = re.findall(r"\d+\.\d ± \d+\.\d", between(README, "## Results"))
    assert len(figures) >= 8
    assert [f for f in figures if f not in results] == []
