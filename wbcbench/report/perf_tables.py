"""The performance chapter's tables, rendered from the CSV files the scripts in benchmarks/ write."""
from __future__ import annotations

import pandas as pd

from wbcbench.report.tables import to_markdown
from wbcbench.runs.collect import resolve_dir

_BENCH_COLS = {"measurement": "measurement", "model": "model", "stored_px": "stored px", "crop_px": "px",
               "batch_size": "batch", "images_per_s": "images/s", "input_wait_pct": "waiting for input, %",
               "input_cpu_ms_per_image": "input CPU, ms/image", "ratio": "ratio", "unit": "unit",
               "target": "target", "met": "met", "value": "value", "load_avg_1min": "load"}
_BENCH_TITLES = {"train": "Training, side by side", "loader": "Loader alone (pbc:train, 256 → 224 px, batch 128)",
                 "cache": "Decoded-image cache, all of PBC", "rss": "Peak memory of a training run"}
_FORMATS = {"images/s": "{:,.1f}", "value": "{:,.1f}", "waiting for input, %": "{:,.1f}", "ratio": "{:.3f}",
            "input CPU, ms/image": "{:.3f}"}


def _read(csv, script: str) -> pd.DataFrame | str:
    """The measurements, or the sentence to show when they have not been taken yet."""
    csv = resolve_dir(csv)
    if not csv.is_file():
        return f"_No measurements yet: `{csv.name}` does not exist. Run `python benchmarks/{script}` to produce it._"
    return pd.read_csv(csv)


def benchmark_markdown(csv) -> str:
    """The performance page's tables from a CSV written by benchmarks/pipeline.py, one per section."""
    df = _read(csv, "pipeline.py")
    if isinstance(df, str):
        return df
    m = df.iloc[0]
    out = [f"Measured on **{m.device}**, {m.cores} cores, torch {m.torch} ({m.torch_threads} threads).\n"]
    for section, title in _BENCH_TITLES.items():
        part = df[df.section == section]
        if not len(part):
            continue
        part = part[[c for c in _BENCH_COLS if c in part and part[c].notna().any()]].rename(columns=_BENCH_COLS)
        for c, f in _FORMATS.items():
            if c in part:
                part[c] = part[c].map(lambda v, f=f: "" if pd.isna(v) else f.format(v))
        for c in ("stored px", "px", "batch"):
            if c in part:
                part[c] = part[c].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
        out += [f"**{title}**", to_markdown(part.fillna(""))]
    return "\n\n".join(out)


def paper_models_markdown(csv) -> str:
    """The table of benchmarks/paper_models.py: per paper model, speed, memory and a paper run's cost."""
    df = _read(csv, "paper_models.py")
    if isinstance(df, str):
        return df
    failed = df[df["error"].notna()] if "error" in df else df.iloc[:0]
    ok = df.drop(failed.index)
    t = pd.DataFrame({
        "model": ok["model"], "training images/s": ok["images_per_s"].map(lambda v: f"{v:,.0f}"),
        "peak GPU memory, GiB": (ok["peak_gpu_mib"] / 1024).map(lambda v: f"{v:.1f}") if "peak_gpu_mib" in ok else "",
        "train loss, epoch 1 → last": [f"{a:.2f} → {b:.2f}" for a, b in zip(ok["loss_first"], ok["loss_last"])],
        "one paper run, minutes (est.)": ok["paper_run_minutes_est"].map(lambda v: f"{v:.1f}"),
    })
    head = f"Measured on **{df['gpu'].iloc[0]}**, torch {df['torch'].iloc[0]}, {int(ok['epochs'].iloc[0])} epochs " \
           f"of {int(ok['train_images'].iloc[0])} images per model." if len(ok) else ""
    tail = "".join(f"\n\n**{r.model} failed:** `{r.error}`" for r in failed.itertuples())
    return head + "\n\n" + to_markdown(t) + tail


def determinism_markdown(csv) -> str:
    """The table of benchmarks/determinism.py: per model, which reruns were byte-identical, and the cost."""
    df = _read(csv, "determinism.py")
    if isinstance(df, str):
        return df
    yes = {True: "identical", False: "differ"}
    t = pd.DataFrame({
        "model": df["model"],
        "same seed, twice": df["det A == det B"].map(yes),
        "killed and resumed vs uninterrupted": df["resumed == det A"].map(yes),
        "same seed, twice, WBCBENCH_DETERMINISTIC=0": df["fast A == fast B"].map(yes),
        "images/s deterministic": df["det images_per_s"].map(lambda v: f"{v:,.0f}"),
        "images/s with =0": df["fast images_per_s"].map(lambda v: f"{v:,.0f}"),
        "speed-up from =0": df["ratio fast/det"].map(lambda v: f"{v:.2f}×"),
    })
    return (f"`{df['device'].iloc[0]}` device, `{df['profile'].iloc[0]}` profile, {int(df['epochs'].iloc[0])} "
            f"epochs, predictions on {int(df['evaluations'].iloc[0])} test sets per run.\n\n" + to_markdown(t))
