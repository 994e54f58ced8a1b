"""One row order, one 'mean ± CI' cell, one summary over seeds and one wide table (wbcbench.report.tables)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from runfolders import runs_frame

from wbcbench.analysis.cpu_study import STUDY_MODELS
from wbcbench.report import tables


def test_ordered_puts_known_values_first_in_their_order_then_the_rest_alphabetically():
    assert tables.ordered(["zz", "bccd", "aa", "pbc:test", "bccd"]) == ["pbc:test", "bccd", "aa", "zz"]
    assert tables.ordered(["b", "c", "a"], order=("c",)) == ["c", "a", "b"]
    assert tables.ordered([]) == []


def test_sort_rows_model_then_standard_first_then_domain():
    df = pd.DataFrame({"model": ["y", "x", "x", "x", "x"],
                       "eval_mode": ["standard", "adabn", "standard", "standard", "batch_stats"],
                       "test_set": ["lisc", "lisc", "lisc", "pbc:test", "lisc"]})
    s = tables.sort_rows(df, model_order=("y",))
    assert list(zip(s["model"], s["eval_mode"], s["test_set"])) == [
        ("y", "standard", "lisc"), ("x", "standard", "pbc:test"), ("x", "standard", "lisc"),
        ("x", "adabn", "lisc"), ("x", "batch_stats", "lisc")]
    assert list(s.columns) == ["model", "eval_mode", "test_set"] and list(s.index) == list(range(5))
    kept = tables.sort_rows(df.iloc[[2, 3]], domain_order=None)  # None: the domains keep their order
    assert list(kept["test_set"]) == ["lisc", "pbc:test"]
    r = tables.sort_rows(pd.DataFrame({"model": ["b", "a", "a"], "seed": [0, 2, 1]}), then=("seed",))
    assert list(zip(r["model"], r["seed"])) == [("a", 1), ("a", 2), ("b", 0)]


def test_fmt_ci_one_way_for_one_seed_and_for_nothing():
    assert tables.fmt_ci(0.8512, 0.0123) == "85.1 ± 1.2"
    assert tables.fmt_ci(0.8512, 0.0123, n=5, digits=2) == "85.12 ± 1.23"
    assert tables.fmt_ci(0.85, float("nan")) == "85.0 (1 seed, no CI)"      # without n: nan CI is 1 seed
    assert tables.fmt_ci(0.85, float("nan"), n=1) == "85.0 (1 seed, no CI)"
    assert tables.fmt_ci(0.85, 0.01, n=1) == "85.0 (1 seed, no CI)"
    assert tables.fmt_ci(float("nan"), float("nan")) == tables.fmt_ci(None, None) == "–"
    assert tables.fmt_ci(0.5, 0.1, n=0) == "–"


def test_to_markdown_escapes_pipes_and_marks_missing():
    df = pd.DataFrame({"a|b": ["x|y", None], "n": [1.5, float("nan")]})
    assert tables.to_markdown(df).splitlines() == ["| a\\|b | n |", "|---|---|", "| x\\|y | 1.5 |", "| – | – |"]
    assert tables.to_markdown(pd.DataFrame({"v": [1]}, index=pd.Index(["r"], name="k")), index=True) \
        .splitlines()[2] == "| r | 1 |"
    assert tables.to_markdown(pd.DataFrame()) == tables.to_markdown(None) == "_(empty)_"


def test_summary_table_means_ci_baseline_and_order():
    df = runs_frame([("resnet18_gn", "standard", "lisc", 0, 0.4), ("resnet18_bn", "adabn", "lisc", 0, 0.7),
                     ("resnet18_bn", "standard", "lisc", 0, 0.5), ("resnet18_bn", "standard", "lisc", 1, 0.7),
                     ("resnet18_bn", "standard", "pbc:test", 0, 0.9)])
    s = tables.summary_table(df, model_order=STUDY_MODELS)
    assert list(s["label"]) == ["resnet18_bn", "resnet18_bn", "resnet18_bn + AdaBN", "resnet18_gn"]
    assert list(s["test_set"]) == ["pbc:test", "lisc", "lisc", "lisc"]
    r = s.iloc[1]
    # 0.5 and 0.7: mean 0.6, sd 0.141421, sem 0.1, t(0.975, 1) = 12.7062
    assert (r["seeds"], r["majority_baseline"]) == (2, 0.5)
    assert r["accuracy_mean"] == pytest.approx(0.6) and r["accuracy_sem"] == pytest.approx(0.1)
    assert r["accuracy_ci95"] == pytest.approx(1.27062, abs=1e-4)
    assert math.isnan(s.iloc[0]["accuracy_ci95"])
    assert "balanced_accuracy_min5_mean" not in s  # the two default metrics only, unless asked
    std = tables.summary_table(df, eval_mode="standard")
    assert list(std["model"]) == ["resnet18_bn", "resnet18_bn", "resnet18_gn"]  # no order given: alphabetical
    assert tables.summary_table(df, eval_mode="tent").empty and tables.summary_table(None).empty


def test_wide_table_with_seeds_ci_and_adabn_rows():
    df = runs_frame([("resnet18_bn", "standard", "pbc:test", 0, 0.9), ("resnet18_bn", "standard", "pbc:test", 1, 0.8),
                     ("resnet18_bn", "adabn", "pbc:test", 0, 0.85),
                     ("resnet18_gn", "standard", "pbc:test", 0, 0.7)])
    s = tables.summary_table(df, metrics=("accuracy", "balanced_accuracy", "balanced_accuracy_min5"),
                             model_order=STUDY_MODELS)
    t = tables.wide_table(s, "accuracy", seeds=True)
    assert list(t.index) == ["resnet18_bn", "resnet18_bn + AdaBN", "resnet18_gn", "majority baseline"]
    assert list(t["seeds"][:3]) == [2, 1, 1]
    # mean 0.85, sd 0.0707107, se 0.05, t(0.975, 1) = 12.7062 -> 63.5 points
    assert t.loc["resnet18_bn", "pbc:test"] == "85.0 ± 63.5"
    assert t.loc["resnet18_gn", "pbc:test"] == "70.0"  # the seeds column says 1: no interval, said once
    assert tables.wide_table(s, "accuracy").loc["resnet18_gn", "pbc:test"] == "70.0 (1 seed, no CI)"
    assert t.loc["majority baseline", "pbc:test"] == "50.0"
    assert tables.wide_table(tables.summary_table(pd.DataFrame()), "accuracy").empty


def test_wide_table_domains_in_order_missing_cells_and_no_seeds_column():
    df = runs_frame([("a", "standard", "lisc", 0, 0.5), ("a", "standard", "lisc", 1, 0.7),
                     ("b", "standard", "bccd", 0, 0.2), ("b", "standard", "bccd", 1, 0.2),
                     ("a", "standard", "pbc:test", 0, 0.9), ("a", "standard", "pbc:test", 1, 0.9)])
    s = tables.summary_table(df, eval_mode="standard")
    # the majority class's share is chance for accuracy only: a balanced-accuracy table has no such row
    assert list(tables.wide_table(s, "balanced_accuracy").index) == ["a", "b"]
    t = tables.wide_table(s, "balanced_accuracy", chance={"pbc:test": 0.2, "lisc": 0.25})
    assert list(t.columns) == ["pbc:test", "lisc", "bccd"] and list(t.index) == ["a", "b", "chance (1/classes)"]
    assert list(t.loc["chance (1/classes)"]) == ["20.0", "25.0", "–"]
    t = tables.wide_table(s, "accuracy")
    assert list(t.index) == ["a", "b", "majority baseline"]
    assert t.index.name == "model"
    assert t.loc["a", "pbc:test"] == "90.0 ± 0.0" and t.loc["b", "bccd"] == "20.0 ± 0.0"
    assert t.loc["a", "bccd"] == "–" and t.loc["b", "lisc"] == "–"
    assert list(t.loc["majority baseline"]) == ["50.0", "50.0", "50.0"]


def test_to_markdown_keeps_interval_cells_on_one_line_and_float32_short():
    nb = "\u00a0"
    df = pd.DataFrame({"ci": ["85.1 ± 1.2", "85.0 (1 seed, no CI)"], "gain": ["+2.1 [+0.3, +3.9]", "-1.0 (no CI)"],
                       "text": ["resnet18 bn, lisc", "a b"], "f32": np.array([0.862, np.nan], dtype=np.float32)})
    rows = tables.to_markdown(df).splitlines()
    assert rows[2] == f"| 85.1{nb}±{nb}1.2 | +2.1{nb}[+0.3,{nb}+3.9] | resnet18 bn, lisc | 0.862 |"
    assert rows[3] == f"| 85.0{nb}(1{nb}seed,{nb}no{nb}CI) | -1.0{nb}(no{nb}CI) | a b | – |"
    assert tables.fmt_ci(0.8512, 0.0123) == "85.1 ± 1.2"  # the cell itself keeps plain spaces


def test_for_reader_names_headers_and_writes_fractions_in_percent():
    df = pd.DataFrame({"adabn": [True], "score": [0.8512], "lo": [float("nan")]}).rename_axis("label_a")
    out = tables.for_reader(df, percent=["score", "lo"], names={"lo": "lower bound"})
    assert list(out.columns) == ["AdaBN", "score (%)", "lower bound (%)"] and out.index.name == "recipe"
    assert list(out.iloc[0]) == [True, "85.1", "–"]
    assert list(df.columns) == ["adabn", "score", "lo"] and df.index.name == "label_a"  # the frame is untouched
    assert tables.pct(0.0004) == "0.0" and tables.pct(None) == "–"


def test_chance_level_is_one_over_the_classes_the_metric_averages():
    counts = {"Basophil": 1, "Eosinophil": 4, "Lymphocyte": 5, "Monocyte": 0, "Neutrophil": 90}
    assert tables.chance_level("balanced_accuracy", counts) == pytest.approx(1 / 4)      # 4 classes present
    assert tables.chance_level("balanced_accuracy_min5", counts) == pytest.approx(1 / 2)  # 2 with >= 5 images
    assert tables.chance_level("accuracy", counts) == pytest.approx(0.9)                  # the majority class
    assert math.isnan(tables.chance_level("macro_f1", counts)) and math.isnan(tables.chance_level("accuracy", {}))


def test_to_markdown_writes_yes_and_no_for_booleans():
    t = tables.to_markdown(pd.DataFrame({"chosen": [True, False], "n": [1, 2]}))
    assert t.splitlines()[2:] == ["| yes | 1 |", "| no | 2 |"]
