"""The CPU-study helpers of wbcbench.report on hand-made tables and run folders (no training, no data).

Every expected number is worked out by hand in the comments; scipy is only used for the t quantile.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wbcbench import report
from wbcbench.classes import CLASSES


def runs_frame(rows) -> pd.DataFrame:
    """[(model, eval_mode, test_set, seed, value)] -> a collect()-like table (value in every metric)."""
    out = []
    for model, mode, test, seed, v in rows:
        out.append({"model": model, "eval_mode": mode, "test_set": test, "seed": seed, "accuracy": v,
                    "balanced_accuracy": v, "balanced_accuracy_min5": v, "majority_baseline": 0.5,
                    "run_dir": f"/runs/{model}-s{seed}", "eval_dir": f"/runs/{model}-s{seed}/eval/{test}",
                    **{f"recall_{c}": v for c in CLASSES}})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------ compare

def welch_frame():
    # a: 0.6, 0.7, 0.8 -> mean 0.70, sample variance (0.01 + 0 + 0.01) / 2 = 0.01
    # b: 0.3, 0.4      -> mean 0.35, sample variance (0.0025 + 0.0025) / 1 = 0.005
    return runs_frame([("A", "standard", "bccd", s, v) for s, v in enumerate([0.6, 0.7, 0.8])]
                      + [("B", "standard", "bccd", s, v) for s, v in enumerate([0.3, 0.4])])


def test_compare_welch_by_hand():
    r = report.compare(welch_frame(), "A", "B", "accuracy", "bccd")
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
    r = report.compare(welch_frame(), "B", "A", "accuracy", "bccd")
    assert r["diff"] == pytest.approx(-0.35) and r["hi"] < 0
    assert r["verdict"] == "does not hold"
    # means 0.6 and 0.6: difference 0, interval symmetric around it
    df = runs_frame([("A", "standard", "lisc", 0, 0.5), ("A", "standard", "lisc", 1, 0.7),
                     ("B", "standard", "lisc", 0, 0.6), ("B", "standard", "lisc", 1, 0.6)])
    r = report.compare(df, "A", "B", "accuracy", "lisc")
    assert r["diff"] == pytest.approx(0.0) and r["lo"] < 0 < r["hi"]
    assert r["verdict"] == "inconclusive (CI includes 0)"


def adabn_frame():
    std = [0.5, 0.6, 0.7, 0.9]   # seed 3 has no AdaBN result: left out of the pairs
    ada = [0.6, 0.65, 0.8]
    return runs_frame([("M", "standard", "jtsc", s, v) for s, v in enumerate(std)]
                      + [("M", "adabn", "jtsc", s, v) for s, v in enumerate(ada)])


def test_compare_paired_same_model_by_hand():
    r = report.compare(adabn_frame(), "M", "M", "accuracy", "jtsc", mode_a="adabn", mode_b="standard")
    # per-seed differences 0.1, 0.05, 0.1: mean 0.083333, sd 0.028868, se 0.016667, t(0.975, 2) = 4.302653
    assert r["test"] == "paired t" and r["n"] == 3 and (r["n_a"], r["n_b"]) == (3, 4)
    assert r["diff"] == pytest.approx(0.083333, abs=1e-6)
    assert r["ci95"] == pytest.approx(4.302653 * 0.016667, abs=1e-5)
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    assert r["verdict"] == "holds"
    assert r["a"] == "M + AdaBN" and r["b"] == "M"
    # the same numbers unpaired (Welch over all seeds) do not separate: pairing matters here
    w = report.compare(adabn_frame(), "M", "M", "accuracy", "jtsc", "adabn", "standard", paired=False)
    assert w["test"] == "Welch t" and w["verdict"] == "inconclusive (CI includes 0)"


def test_adabn_gains_are_the_paired_differences():
    g = report.adabn_gains(adabn_frame(), "accuracy", domains=("jtsc", "lisc"))
    assert list(g["test_set"]) == ["jtsc"]  # no lisc runs: no row, not a row of NaN
    r = g.iloc[0]
    assert r["seeds"] == 3 and r["gain"] == pytest.approx(0.083333, abs=1e-6)  # as in the paired test above
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    t = report.adabn_gain_table(g)
    assert t.loc["M", "jtsc"] == "+8.3 [+1.2, +15.5]" and t.loc["M", "seeds"] == 3
    assert report.adabn_gains(runs_frame([("M", "standard", "jtsc", 0, 0.5)]), "accuracy").empty


def test_compare_undetermined():
    df = runs_frame([("A", "standard", "bccd", 0, 0.9), ("B", "standard", "bccd", 0, 0.2),
                     ("B", "standard", "bccd", 1, 0.3)])
    r = report.compare(df, "A", "B", "accuracy", "bccd")
    assert r["diff"] == pytest.approx(0.65) and math.isnan(r["ci95"])
    assert r["verdict"].startswith("undetermined") and "2 seeds" in r["verdict"]
    r = report.compare(df, "C", "B", "accuracy", "bccd")
    assert math.isnan(r["diff"]) and "no finished runs of C" in r["verdict"]
    s = report.verdict_sentence(r, "a")
    assert s.startswith("(a) C vs B on bccd (accuracy): undetermined")


def test_verdicts_cover_every_claim_and_domain_even_without_runs():
    n_pairs = sum(len(p) for _, _, p in report.STUDY_CLAIMS)
    for empty in (pd.DataFrame(), None):
        v = report.verdicts(empty)
        assert len(v) == n_pairs * len(report.SHIFTED_DOMAINS)
        assert v["verdict"].str.startswith("undetermined").all()
    df = welch_frame().replace({"A": "resnet18_gn", "B": "resnet18_bn"})
    v = report.verdicts(df, "balanced_accuracy", domains=("bccd",))
    gn = v[(v["a"] == "resnet18_gn") & (v["b"] == "resnet18_bn")]
    assert set(gn["claim"]) == {"a", "b"} and (gn["verdict"] == "holds").all()
    assert "+35.0 pp" in gn["sentence"].iloc[0] and "Welch t" in gn["sentence"].iloc[0]
    o = report.verdict_overview(v)
    row = o[o["claim"] == "b"].iloc[0]
    assert (row["holds"], row["does not hold"], row["inconclusive"], row["undetermined"]) == (1, 0, 0, 0)


# ------------------------------------------------------------------------------------------ tables

def test_study_table_seeds_ci_and_adabn_rows():
    df = runs_frame([("resnet18_bn", "standard", "pbc:test", 0, 0.9), ("resnet18_bn", "standard", "pbc:test", 1, 0.8),
                     ("resnet18_bn", "adabn", "pbc:test", 0, 0.85),
                     ("resnet18_gn", "standard", "pbc:test", 0, 0.7)])
    s = report.study_summary(df)
    t = report.study_table(s, "accuracy")
    assert list(t.index) == ["resnet18_bn", "resnet18_bn + AdaBN", "resnet18_gn", "majority baseline"]
    assert list(t["seeds"][:3]) == [2, 1, 1]
    # mean 0.85, sd 0.0707107, se 0.05, t(0.975, 1) = 12.7062 -> 63.5 points
    assert t.loc["resnet18_bn", "pbc:test"] == "85.0 ± 63.5"
    assert t.loc["resnet18_gn", "pbc:test"] == "70.0 (1 seed, no CI)"
    assert t.loc["majority baseline", "pbc:test"] == "50.0"
    assert report.study_table(report.study_summary(pd.DataFrame()), "accuracy").empty


def test_domain_drops_by_hand():
    df = runs_frame([("resnet18_bn", "standard", "pbc:test", 0, 0.9), ("resnet18_bn", "standard", "lisc", 0, 0.5),
                     ("resnet18_bn", "standard", "pbc:test", 1, 0.8), ("resnet18_bn", "standard", "lisc", 1, 0.6)])
    d = report.domain_drops(df)
    assert len(d) == 1
    r = d.iloc[0]
    # drops 0.4 and 0.2: mean 0.3, sd 0.141421, se 0.1, t(0.975, 1) = 12.7062
    assert r["drop_mean"] == pytest.approx(0.3)
    assert r["drop_ci95"] == pytest.approx(1.27062, abs=1e-4)
    assert r["seeds"] == 2 and r["test_set"] == "lisc"
    assert report.domain_drops(pd.DataFrame()).empty


def test_rank_models_needs_every_domain():
    df = runs_frame([("good", "standard", t, 0, 0.8) for t in report.SHIFTED_DOMAINS]
                    + [("bad", "standard", t, 0, v) for t, v in zip(report.SHIFTED_DOMAINS, [0.1, 0.2, 0.3, 0.4])]
                    + [("partial", "standard", "lisc", 0, 0.99)])
    r = report.rank_models(report.study_summary(df))
    assert list(r["model"]) == ["good", "bad"]
    assert r.iloc[1, 1] == pytest.approx(0.25)


# ------------------------------------------------------------------------------- from run folders

def write_run(root, model, seed, evals, done=True, hparams=None, log_seconds=(10.0, 20.0)):
    """A run directory as train() writes it: config.json, log.csv, eval/<name>/metrics.json, done."""
    run = root / f"{model}-cpu-s{seed}-x"
    (run / "eval").mkdir(parents=True)
    hp = {"crop_size": 48, "stored_size": 56, "epochs": 6, "train_subset_per_class": 200, "lr": 0.001,
          "batch_size": 64, "pretrained": False, "name": "cpu", **(hparams or {})}
    names = sorted({k.split("@")[0] for k in evals})
    (run / "config.json").write_text(json.dumps({"model": model, "profile": "cpu", "seed": seed,
                                                 "train": "pbc:train", "test": names, "adabn": True,
                                                 "hparams": hp}))
    pd.DataFrame({"epoch": range(1, len(log_seconds) + 1), "seconds": log_seconds}).to_csv(run / "log.csv")
    for key, (acc, cm) in evals.items():
        d = run / "eval" / key
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({
            "test_set": key.split("@")[0], "eval_mode": "adabn" if "@" in key else "standard", "n": 10,
            "accuracy": acc, "balanced_accuracy": acc, "balanced_accuracy_min5": acc, "majority_baseline": 0.3,
            "per_class_recall": {c: (None if c == "Basophil" else acc) for c in CLASSES},
            "class_counts": {c: (0 if c == "Basophil" else 2) for c in CLASSES}, "confusion": cm}))
    if done:
        (run / "done").write_text("")
    return run


def eye(k):
    return (np.eye(5, dtype=int) * k).tolist()


def test_from_run_folders(tmp_path):
    from wbcbench.profiles import PROFILES
    write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "bccd@adabn": (0.6, eye(2))})
    write_run(tmp_path, "resnet18_bn", 1, {"bccd": (0.7, eye(3)), "bccd@adabn": (0.8, eye(4))})
    write_run(tmp_path, "resnet18_bn", 2, {"bccd": (0.1, eye(100))}, done=False)  # never counted
    write_run(tmp_path, "efficientnet_lite0", 0, {"bccd": (0.9, eye(5))}, hparams={"pretrained": True})

    runs, skipped = report.load_runs(tmp_path)
    assert len(skipped) == 1 and len(runs) == 5
    cm, n = report.summed_confusion(runs, "resnet18_bn", "bccd")
    assert n == 2 and np.array_equal(cm, np.eye(5, dtype=int) * 4)        # 1 + 3, the unfinished run left out
    cm, n = report.summed_confusion(runs, "resnet18_bn", "bccd", "adabn")
    assert n == 2 and cm[0, 0] == 6
    assert report.summed_confusion(runs, "vit_tiny", "bccd") == (None, 0)

    rec = report.recall_by_class(runs, domains=("bccd",))
    bn = rec[(rec["label"] == "resnet18_bn")].set_index("class")
    assert math.isnan(bn.loc["Basophil", "recall"]) and bn.loc["Basophil", "images"] == 0
    assert bn.loc["Monocyte", "recall"] == pytest.approx(0.6) and bn.loc["Monocyte", "seeds"] == 2

    settings, seeds = report.study_protocol(tmp_path)
    assert len(settings) == 2  # the pretrained EfficientNet is a setting of its own
    assert set(settings["ImageNet-pretrained"]) == {True, False}
    s = seeds.set_index("model")
    assert list(s.index) == ["resnet18_bn", "efficientnet_lite0"]  # grid order
    assert s.loc["resnet18_bn", "seeds finished"] == 2 and s.loc["resnet18_bn", "finished"] == "0, 1"
    assert s.loc["resnet18_bn", "unfinished (running or interrupted)"] == "2"

    cmds = report.study_rerun(tmp_path, out="results/cpu")
    eff = cmds[cmds["model"] == "efficientnet_lite0"].iloc[0]
    assert "--pretrained" in eff["cli"] and "--out results/cpu" in eff["cli"] and "--adabn" in eff["cli"]
    bn0 = cmds[(cmds["model"] == "resnet18_bn") & (cmds["seed"] == 0)].iloc[0]
    assert "--pretrained" not in bn0["cli"]  # the cpu profile's own settings are not overrides
    assert PROFILES["cpu"]["crop_size"] == 48 and "--crop-size" not in bn0["cli"]

    empty = tmp_path / "nothing"
    assert report.study_protocol(empty)[0].empty and report.study_rerun(empty).empty
    assert report.pilot_table(empty).empty


def test_compare_runs_and_study_checkpoint(tmp_path):
    """A retrained run matches when its predictions files are byte-identical; one changed byte shows."""
    a = write_run(tmp_path / "committed", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    b = write_run(tmp_path / "again", "resnet18_bn", 0, {"bccd": (0.9, eye(5)), "lisc": (0.5, eye(5))})
    assert not report.compare_runs(a, b)["identical predictions"].any()  # no predictions files: nothing matches
    for run in (a, b):
        for t in ("bccd", "lisc"):
            (run / "eval" / t / "predictions.csv").write_text(f"index,label,pred\n0,{t},Monocyte\n")
    assert report.compare_runs(a, b)["identical predictions"].all()
    pred = b / "eval" / "lisc" / "predictions.csv"
    pred.write_bytes(pred.read_bytes() + b"x")
    c = report.compare_runs(a, b).set_index("evaluation")
    assert c.loc["bccd", "identical predictions"] and not c.loc["lisc", "identical predictions"]
    # a finished run with its model.pt is used as it is; without one and without a folder to retrain into, None
    assert report.study_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] is None
    (a / "model.pt").write_bytes(b"")
    assert report.study_checkpoint(tmp_path / "committed", "resnet18_bn", 0)[0] == a
    run, why = report.study_checkpoint(tmp_path / "committed", "resnet18_bn", 1)
    assert run is None and "no finished `resnet18_bn` seed-1 run" in why


def test_pilot_table(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"pbc:val": (0.93, eye(1))}, hparams={"crop_size": 48},
              log_seconds=(9.0, 10.0, 11.0))
    write_run(tmp_path / "b", "resnet18_bn", 0, {"pbc:val": (0.87, eye(1))}, hparams={"crop_size": 32})
    write_run(tmp_path / "c", "resnet18_bn", 0, {}, hparams={"crop_size": 64}, done=False, log_seconds=(60.0,))
    t = report.pilot_table(tmp_path)
    assert list(t["crop px"]) == [32, 48, 64]
    assert list(t["training seconds"]) == [30.0, 30.0, 60.0]
    assert t["pbc:val accuracy"].iloc[1] == pytest.approx(0.93)
    assert t["status"].iloc[2] == "unfinished" and pd.isna(t["pbc:val accuracy"].iloc[2])


def test_paper_orientation_rows():
    df = runs_frame([("resnet18_gn", "standard", "bccd", 0, 0.4), ("resnet18_gn", "standard", "bccd", 1, 0.6)])
    t = report.paper_orientation(report.study_summary(df)).set_index("our model")
    assert t.loc["resnet18_gn", "paper model"] == "resnet50_gn"
    assert t.loc["resnet18_gn", "paper bccd accuracy (%)"] == "49.12 ± 6.94"   # published_accuracy.csv
    assert t.loc["resnet18_gn", "our bccd accuracy (%)"].startswith("50.0 ± ")
    assert t.loc["vit_tiny", "our bccd accuracy (%)"] == "not run yet"


def test_gpu_check_covers_every_paper_model_and_renders_failures(tmp_path):
    """The committed GPU check ran every model of the paper without error; a failed model is shown, not dropped."""
    import importlib.util
    from wbcbench.paths import REPO_ROOT
    spec = importlib.util.spec_from_file_location("paper_models", REPO_ROOT / "benchmarks" / "paper_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    df = pd.read_csv(REPO_ROOT / "results" / "gpu" / "paper_models.csv")
    assert set(df["model"]) == set(bench.MODELS) >= set(bench.PAPER_MODELS)
    assert "error" not in df or df["error"].isna().all()
    md = report.paper_models_markdown(REPO_ROOT / "results" / "gpu" / "paper_models.csv")
    assert all(f"| {m} |" in md for m in bench.MODELS) and "failed" not in md
    broken = df.head(2).copy()
    broken["error"] = [None, "RuntimeError: CUDA out of memory"]
    broken.to_csv(tmp_path / "p.csv", index=False)
    md = report.paper_models_markdown(tmp_path / "p.csv")
    assert f"**{broken['model'].iloc[1]} failed:** `RuntimeError: CUDA out of memory`" in md
    assert f"| {broken['model'].iloc[1]} |" not in md
    assert "does not exist" in report.paper_models_markdown(tmp_path / "missing.csv")


def test_committed_gpu_determinism_check_holds():
    """On the GPU, same seed twice and killed-then-resumed gave byte-identical predictions for every model."""
    from wbcbench.paths import REPO_ROOT
    df = pd.read_csv(REPO_ROOT / "results" / "gpu" / "determinism.csv")
    assert len(df) >= 3 and (df["device"] == "cuda").all() and df["recorded deterministic"].all()
    assert df["det A == det B"].all() and df["resumed == det A"].all() and df["killed at first checkpoint"].all()
    md = report.determinism_markdown(REPO_ROOT / "results" / "gpu" / "determinism.csv")
    assert md.count("| identical | identical |") == len(df)
