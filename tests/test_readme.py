"""The README documents the parameters that exist, and nothing that does not."""

from __future__ import annotations

import re

from conftest import PROJECT_ROOT

from jmrn.config import COMPUTE, SECTIONS, SPLITS

README = (PROJECT_ROOT / "README.md").read_text()


def parameter_table_keys() -> list[str]:
    """Every key the README's parameter table names: `section.key`, and `.key` continuing the
    section of the key before it in the same cell."""
    start = README.index("## Parameters")
    table = README[start:README.index("\n## ", start + 1)]
    keys = []
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        section = None
        for token in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if "." in token and not token.startswith("."):
                section = token.split(".")[0]
                keys.append(token)
            elif token.startswith(".") and section:
                keys.append(section + token)
    return keys


def test_every_documented_parameter_is_in_the_schema():
    schema = {f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys}
    schema |= {f"splits.{k}" for k in SPLITS} | {f"compute.{k}" for k in COMPUTE}
    keys = parameter_table_keys()
    assert "fusion.l2_penalty" in keys and "train.val_group" in keys
    unknown = [k for k in keys if not k.startswith("source.") and k not in schema]
    assert unknown == [], f"README documents parameters that do not exist: {unknown}"


def test_every_section_parameter_is_documented():
    documented = set(parameter_table_keys())
    missing = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys
               if f"{s}.{k}" not in documented]  # fmt: skip
    assert missing == [], f"parameters missing from the README's table: {missing}"


def test_the_readme_states_its_differences_from_the_paper_and_the_frame_size_table():
    assert "## Differences from the paper" in README
    assert "source.frame_sizes" in README and "ffprobe" in README
