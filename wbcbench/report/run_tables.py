"""The CPU study's descriptive tables, beside its verdict (wbcbench.analysis.cpu_study): the normalisation table, the
drop from in-domain, the gains of each test-time method, the ranking; and those that read the run folders
themselves (config.json, log.csv, each evaluation's metrics.json): what was run, how the profile was chosen,
how to rerun it, class counts, confusion matrices. Absent or empty folders and empty tables give empty
tables."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from wbcbench.analysis.cpu_study import IN_DOMAIN, PRIMARY_METRIC, SHIFTED_DOMAINS, STUDY_MODELS
from wbcbench.analysis.stats import mean_ci
from wbcbench.analysis.verdict import variant
from wbcbench.core.classes import CLASSES
from wbcbench.core.profiles import setting
from wbcbench.report.tables import (
    STANDARD,
    chance_level,
    fmt_gain,
    label_by_domain,
    ordered,
    row_label,
    sort_rows,
    wide_table,
)
from wbcbench.runs.collect import read_json, resolve_dir, run_records
from wbcbench.runs.records import train_args
from wbcbench.runs.rundir import adapt_methods, evaluations, is_done
from wbcbench.sweep.parameters import rerun_commands


def normalisation_table(summary: pd.DataFrame, normalisation: dict, metric: str = PRIMARY_METRIC,
                        chance: dict | None = None) -> pd.DataFrame:
    """Rows = the models of `normalisation` (name -> its normalisation layer, as the model registry says) that
    have runs (standard evaluation), with that layer and 'mean ± CI' of `metric` per test domain, then
    wide_table's chance row (`chance` as there)."""
    models = list(normalisation)
    if summary is None or not len(summary):
        return pd.DataFrame()
    s = summary[summary["model"].isin(models) & (summary["eval_mode"] == STANDARD)]
    if not len(s):
        return pd.DataFrame()
    wide = wide_table(s, metric, chance=chance)
    base = wide.loc[[i for i in wide.index if i not in set(s["label"])]]
    wide = wide.reindex([m for m in models if m in wide.index])
    wide.insert(0, "normalisation", [normalisation[m] for m in wide.index])
    base.insert(0, "normalisation", "")
    return pd.concat([wide, base])


def _num(g: pd.DataFrame, metric: str) -> pd.Series:
    return pd.Series(pd.to_numeric(g[metric], errors="coerce").to_numpy(float), index=g["run_dir"].to_numpy())


