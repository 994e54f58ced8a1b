"""The CPU study's claims, verdicts and tables (wbcbench.study, wbcbench.study_tables) on hand-made
tables and run folders (no training, no data). Every expected number is worked out by hand in the
comments; scipy is only used for the t quantile."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from runfolders import eye, runs_frame, write_run
from wbcbench import study, study_tables
from wbcbench.collect import load_runs
from wbcbench.profiles import PROFILES
from wbcbench.reproduce import compare_runs, retrained_checkpoint
from wbcbench.tables import summary_table


def study_summary(df):
    return summary_table(df, metrics=study.STUDY_METRICS, model_order=study.STUDY_MODELS)


# ------------------------------------------------------------------------------------------ compare

def welch_frame():
    # a: 0.6, 0.7, 0.8 -> mean 0.70, sample variance (0.01 + 0 + 0.01) / 2 = 0.01
    # b: 0.3, 0.4      -> mean 0.35, sample variance (0.0025 + 0.0025) / 1 = 0.005
    return runs_frame([("A", "standard", "bccd", s, v) for s, v in enumerate([0.6, 0.7, 0.8])]
                      + [("B", "standard", "bccd", s, v) for s, v in enumerate([0.3, 0.4])])


def test_compare_welch_by_hand():
    r = study.compare_models(welch_frame(), "A", "B", "accuracy", "bccd")
    # se^2 = 0.01/3 + 0.005/2 = 0.0058333; dof = se^4 / ((0.01/3)^2/2 + (0.005/2)^2/1) = 2.8824
    se2 = 0.01 / 3 + 0.005 / 2
    dof = se2 ** 2 / ((0.01 / 3) ** 2 / 2 + 0.0025 ** 2)
    assert dof == pytest.approx(2.8824, abs=1e-4)
    half = stats.t.ppf(0.975, dof) * math.sqrt(se2)
    assert r["test"] == "Welch t" and (r["n_a"], r["n_b"]) == (3, 2)
    assert r["diff"] == pytest.approx(0.35)
    assert r["df"] == pytest.approx(dof)
    assert r["ci95"] == pytest.approx(half)
    assert 0.24 < half < 0.26  # t(0.975, 2.88) ~ 3.26 times se 0.0764
    assert r["lo"] == pytest.approx(0.35 - half) and r["lo"] > 0
    assert r["verdict"] == "holds"


def test_compare_other_side_and_inconclusive():
    r = study.compare_models(welch_frame(), "B", "A", "accuracy", "bccd")
    assert r["diff"] == pytest.approx(-0.35) and r["hi"] < 0
    assert r["verdict"] == "does not hold"
    # means 0.6 and 0.6: difference 0, interval symmetric around it
    df = runs_frame([("A", "standard", "lisc", 0, 0.5), ("A", "standard", "lisc", 1, 0.7),
                     ("B", "standard", "lisc", 0, 0.6), ("B", "standard", "lisc", 1, 0.6)])
    r = study.compare_models(df, "A", "B", "accuracy", "lisc")
    assert r["diff"] == pytest.approx(0.0) and r["lo"] < 0 < r["hi"]
    assert r["verdict"] == "inconclusive (CI includes 0)"


def adabn_frame():
    std = [0.5, 0.6, 0.7, 0.9]   # seed 3 has no AdaBN result: left out of the pairs
    ada = [0.6, 0.65, 0.8]
    return runs_frame([("M", "standard", "jtsc", s, v) for s, v in enumerate(std)]
                      + [("M", "adabn", "jtsc", s, v) for s, v in enumerate(ada)])


def test_compare_paired_same_model_by_hand():
    r = study.compare_models(adabn_frame(), "M", "M", "accuracy", "jtsc", mode_a="adabn", mode_b="standard")
    # per-seed differences 0.1, 0.05, 0.1: mean 0.083333, sd 0.028868, se 0.016667, t(0.975, 2) = 4.302653
    assert r["test"] == "paired t" and r["n"] == 3 and (r["n_a"], r["n_b"]) == (3, 4)
    assert r["diff"] == pytest.approx(0.083333, abs=1e-6)
    assert r["ci95"] == pytest.approx(4.302653 * 0.016667, abs=1e-5)
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    assert r["verdict"] == "holds"
    assert r["a"] == "M + AdaBN" and r["b"] == "M"
    # the same numbers unpaired (Welch over all seeds) do not separate: pairing matters here
    w = study.compare_models(adabn_frame(), "M", "M", "accuracy", "jtsc", "adabn", "standard", paired=False)
    assert w["test"] == "Welch t" and w["verdict"] == "inconclusive (CI includes 0)"


def test_adabn_gains_are_the_paired_differences():
    g = study.adabn_gains(adabn_frame(), "accuracy", domains=("jtsc", "lisc"))
    assert list(g["test_set"]) == ["jtsc"]  # no lisc runs: no row, not a row of NaN
    r = g.iloc[0]
    assert r["seeds"] == 3 and r["gain"] == pytest.approx(0.083333, abs=1e-6)  # as in the paired test above
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    t = study.adabn_gain_table(g)
    assert t.loc["M", "jtsc"] == "+8.3 [+1.2, +15.5]" and t.loc["M", "seeds"] == 3
    assert study.adabn_gains(runs_frame([("M", "standard", "jtsc", 0, 0.5)]), "accuracy").empty


def test_compare_undetermined():
    df = runs_frame([("A", "standard", "bccd", 0, 0.9), ("B", "standard", "bccd", 0, 0.2),
                     ("B", "standard", "bccd", 1, 0.3)])
    r = study.compare_models(df, "A", "B", "accuracy", "bccd")
    assert r["diff"] == pytest.approx(0.65) and math.isnan(r["ci95"])
    assert r["verdict"].startswith("undetermined") and "2 seeds" in r["verdict"]
    r = study.compare_models(df, "C", "B", "accuracy", "bccd")
    assert math.isnan(r["diff"]) and "no finished runs of C" in r["verdict"]
    s = study.verdict_sentence(r, "a")
    assert s.startswith("(a) C vs B on bccd (accuracy): undetermined")


def test_verdicts_cover_every_claim_and_domain_even_without_runs():
    n_pairs = sum(len(p) for _, _, p in study.STUDY_CLAIMS)
    for empty in (pd.DataFrame(), None):
        v = study.verdicts(empty)
        assert len(v) == n_pairs * len(study.SHIFTED_DOMAINS)
        assert v["verdict"].str.startswith("undetermined").all()
    df = welch_frame().replace({"A": "resnet18_gn", "B": "resnet18_bn"})
    v = study.verdicts(df, "balanced_accuracy", domains=("bccd",))
    gn = v[(v["a"] == "resnet18_gn") & (v["b"] == "resnet18_bn")]
    assert set(gn["claim"]) == {"a", "b"} and (gn["verdict"] == "holds").all()
    assert "+35.0 pp" in gn["sentence"].iloc[0] and "Welch t" in gn["sentence"].iloc[0]
    o = study.verdict_overview(v)
    row = o[o["claim"] == "b"].iloc[0]
    assert (row["holds"], row["does not hold"], row["inconclusive"], row["undetermined"]) == (1, 0, 0, 0)


# ------------------------------------------------------------------------------------------ tables

def test_domain_drops_by_hand():
    df = runs_frame([("resnet18_bn", "standard", "pbc:test", 0, 0.9), ("resnet18_bn", "standard", "lisc", 0, 0.5),
                     ("resnet18_bn", "standard", "pbc:test", 1, 0.8), ("resnet18_bn", "standard", "lisc", 1, 0.6)])
    d = study.domain_drops(df)
    assert len(d) == 1
    r = d.iloc[0]
    # drops 0.4 and 0.2: mean 0.3, sd 0.141421, se 0.1, t(0.975, 1) = 12.7062
    assert r["drop_mean"] == pytest.approx(0.3)
    assert r["drop_ci95"] == pytest.approx(1.27062, abs=1e-4)
    assert r["seeds"] == 2 and r["test_set"] == "lisc"
    assert study.domain_drops(pd.DataFrame()).empty


def test_domain_drops_order_and_one_seed_bar():
    df = runs_frame([(m, e, t, 0, v) for m in ("resnet18_gn", "resnet18_bn") for e in ("adabn", "standard")
                     for t, v in (("pbc:test", 0.9), ("jtsc", 0.4), ("lisc", 0.6))])
    d = study.domain_drops(df)
    assert list(zip(d["label"], d["test_set"])) == [
        ("resnet18_bn", "lisc"), ("resnet18_bn", "jtsc"), ("resnet18_bn + AdaBN", "lisc"),
        ("resnet18_bn + AdaBN", "jtsc"), ("resnet18_gn", "lisc"), ("resnet18_gn", "jtsc"),
        ("resnet18_gn + AdaBN", "lisc"), ("resnet18_gn + AdaBN", "jtsc")]
    one = d.iloc[1]  # one seed: no interval, a zero-width bar around the mean
    assert one["drop_mean"] == pytest.approx(0.5) and math.isnan(one["drop_ci95"])
    assert one["drop_lo"] == one["drop_hi"] == pytest.approx(0.5)


def test_rank_models_needs_every_domain():
    df = runs_frame([("good", "standard", t, 0, 0.8) for t in study.SHIFTED_DOMAINS]
                    + [("bad", "standard", t, 0, v) for t, v in zip(study.SHIFTED_DOMAINS, [0.1, 0.2, 0.3, 0.4])]
                    + [("partial", "standard", "lisc", 0, 0.99)])
    r = study.rank_models(study_summary(df))
    assert list(r["model"]) == ["good", "bad"]
    assert r.iloc[1, 1] == pytest.approx(0.25)


def test_cell_value():
    s = study_summary(welch_frame())
    m, ci, n = study.cell_value(s, "A", "bccd", "accuracy")
    assert (m, n) == (pytest.approx(0.7), 3) and ci == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3))
    m, ci, n = study.cell_value(s, "A", "lisc")
    assert math.isnan(m) and math.isnan(ci) and n == 0


def test_normalisation_table_rows_in_study_order_with_their_layer():
    df = runs_frame([("resnet18_gn", "standard", "lisc", 0, 0.4), ("resnet18_bn", "standard", "lisc", 0, 0.3),
                     ("resnet18_bn", "adabn", "lisc", 0, 0.5), ("vgg16", "standard", "lisc", 0, 0.9),
                     ("resnet18_frozenbn", "standard", "lisc", 0, 0.2)])
    t = study.normalisation_table(summary_table(df))
    assert list(t.index) == ["resnet18_bn", "resnet18_frozenbn", "resnet18_gn", "majority baseline"]  # no AdaBN, vgg16
    # a model retired from the registry keeps its label for its committed runs
    assert list(t["normalisation"]) == ["BatchNorm", "frozen BatchNorm (init stats)", "GroupNorm", ""]
    assert t.loc["resnet18_gn", "lisc"] == "40.0 (1 seed, no CI)"
    assert study.normalisation_table(summary_table(runs_frame([("vgg16", "standard", "lisc", 0, 1.0)]))).empty


# ------------------------------------------------------------------------------- from run folders

def test_from_run_folders(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "bccd@adabn": (0.6, eye(2))})
    write_run(tmp_path, "resnet18_bn", 1, {"bccd": (0.7, eye(3)), "bccd@adabn": (0.8, eye(4))})
    write_run(tmp_path, "resnet18_bn", 2, {"bccd": (0.1, eye(100))}, done=False)  # never counted
    write_run(tmp_path, "efficientnet_lite0", 0, {"bccd": (0.9, eye(5))}, hparams={"pretrained": True})

    runs, skipped = load_runs(tmp_path)
    assert len(skipped) == 1 and len(runs) == 5
    cm, n = study_tables.summed_confusion(runs, "resnet18_bn", "bccd")
    assert n == 2 and np.array_equal(cm, np.eye(5, dtype=int) * 4)        # 1 + 3, the unfinished run left out
    cm, n = study_tables.summed_confusion(runs, "resnet18_bn", "bccd", "adabn")
    assert n == 2 and cm[0, 0] == 6
    assert study_tables.summed_confusion(runs, "vit_tiny", "bccd") == (None, 0)

    rec = study_tables.recall_by_class(runs, domains=("bccd",))
    assert list(dict.fromkeys(rec["label"])) == ["resnet18_bn", "resnet18_bn + AdaBN", "efficientnet_lite0"]
    bn = rec[(rec["label"] == "resnet18_bn")].set_index("class")
    assert math.isnan(bn.loc["Basophil", "recall"]) and bn.loc["Basophil", "images"] == 0
    assert bn.loc["Monocyte", "recall"] == pytest.approx(0.6) and bn.loc["Monocyte", "seeds"] == 2

    counts = study_tables.domain_class_counts(runs, domains=("bccd",)).iloc[0]
    assert (counts["test set"], counts["Basophil"], counts["Neutrophil"]) == ("bccd", 0, 2)
    assert counts["classes with < 5 images"] == "Basophil, Eosinophil, Lymphocyte, Monocyte, Neutrophil"

    settings, seeds = study_tables.study_protocol(tmp_path)
    assert len(settings) == 2  # the pretrained EfficientNet is a setting of its own
    assert set(settings["ImageNet-pretrained"]) == {True, False} and settings["AdaBN"].all()
    s = seeds.set_index("model")
    assert list(s.index) == ["resnet18_bn", "efficientnet_lite0"]  # study order
    assert s.loc["resnet18_bn", "seeds finished"] == 2 and s.loc["resnet18_bn", "finished"] == "0, 1"
    assert s.loc["resnet18_bn", "unfinished (running or interrupted)"] == "2"

    cmds = study_tables.study_rerun(tmp_path, out="results/cpu")
    assert list(zip(cmds["model"], cmds["seed"])) == [("resnet18_bn", 0), ("resnet18_bn", 1), ("resnet18_bn", 2),
                                                      ("efficientnet_lite0", 0)]
    eff = cmds[cmds["model"] == "efficientnet_lite0"].iloc[0]
    assert "--pretrained" in eff["cli"] and "--out results/cpu" in eff["cli"] and "--adapt adabn" in eff["cli"]
    bn0 = cmds[(cmds["model"] == "resnet18_bn") & (cmds["seed"] == 0)].iloc[0]
    assert "--pretrained" not in bn0["cli"]  # the cpu profile's own settings are not overrides
    assert PROFILES["cpu"]["crop_size"] == 48 and "--crop-size" not in bn0["cli"]

    empty = tmp_path / "nothing"
    assert study_tables.study_protocol(empty)[0].empty and study_tables.study_rerun(empty).empty
    assert study_tables.pilot_table(empty).empty


def test_pilot_table(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"pbc:val": (0.93, eye(1))}, hparams={"crop_size": 48},
              log_seconds=(9.0, 10.0, 11.0))
    b = write_run(tmp_path / "b", "resnet18_bn", 0, {"pbc:val": (0.87, eye(1))}, hparams={"crop_size": 32})
    (b / "eval" / "pbc:val").rename(b / "eval" / "pbc_val")  # the folder name of runs written since issue 13
    write_run(tmp_path / "c", "resnet18_bn", 0, {}, hparams={"crop_size": 64}, done=False, log_seconds=(60.0,))
    t = study_tables.pilot_table(tmp_path)
    assert list(t["crop px"]) == [32, 48, 64]
    assert list(t["training seconds"]) == [30.0, 30.0, 60.0]
    assert t["pbc:val accuracy"].iloc[1] == pytest.approx(0.93)
    assert t["pbc:val accuracy"].iloc[0] == pytest.approx(0.87)  # found by metrics.json, whatever the folder name
    assert t["status"].iloc[2] == "unfinished" and pd.isna(t["pbc:val accuracy"].iloc[2])


# ------------------------------------------------------- the study's checkpoint (notebook 04), reproduce.py

def test_compare_runs_and_retrained_checkpoint(tmp_path):
    """A retrained run matches when its predictions files are byte-identical; one changed byte shows."""
    a = write_run(tmp_path / "committed", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    b = write_run(tmp_path / "again", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    assert not compare_runs(a, b)["identical predictions"].any()  # no predictions files: nothing matches
    for run in (a, b):
        for t in ("bccd", "lisc"):
            (run / "eval" / t / "predictions.csv").write_text(f"index,label,pred\n0,{t},Monocyte\n")
    assert compare_runs(a, b)["identical predictions"].all()
    pred = b / "eval" / "lisc" / "predictions.csv"
    pred.write_bytes(pred.read_bytes() + b"x")
    c = compare_runs(a, b).set_index("evaluation")
    assert c.loc["bccd", "identical predictions"] and not c.loc["lisc", "identical predictions"]
    # a finished run with its model.pt is used as it is; without one and without a folder to retrain into, None
    assert retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] is None
    (a / "model.pt").write_bytes(b"")
    assert retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] == a
    run, why = retrained_checkpoint(tmp_path / "committed", "resnet18_bn", 1)
    assert run is None and "no finished `resnet18_bn` seed-1 run" in why
