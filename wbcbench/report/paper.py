"""The paper's published numbers (Tsutsui, Su & Wen 2023, Table 1) and our runs next to them.

They are read from `published_accuracy.csv` next to this file, here and nowhere else.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from wbcbench.report.tables import STANDARD, fmt_ci
from wbcbench.report.words import arm_name

PUBLISHED_CSV = Path(__file__).with_name("published_accuracy.csv")

#: Our CPU-study counterpart of each of the paper's situations, for the orientation-only BCCD comparison.
PAPER_COUNTERPARTS = (
    ("BN, statistics updated in training", "resnet50", "efficientnet_lite0"),
    ("BN, statistics updated in training", "vgg16_bn", "resnet18_bn"),
    ("BN frozen at ImageNet statistics", "resnet50_freezebn", "efficientnet_lite0_freezebn"),
    ("GroupNorm", "resnet50_gn", "resnet18_gn"),
    ("no normalisation", "vgg16", "resnet18_nonorm"),
    ("ViT (LayerNorm)", "vit_b_16", "vit_tiny"),
)

#: The pretrained study's counterpart of each of the paper's ResNet-50 arms (notebooks/07_pretrained).
PRETRAINED_COUNTERPARTS = tuple(
    (situation, theirs, f"efficientnet_lite{v}{suffix}")
    for situation, theirs, suffix in (("BN fine-tuned", "resnet50", ""),
                                      ("BN frozen at ImageNet statistics", "resnet50_freezebn", "_freezebn"),
                                      ("frozen BN, last stages trained", "resnet50_freezebn_last16", "_freezebn_last"))
    for v in (0, 1, 2))


def load_published() -> pd.DataFrame:
    """The paper's accuracy (%) table: model, test_set, accuracy_mean, accuracy_ci95, in_paper."""
    df = pd.read_csv(PUBLISHED_CSV)
    df["in_paper"] = df["in_paper"].astype(str).str.lower().eq("yes")
    return df


def _published_cell(mean, ci) -> str:
    """The paper's numbers are in % already, with two decimals."""
    return f"{mean:.2f} ± {ci:.2f}"


def compare_with_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """Our accuracy next to the paper's for every (model, test set) the paper reports, with the delta
    (ours - paper, percentage points). Rows the paper has but we have not run show 'not run'."""
    pub = load_published()
    cols = ["model", "test_set", "accuracy_mean", "accuracy_ci95", "seeds"]
    ours = summary[cols] if len(summary) else pd.DataFrame(columns=cols)
    ours = ours.rename(columns={"accuracy_mean": "ours_mean", "accuracy_ci95": "ours_ci95"})
    m = pub.merge(ours, on=["model", "test_set"], how="left")
    return pd.DataFrame({
        "model": m["model"], "test_set": m["test_set"], "in paper": m["in_paper"].map({True: "yes", False: "no"}),
        "paper (%)": [_published_cell(a, c) for a, c in zip(m["accuracy_mean"], m["accuracy_ci95"])],
        "ours (%)": ["not run" if pd.isna(a) else fmt_ci(a, c, n, digits=2)
                     for a, c, n in zip(m["ours_mean"], m["ours_ci95"], m["seeds"])],
        "delta (pp)": [None if pd.isna(a) else round(a * 100 - p, 2)
                       for a, p in zip(m["ours_mean"], m["accuracy_mean"])],
        "seeds": pd.array(m["seeds"], dtype="Int64"),
    })


def paper_orientation(summary: pd.DataFrame, test_set: str = "bccd", counterparts=PAPER_COUNTERPARTS) -> pd.DataFrame:
    """The paper's accuracy on `test_set` (its Table 1, Raabin-trained, 224 px, ImageNet-pretrained) next to
    our CPU-study counterpart (PBC-trained, 48 px, mostly from scratch): for orientation only."""
    pub = load_published()
    pub = pub[pub["test_set"] == test_set].set_index("model")
    s = summary[(summary["test_set"] == test_set) & (summary["eval_mode"] == STANDARD)].set_index("model") \
        if summary is not None and len(summary) else pd.DataFrame()
    rows = []
    for situation, theirs, ours in counterparts:
        p = pub.loc[theirs] if theirs in pub.index else None
        o = s.loc[ours] if ours in s.index else None
        published = "–" if p is None else _published_cell(p["accuracy_mean"], p["accuracy_ci95"])
        rows.append({
            "normalisation": situation, "paper model": theirs, f"paper {test_set} accuracy (%)": published,
            "in paper's table": "–" if p is None else ("yes" if p["in_paper"] else "no"),
            "our model": arm_name(ours),
            f"our {test_set} accuracy (%)": "not run yet" if o is None else
            fmt_ci(o["accuracy_mean"], o["accuracy_ci95"], o["seeds"]),
            f"our {test_set} balanced accuracy (%)": "not run yet" if o is None else
            fmt_ci(o["balanced_accuracy_mean"], o["balanced_accuracy_ci95"], o["seeds"]),
        })
    return pd.DataFrame(rows)
