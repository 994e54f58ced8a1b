"""Our numbers next to the paper's published ones (wbcbench.report.paper)."""
from __future__ import annotations

import pandas as pd
from runfolders import runs_frame

from wbcbench.report import paper
from wbcbench.report.tables import summary_table


def test_paper_orientation_rows():
    df = runs_frame([("resnet18_gn", "standard", "bccd", 0, 0.4), ("resnet18_gn", "standard", "bccd", 1, 0.6)])
    t = paper.paper_orientation(summary_table(df)).set_index("our model")
    gn = "ResNet-18, GroupNorm"  # our model in words; the paper's keeps its name in the paper's table
    assert t.loc[gn, "paper model"] == "resnet50_gn"
    assert t.loc[gn, "paper bccd accuracy (%)"] == "49.12 ± 6.94"   # published_accuracy.csv
    assert t.loc[gn, "our bccd accuracy (%)"].startswith("50.0 ± ")
    assert t.loc["ViT-Tiny, LayerNorm", "our bccd accuracy (%)"] == "not run yet"
    assert len(t) == len(paper.PAPER_COUNTERPARTS)


def test_compare_with_paper_delta_and_not_run():
    pub = paper.load_published()
    first = pub.iloc[0]
    df = runs_frame([(first["model"], "standard", first["test_set"], s, v) for s, v in enumerate([0.9, 0.92])])
    t = paper.compare_with_paper(summary_table(df, eval_mode="standard"))
    assert len(t) == len(pub)
    row = t.iloc[0]
    assert row["paper (%)"] == f"{first['accuracy_mean']:.2f} ± {first['accuracy_ci95']:.2f}"
    assert row["ours (%)"].startswith("91.00 ± ") and row["seeds"] == 2
    assert row["delta (pp)"] == round(91.0 - first["accuracy_mean"], 2)
    assert (t["ours (%)"].iloc[1:] == "not run").all() and t["delta (pp)"].iloc[1:].isna().all()
    assert (paper.compare_with_paper(pd.DataFrame())["ours (%)"] == "not run").all()
