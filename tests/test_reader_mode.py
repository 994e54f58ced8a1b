"""Reader mode: the book shows findings and figures, not code. Every code cell of the chapters is hidden
behind a toggle (or removed when it only sets up), except in the how-to chapters, and every word the verdicts
use is in the glossary."""
from __future__ import annotations

import re

import nbformat
import pytest
import yaml

from wbcbench.analysis.pretrained_v2 import DOMAIN_WORDS
from wbcbench.core.names import DOMAIN_NAMES, SHIFTED_DOMAINS
from wbcbench.core.paths import REPO_ROOT

#: how-to chapters, whose code is what the reader came for: shown
TUTORIALS = ("02_train_one_run.ipynb", "09_your_model.ipynb")
NOTEBOOKS = sorted(p for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name not in TUTORIALS)
HIDDEN = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(.*?)```", re.S)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_of_a_notebook_is_hidden(path):
    nb = nbformat.read(path, as_version=4)
    shown = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and not HIDDEN & set(c.metadata.get("tags", []))]
    assert not shown, f"{path.name}: code cells {shown} are shown to the reader; tag them hide-input"


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_every_code_cell_of_a_page_is_hidden(path):
    for body in CODE_CELL.findall(path.read_text()):
        if body.startswith("---\n"):       # options as a YAML block
            found = set(yaml.safe_load(body.split("---\n")[1]).get("tags") or [])
        else:                               # options as :key: lines
            tags = re.search(r"^:tags: \[(.*)\]$", body, re.M)
            found = {t.strip() for t in tags.group(1).split(",")} if tags else set()
        assert HIDDEN & found, f"{path.name}: a code cell is shown to the reader:\n{body[:200]}"


def test_the_tutorials_show_their_code():
    for name in TUTORIALS:
        nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
        assert any(c.cell_type == "code" and not HIDDEN & set(c.metadata.get("tags", [])) for c in nb.cells), name


def test_the_glossary_defines_every_verdict_word_and_domain():
    text = (REPO_ROOT / "book" / "glossary.md").read_text()
    terms = {line.strip() for line in text.split("```{glossary}")[1].split("```")[0].splitlines()
             if line and not line.startswith(" ")}
    missing = [w for w in DOMAIN_WORDS if w not in terms]
    assert not missing, f"verdict words without a glossary entry: {missing}"
    for term in ("AdaBN", "TENT", "Holm", "pp", "drop", "chance", "balanced accuracy"):
        assert term in terms, term
    for d in SHIFTED_DOMAINS:
        assert f"**{DOMAIN_NAMES[d]}**" in text, f"the glossary does not describe {DOMAIN_NAMES[d]}"


def test_mechanism_chapters_come_before_deployment():
    order = [line.split("file:")[1].strip() for line in (REPO_ROOT / "_toc.yml").read_text().splitlines()
             if "file:" in line]
    deploy = order.index("notebooks/08_new_lab")
    assert order.index("notebooks/04_bn_analysis") < deploy
    assert order.index("notebooks/05_normalisation") < deploy
    assert order.index("book/glossary") > deploy