def method_gains(df: pd.DataFrame, method: str = "adabn", metric: str = PRIMARY_METRIC,
                 domains=(IN_DOMAIN, *SHIFTED_DOMAINS)) -> pd.DataFrame:
    """`method` minus the standard evaluation of the same run, for every model evaluated both ways: per
    domain, the mean over seeds (a seed run twice averaged) and its 95% Student-t interval, as the verdict
    pairs them (wbcbench.analysis.cpu_study). Domains without a pair have no row."""
    cols = ["model", "method", "test_set", "gain", "lo", "hi", "seeds"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    rows = []
    for m in ordered(df.loc[df["eval_mode"] == method, "model"], STUDY_MODELS):
        g = df[df["model"] == m]
        seed = g.groupby("run_dir")["seed"].first()
        for t in domains:
            on = g[g["test_set"] == t]
            d = (_num(on[on["eval_mode"] == method], metric) - _num(on[on["eval_mode"] == STANDARD], metric)).dropna()
            if len(d):
                c = mean_ci(d.groupby(seed.reindex(d.index).to_numpy()).mean().tolist())  # ci95 nan for 1 seed
                rows.append({"model": m, "method": method, "test_set": t, "gain": c["mean"],
                             "lo": c["mean"] - c["ci95"], "hi": c["mean"] + c["ci95"], "seeds": c["n"]})
    return pd.DataFrame(rows, columns=cols)


def gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """method_gains as a model x domain table of '+gain [lo, hi]' in percentage points."""
    if gains is None or not len(gains):
        return pd.DataFrame()
    cells = [fmt_gain(d, lo, hi) for d, lo, hi in zip(gains["gain"], gains["lo"], gains["hi"])]
    g = gains.assign(label=[row_label(m, e) for m, e in zip(gains["model"], gains["method"])])
    wide = label_by_domain(g, cells)
    wide.insert(0, "seeds", g.groupby("label", sort=False)["seeds"].min().reindex(wide.index).to_numpy())
    return wide


def domain_drops(df: pd.DataFrame, metric: str = PRIMARY_METRIC, source: str = IN_DOMAIN,
                 domains=SHIFTED_DOMAINS) -> pd.DataFrame:
    """Per run and shifted domain, the drop `metric`(source) - `metric`(domain) in the same eval mode
    (adapted rows: source adapted too), then mean and Student-t 95% CI over seeds per model x domain."""
    cols = ["label", "model", "eval_mode", "test_set", "drop_mean", "drop_ci95", "drop_lo", "drop_hi", "seeds"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    src = df[df["test_set"] == source].set_index(["run_dir", "eval_mode"])[metric]
    per_run = []
    for r in df[df["test_set"].isin(domains)].itertuples(index=False):
        key, value = (r.run_dir, r.eval_mode), getattr(r, metric)
        if key in src.index and value is not None and not pd.isna(value):
            per_run.append({"model": r.model, "eval_mode": r.eval_mode, "test_set": r.test_set, "seed": r.seed,
                            "drop": float(src[key]) - float(value)})
    if not per_run:
        return pd.DataFrame(columns=cols)
    rows = []
    for (m, e, t), g in pd.DataFrame(per_run).groupby(["model", "eval_mode", "test_set"], sort=False):
        c = mean_ci(g.groupby("seed")["drop"].mean().tolist())
        half = 0.0 if math.isnan(c["ci95"]) else c["ci95"]
        rows.append({"label": row_label(m, e), "model": m, "eval_mode": e, "test_set": t, "drop_mean": c["mean"],
                     "drop_ci95": c["ci95"], "drop_lo": c["mean"] - half, "drop_hi": c["mean"] + half,
                     "seeds": c["n"]})
    return sort_rows(pd.DataFrame(rows), STUDY_MODELS, domain_order=domains)[cols]


def rank_models(summary: pd.DataFrame, metric: str = PRIMARY_METRIC, domains=SHIFTED_DOMAINS,
                eval_mode: str = STANDARD) -> pd.DataFrame:
    """Models ranked (best first) by the mean over `domains` of their per-domain mean `metric`; only models
    with results on every one of `domains` are ranked."""
    cols = ["model", f"mean {metric} over shifted domains", "domains", "seeds"]
    if summary is None or not len(summary):
        return pd.DataFrame(columns=cols)
    s = summary[(summary["eval_mode"] == eval_mode) & summary["test_set"].isin(domains)]
    rows = []
    for m, g in s.groupby("model", sort=False):
        if set(g["test_set"]) >= set(domains):
            rows.append({"model": m, cols[1]: float(g[f"{metric}_mean"].mean()), "domains": len(g),
                         "seeds": int(g["seeds"].min())})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(cols[1], ascending=False, kind="stable").reset_index(drop=True)


def _metrics(eval_dir) -> dict:
    return read_json(Path(eval_dir) / "metrics.json") or {}


def domain_class_counts(df: pd.DataFrame, domains=(IN_DOMAIN, *SHIFTED_DOMAINS)) -> pd.DataFrame:
    """Test images per class in each test domain, as recorded in the runs' metrics.json (one run each)."""
    if df is None or not len(df):
        return pd.DataFrame()
    rows = []
    for t in ordered(t for t in df["test_set"].unique() if t in domains):
        counts = _metrics(df[df["test_set"] == t]["eval_dir"].iloc[0]).get("class_counts") or {}
        rows.append({"test set": t, **{c: counts.get(c) for c in CLASSES},
                     "classes with < 5 images": ", ".join(c for c in CLASSES if (counts.get(c) or 0) < 5) or "none"})
    return pd.DataFrame(rows)


def chance_levels(df: pd.DataFrame, metric: str = PRIMARY_METRIC) -> dict:
    """{test set: the chance level of `metric` there} (tables.chance_level), from the class counts that one
    evaluation of each test set recorded in its metrics.json; test sets without counts are left out."""
    if df is None or not len(df):
        return {}
    out = {}
    for t, g in df.groupby("test_set", sort=False):
        level = chance_level(metric, _metrics(g["eval_dir"].iloc[0]).get("class_counts") or {})
        if not math.isnan(level):
            out[t] = level
    return out


def recall_by_class(df: pd.DataFrame, domains=SHIFTED_DOMAINS, eval_modes=(STANDARD, "adabn")) -> pd.DataFrame:
    """Long table: per model (x eval mode) x domain x class, the recall averaged over seeds and the number
    of seeds; a class absent from a domain has no recall (NaN) and its test-image count is 0."""
    cols = ["label", "model", "eval_mode", "test_set", "class", "recall", "seeds", "images"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    d = df[df["test_set"].isin(domains) & df["eval_mode"].isin(eval_modes)]
    rows = []
    for (m, e, t), g in d.groupby(["model", "eval_mode", "test_set"], sort=False):
        counts = _metrics(g["eval_dir"].iloc[0]).get("class_counts", {})
        for c in CLASSES:
            v = pd.to_numeric(g[f"recall_{c}"], errors="coerce")
            rows.append({"label": row_label(m, e), "model": m, "eval_mode": e, "test_set": t, "class": c,
                         "recall": float(v.mean()) if v.notna().any() else float("nan"),
                         "seeds": int(v.notna().sum()), "images": counts.get(c)})
    return sort_rows(pd.DataFrame(rows, columns=cols), STUDY_MODELS, domain_order=None)[cols]


def summed_confusion(df: pd.DataFrame, model: str, test_set: str, eval_mode: str = STANDARD):
    """The confusion matrix (rows true, columns predicted) summed over the seeds of `model` on `test_set`,
    read from each run's metrics.json; (matrix, seeds) or (None, 0) when there is none."""
    if df is None or not len(df):
        return None, 0
    g = df[(df["model"] == model) & (df["test_set"] == test_set) & (df["eval_mode"] == eval_mode)]
    total, n = None, 0
    for d in g["eval_dir"]:
        cm = _metrics(d).get("confusion")
        if cm is None:
            continue
        cm = np.asarray(cm, dtype=np.int64)
        total = cm if total is None else total + cm
        n += 1
    return total, n


def _flips(hp: dict) -> str:
    return {(True, True): "h+v", (True, False): "h", (False, True): "v"}.get(
        (bool(hp.get("hflip")), bool(hp.get("vflip"))), "none")


def _seed_list(seeds) -> str:
    return ", ".join(str(x) for x in sorted(seeds)) or "–"


def study_protocol(runs_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What was actually run, from the run configs on disk: (settings, seeds).
    settings: one row per distinct training setting (profile hyper-parameters, train set, test sets, AdaBN)
    with the models that used it; seeds: per model, the seeds finished (`done` marker) and unfinished."""
    settings, seeds = {}, {}
    for run, cfg in run_records(resolve_dir(runs_dir)):
        if cfg is None:
            continue
        key = json.dumps({"profile": cfg.get("profile"), "train": cfg.get("train"), "test": cfg.get("test"),
                          "adabn": "adabn" in adapt_methods(cfg), **(cfg.get("hparams") or {})}, sort_keys=True)
        settings.setdefault(key, set()).add(cfg.get("model"))
        s = seeds.setdefault(cfg.get("model"), {"done": set(), "unfinished": set()})
        s["done" if is_done(run) else "unfinished"].add(cfg.get("seed"))
    srows = []
    for key, models in settings.items():
        k = json.loads(key)
        srows.append({"models": ", ".join(ordered(models, STUDY_MODELS)), "profile": k.get("profile"),
                      "train": k.get("train"),
                      "train subset (images/class)": k.get("train_subset_per_class") or "all",
                      "test": ", ".join(k.get("test") or []), "AdaBN": k.get("adabn"),
                      "stored px": k.get("stored_size"), "crop px": k.get("crop_size"), "epochs": k.get("epochs"),
                      "warm-up": k.get("warmup_epochs"), "lr": k.get("lr"), "weight decay": k.get("weight_decay"),
                      "batch": k.get("batch_size"), "flips": _flips(k),
                      "mixup": k.get("mixup_alpha"), "ImageNet-pretrained": k.get("pretrained")})
    rrows = [{"model": m, "seeds finished": len(seeds[m]["done"]), "finished": _seed_list(seeds[m]["done"]),
              "unfinished (running or interrupted)": _seed_list(seeds[m]["unfinished"] - seeds[m]["done"])}
             for m in ordered(seeds, STUDY_MODELS)]
    return pd.DataFrame(srows), pd.DataFrame(rrows)


def _training_seconds(run: Path) -> tuple[float, int]:
    """Sum of the epoch times in log.csv and the number of epochs logged ((nan, 0) without a log)."""
    try:
        log = pd.read_csv(run / "log.csv")
        return float(log["seconds"].sum()), int(len(log))
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
        return float("nan"), 0


def _disturbed(run: Path, factor: float = 2.0) -> bool:
    """Whether a run's training was slowed by something else (a paused sweep, another job on the cores): one of its
    epochs in log.csv took over `factor` times the run's median epoch, where every epoch does the same work."""
    try:
        seconds = pd.read_csv(run / "log.csv")["seconds"]
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
        return False
    return bool(len(seconds) > 2 and seconds.max() > factor * seconds.median())


def pilot_table(pilot_dir, test_set: str = "pbc:val") -> pd.DataFrame:
    """The runs used to choose the cpu profile: one row per run directory, with its resolution, epochs,
    training subset, accuracy on `test_set` and the training time summed over the epochs of log.csv
    (wall-clock seconds as measured, on whatever else the machine was doing then)."""
    rows = []
    for run, cfg in run_records(resolve_dir(pilot_dir)):
        if cfg is None:
            continue
        hp = cfg.get("hparams") or {}
        found = evaluations(run).get((test_set, STANDARD)) if is_done(run) else None
        m = _metrics(found[1]) if found else None
        secs, epochs_logged = _training_seconds(run)
        rows.append({"model": cfg.get("model"), "crop px": hp.get("crop_size"), "stored px": hp.get("stored_size"),
                     "epochs": hp.get("epochs"), "train subset (images/class)": hp.get("train_subset_per_class"),
                     f"{test_set} accuracy": None if m is None else m.get("accuracy"),
                     f"{test_set} balanced accuracy": None if m is None else m.get("balanced_accuracy"),
                     "epochs logged": epochs_logged, "training seconds": secs,
                     "status": "done" if m is not None else "unfinished", "run": run.name})
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values(["crop px", "run"], kind="stable").reset_index(drop=True)
    return df


def study_rerun(runs_dir, out: str | None = None) -> pd.DataFrame:
    """For every run directory under `runs_dir`: its model, variant (the model and its training augmentation,
    as the studies name a trained network), seed, and the CLI and papermill commands that redo it, rebuilt
    from its config.json. One row per variant is `drop_duplicates("variant")`."""
    out = out or str(runs_dir)
    rows = []
    for run, cfg in run_records(resolve_dir(runs_dir)):
        if cfg is None:
            continue
        cmds = rerun_commands(**{**train_args(cfg), "out": out, "data_root": None})
        rows.append({"model": cfg.get("model"), "variant": _variant(cfg), "seed": cfg.get("seed"), "run": run.name,
                     "done": is_done(run), "cli": cmds["cli"], "papermill": cmds["papermill"]})
    df = pd.DataFrame(rows, columns=["model", "variant", "seed", "run", "done", "cli", "papermill"])
    return sort_rows(df, STUDY_MODELS, then=("variant", "seed"))


def _variant(cfg: dict) -> str:
    return variant(cfg.get("model"), setting(cfg.get("hparams") or {}, "augment"))


def _notebook_seconds(run: Path) -> float:
    """The executed notebook's wall time (papermill's `duration`: training and every evaluation), or nan."""
    nb = read_json(run / "notebook.ipynb")
    try:
        return float(nb["metadata"]["papermill"]["duration"])
    except (TypeError, KeyError, ValueError):
        return math.nan


def grid_time(runs_dir, seeds=None) -> pd.DataFrame:
    """The measured compute of a grid's finished runs (those at `seeds` only, when given), per variant (the model
    and its training augmentation, in column `model`) and in total ('all'): runs, the median and total wall time
    of a run's notebook (training and every evaluation, as papermill timed it) and the training seconds of
    log.csv. On a shared machine the times include whatever else it was doing; `slowed runs` counts the runs
    that show it in their training (_disturbed)."""
    rows = []
    for run, cfg in run_records(resolve_dir(runs_dir)):
        if cfg is None or not is_done(run) or (seeds is not None and cfg.get("seed") not in seeds):
            continue
        rows.append({"model": _variant(cfg), "run seconds": _notebook_seconds(run),
                     "training seconds": _training_seconds(run)[0], "slowed runs": _disturbed(run)})
    cols = ["model", "runs", "median run (s)", "total (h)", "training total (h)", "slowed runs"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)

    def agg(g, name):
        return {"model": name, "runs": len(g), "median run (s)": g["run seconds"].median(),
                "total (h)": g["run seconds"].sum() / 3600, "training total (h)": g["training seconds"].sum() / 3600,
                "slowed runs": int(g["slowed runs"].sum())}
    out = [agg(df[df["model"] == m], m) for m in ordered(df["model"], STUDY_MODELS)] + [agg(df, "all")]
    return pd.DataFrame(out, columns=cols)
