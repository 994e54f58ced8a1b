"""The performance chapter's tables from the committed measurements (wbcbench.report.perf_tables)."""
from __future__ import annotations

import importlib.util

import pandas as pd

from wbcbench.core.paths import REPO_ROOT
from wbcbench.report import perf_tables


def test_gpu_check_covers_every_paper_model_and_renders_failures(tmp_path):
    """The committed GPU check ran every model of the paper without error; a failed model is shown, not dropped."""
    spec = importlib.util.spec_from_file_location("paper_models", REPO_ROOT / "benchmarks" / "paper_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    df = pd.read_csv(REPO_ROOT / "results" / "gpu" / "paper_models.csv")
    assert set(df["model"]) == set(bench.MODELS) >= set(bench.PAPER_MODELS)
    assert "error" not in df or df["error"].isna().all()
    md = perf_tables.paper_models_markdown(REPO_ROOT / "results" / "gpu" / "paper_models.csv")
    assert all(f"| {m} |" in md for m in bench.MODELS) and "failed" not in md
    broken = df.head(2).copy()
    broken["error"] = [None, "RuntimeError: CUDA out of memory"]
    broken.to_csv(tmp_path / "p.csv", index=False)
    md = perf_tables.paper_models_markdown(tmp_path / "p.csv")
    assert f"**{broken['model'].iloc[1]} failed:** `RuntimeError: CUDA out of memory`" in md
    assert f"| {broken['model'].iloc[1]} |" not in md
    assert "does not exist" in perf_tables.paper_models_markdown(tmp_path / "missing.csv")


def test_committed_gpu_determinism_check_holds():
    """On the GPU, same seed twice and killed-then-resumed gave byte-identical predictions for every model."""
    df = pd.read_csv(REPO_ROOT / "results" / "gpu" / "determinism.csv")
    assert len(df) >= 3 and (df["device"] == "cuda").all() and df["recorded deterministic"].all()
    assert df["det A == det B"].all() and df["resumed == det A"].all() and df["killed at first checkpoint"].all()
    md = perf_tables.determinism_markdown(REPO_ROOT / "results" / "gpu" / "determinism.csv")
    assert md.count("| identical | identical |") == len(df)


def test_pipeline_benchmark_tables_format_their_columns(tmp_path):
    rows = [{"section": "train", "measurement": "cached", "model": "resnet18_bn", "crop_px": 224.0,
             "batch_size": 128.0, "images_per_s": 1234.567, "ratio": 1.23456, "device": "cpu", "cores": 2,
             "torch": "2.x", "torch_threads": 2},
            {"section": "rss", "measurement": "peak", "value": 2048.0, "unit": "MiB", "device": "cpu", "cores": 2,
             "torch": "2.x", "torch_threads": 2}]
    pd.DataFrame(rows).to_csv(tmp_path / "b.csv", index=False)
    md = perf_tables.benchmark_markdown(tmp_path / "b.csv")
    assert md.startswith("Measured on **cpu**, 2 cores, torch 2.x (2 threads).")
    assert "**Training, side by side**" in md and "**Peak memory of a training run**" in md
    assert "| cached | resnet18_bn | 224 | 128 | 1,234.6 | 1.235 |" in md and "| peak | MiB | 2,048.0 |" in md
    assert "**Loader alone" not in md  # no rows of that section: no table
    assert "does not exist" in perf_tables.benchmark_markdown(tmp_path / "missing.csv")
    committed = perf_tables.benchmark_markdown(REPO_ROOT / "results" / "benchmarks.csv")
    assert committed.count("\n|---") >= 3
