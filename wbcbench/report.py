"""Tables for the book: the benchmark table (model x test domain, mean ± Student-t 95% CI over seeds),
majority-class baselines, the side-by-side with the paper's published numbers, dataset counts and colour
statistics per domain, and the run index of the appendix.

The paper's numbers are read from `published_accuracy.csv` next to this file, here and nowhere else.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import CLASSES
from .metrics import mean_ci
from .paths import REPO_ROOT
from .rundir import is_done

PUBLISHED_CSV = Path(__file__).with_name("published_accuracy.csv")
#: Test domains in table order: in-domain first, then the paper's order; anything else alphabetically.
DOMAIN_ORDER = ("raabin:testA", "pbc:test", "pbc:val", "raabin:testB", "lisc-paper", "lisc", "bccd", "jtsc",
                "cellavision")


def resolve_dir(path) -> Path:
    """A results folder given relative to the working directory or, failing that, to the repository root
    (notebooks execute in notebooks/, the CLI in the repository)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def _ordered(values, order=DOMAIN_ORDER) -> list:
    vals = list(dict.fromkeys(values))
    return sorted(vals, key=lambda v: (order.index(v) if v in order else len(order), str(v)))


def load_runs(runs_dir, profile: str | None = None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """collect() over `runs_dir` (an absent folder is simply empty), keeping one profile when given."""
    from .collect import collect
    root = resolve_dir(runs_dir)
    if not root.is_dir():
        return pd.DataFrame(), []
    df, skipped = collect(root)
    if profile is not None and len(df):
        df = df[df["profile"] == profile].reset_index(drop=True)
    return df, skipped


def summary_table(df: pd.DataFrame, eval_mode: str | None = "standard") -> pd.DataFrame:
    """One row per model x test set (x eval mode): accuracy and balanced accuracy mean, Student-t 95% CI
    half-width and standard error over seeds (via collect.summarize), plus the majority-class baseline."""
    from .collect import summarize
    cols = ["model", "test_set", "eval_mode", "accuracy_mean", "accuracy_ci95", "balanced_accuracy_mean",
            "balanced_accuracy_ci95", "majority_baseline", "seeds"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    if eval_mode is not None:
        df = df[df["eval_mode"] == eval_mode]
        if not len(df):
            return pd.DataFrame(columns=cols)
    s = summarize(df)
    base = df.groupby("test_set")["majority_baseline"].first()
    s["majority_baseline"] = s["test_set"].map(base)
    models = list(dict.fromkeys(df["model"]))
    s["_m"] = s["model"].map({m: i for i, m in enumerate(models)})
    order = _ordered(s["test_set"])
    s["_t"] = s["test_set"].map({t: i for i, t in enumerate(order)})
    s = s.sort_values(["_m", "_t", "eval_mode"]).drop(columns=["_m", "_t"]).reset_index(drop=True)
    return s[[c for c in cols if c in s.columns] + [c for c in s.columns if c not in cols]]


def fmt_ci(mean, ci, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± ci' in percent; a single seed has no interval ('mean (n=1)'); missing -> '–'."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    m = f"{mean * scale:.{digits}f}"
    if ci is None or (isinstance(ci, float) and math.isnan(ci)):
        return f"{m} (n=1)"
    return f"{m} ± {ci * scale:.{digits}f}"


def benchmark_table(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Wide table for the book: rows = models, columns = test domains, cells = 'mean ± CI' in %
    (Student-t 95% CI over seeds), and a last row with each domain's majority-class baseline."""
    if summary is None or not len(summary):
        return pd.DataFrame()
    s = summary.copy()
    s["cell"] = [fmt_ci(m, c) for m, c in zip(s[f"{metric}_mean"], s[f"{metric}_ci95"])]
    wide = s.pivot_table(index="model", columns="test_set", values="cell", aggfunc="first", sort=False)
    wide = wide[_ordered(wide.columns)]
    wide = wide.reindex(list(dict.fromkeys(s["model"])))
    base = s.groupby("test_set")["majority_baseline"].first()
    wide.loc["majority baseline"] = [f"{base[t] * 100:.1f}" if t in base else "–" for t in wide.columns]
    wide.index.name = "model"
    wide.columns.name = None
    return wide


def load_published() -> pd.DataFrame:
    """The paper's accuracy (%) table: model, test_set, accuracy_mean, accuracy_ci95, in_paper."""
    df = pd.read_csv(PUBLISHED_CSV)
    df["in_paper"] = df["in_paper"].astype(str).str.lower().eq("yes")
    return df


def compare_with_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """Our accuracy next to the paper's for every (model, test set) the paper reports, with the delta
    (ours - paper, percentage points). Rows the paper has but we have not run show 'not run'."""
    pub = load_published()
    ours = summary[["model", "test_set", "accuracy_mean", "accuracy_ci95", "seeds"]] if len(summary) else \
        pd.DataFrame(columns=["model", "test_set", "accuracy_mean", "accuracy_ci95", "seeds"])
    ours = ours.rename(columns={"accuracy_mean": "ours_mean", "accuracy_ci95": "ours_ci95"})
    m = pub.merge(ours, on=["model", "test_set"], how="left")
    out = pd.DataFrame({
        "model": m["model"], "test_set": m["test_set"], "in paper": m["in_paper"].map({True: "yes", False: "no"}),
        "paper (%)": [f"{a:.2f} ± {c:.2f}" for a, c in zip(m["accuracy_mean"], m["accuracy_ci95"])],
        "ours (%)": ["not run" if pd.isna(a) else fmt_ci(a, c, digits=2)
                     for a, c in zip(m["ours_mean"], m["ours_ci95"])],
        "delta (pp)": [None if pd.isna(a) else round(a * 100 - p, 2)
                       for a, p in zip(m["ours_mean"], m["accuracy_mean"])],
        "seeds": pd.array(m["seeds"], dtype="Int64"),
    })
    return out


# ---------------------------------------------------------------------------------------------------------
# Datasets and domains


def available_domains(data_root=None, names=None) -> list[str]:
    """Registered datasets that load here (split names like pbc:train excluded unless asked for)."""
    from .datasets import DATASETS, get_dataset
    from .errors import WbcError
    names = names or [n for n in DATASETS if ":" not in n or n.startswith("raabin:")]
    ok = []
    for n in names:
        try:
            get_dataset(n, data_root)
            ok.append(n)
        except WbcError:
            pass
    return ok


def class_counts_table(names, data_root=None) -> pd.DataFrame:
    """Images per class per domain, counted from the files on disk (not from the registry)."""
    from .datasets import get_dataset
    rows = []
    for n in names:
        ds = get_dataset(n, data_root)
        c = ds.class_counts()
        rows.append({"dataset": n, **c, "total": len(ds),
                     "majority share (%)": round(100 * max(c.values()) / len(ds), 1)})
    return pd.DataFrame(rows)


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) floats in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(1), rgb.min(1)
    d = mx - mn
    h = np.zeros_like(mx)
    nz = d > 1e-12
    rm = nz & (mx == r)
    gm = nz & (mx == g) & ~rm
    bm = nz & ~rm & ~gm
    h[rm] = ((g - b)[rm] / d[rm]) % 6
    h[gm] = (b - r)[gm] / d[gm] + 2
    h[bm] = (r - g)[bm] / d[bm] + 4
    h = h / 6.0
    s = np.where(mx > 1e-12, d / np.maximum(mx, 1e-12), 0.0)
    return np.stack([h, s, mx], 1)


def domain_sample(name: str, per_class: int, data_root=None, seed: int = 0):
    """A class-balanced subset of a domain (up to `per_class` images of each class)."""
    from .datasets import balanced_indices, get_dataset
    ds = get_dataset(name, data_root)
    return ds.subset(balanced_indices(ds.labels, per_class, seed=seed), name=f"{name}[{per_class}/class]")


def colour_stats(names, size: int = 32, per_class: int = 20, data_root=None) -> pd.DataFrame:
    """Per image mean R, G, B and H, S, V of a class-balanced sample of every domain, decoded once through
    wbcbench.cache at `size` px: the colour shift between staining/imaging setups, in numbers."""
    from .cache import load_images
    rows = []
    for n in names:
        ds = domain_sample(n, per_class, data_root)
        x = np.asarray(load_images(ds, size), dtype=np.float32) / 255.0
        rgb = x.reshape(len(x), -1, 3).mean(1)
        hsv_px = _rgb_to_hsv(x.reshape(-1, 3)).reshape(len(x), -1, 3)
        hsv = hsv_px.mean(1)
        # hue is an angle: average it on the circle (saturation-weighted), else pink (h~0.95 and h~0.02)
        # would average to green
        ang = np.exp(2j * np.pi * hsv_px[..., 0]) * hsv_px[..., 1]
        # in degrees in (-180, 180], 0 = red: stained smears sit around red/magenta, so means across images
        # do not wrap
        hsv[:, 0] = np.degrees(np.angle(ang.sum(1)))
        for i in range(len(x)):
            rows.append({"dataset": n, "class": CLASSES[int(ds.labels[i])],
                         "R": rgb[i, 0], "G": rgb[i, 1], "B": rgb[i, 2],  # 0-1; H in degrees; S, V 0-1
                         "H": hsv[i, 0], "S": hsv[i, 1], "V": hsv[i, 2]})
    return pd.DataFrame(rows)


def colour_summary(stats: pd.DataFrame) -> pd.DataFrame:
    """Mean (and standard deviation) of the per-image colour statistics per domain."""
    g = stats.groupby("dataset", sort=False)[["R", "G", "B", "H", "S", "V"]]
    out = g.mean().round(3)
    out.columns = [f"mean {c}" for c in out.columns]
    out["n"] = g.size()
    return out.reset_index()


# ---------------------------------------------------------------------------------------------------------
# Run index (appendix)


def run_index(results_dir, repo_url: str | None = None) -> pd.DataFrame:
    """Every run directory (finished or not) under `results_dir` with its parameters, test sets, status and
    a link to its executed notebook (any *.ipynb in the run directory), relative to the repository."""
    root = resolve_dir(results_dir)
    rows = []
    for cfg_path in sorted(root.rglob("config.json")) if root.is_dir() else []:
        run = cfg_path.parent
        try:
            cfg = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            rows.append({"run": run.name, "status": f"unreadable config ({type(e).__name__})"})
            continue
        hp = cfg.get("hparams") or {}
        try:
            rel = run.resolve().relative_to(REPO_ROOT)
        except ValueError:
            rel = run
        nbs = sorted(run.glob("*.ipynb"))
        nb_link = "–"
        if nbs:
            target = f"{rel}/{nbs[0].name}"
            nb_link = f"[{nbs[0].name}]({repo_url.rstrip('/')}/blob/main/{target})" if repo_url else target
        rows.append({
            "run": run.name, "model": cfg.get("model"), "profile": cfg.get("profile"), "seed": cfg.get("seed"),
            "train": cfg.get("train"), "test": ", ".join(cfg.get("test") or []),
            "epochs": hp.get("epochs"), "lr": hp.get("lr"), "batch": hp.get("batch_size"),
            "crop": hp.get("crop_size"), "adabn": cfg.get("adabn"), "device": cfg.get("device"),
            "commit": ((cfg.get("code") or {}).get("commit") or "")[:8],
            "status": "done" if is_done(run) else "unfinished",
            "notebook": nb_link, "path": str(rel),
        })
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (no tabulate dependency), for IPython.display.Markdown in the book."""
    if df is None or not len(df):
        return "_(empty)_"
    d = df.reset_index() if index else df
    esc = lambda v: ("–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).replace("|", "\\|")  # noqa: E731
    head = "| " + " | ".join(esc(c) for c in d.columns) + " |"
    sep = "|" + "|".join("---" for _ in d.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join([head, sep, *body])


# ---------------------------------------------------------------------------------------------------------
# Normalisation study

#: The CPU study's normalisation ablation: one ResNet-18 per normalisation layer, plus a small ViT.
NORM_MODELS = ("resnet18_bn", "resnet18_frozenbn", "resnet18_gn", "resnet18_in", "resnet18_ln",
               "resnet18_nonorm", "vit_tiny", "efficientnet_lite0", "efficientnet_lite0_freezebn")


def normalisation_table(summary: pd.DataFrame, models=NORM_MODELS, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Rows = the normalisation variants that have runs, with their normalisation layer (from the model
    registry) and 'mean ± CI' of `metric` per test domain."""
    from .models import MODELS
    if summary is None or not len(summary):
        return pd.DataFrame()
    s = summary[summary["model"].isin(models)]
    if not len(s):
        return pd.DataFrame()
    wide = benchmark_table(s, metric)
    base = wide.loc[["majority baseline"]]
    wide = wide.drop(index="majority baseline")
    wide = wide.reindex([m for m in models if m in wide.index])
    wide.insert(0, "normalisation", [MODELS[m].normalisation if m in MODELS else "?" for m in wide.index])
    base.insert(0, "normalisation", "")
    return pd.concat([wide, base])


# ---------------------------------------------------------------------------------------------------------
# The CPU study (notebooks/06_cpu_study): does batch normalisation break under domain shift?
# Everything below reads finished runs from disk and works for any subset of the grid, including none.

IN_DOMAIN = "pbc:test"
SHIFTED_DOMAINS = ("lisc", "bccd", "jtsc", "cellavision")
STUDY_METRICS = ("accuracy", "balanced_accuracy", "balanced_accuracy_min5")
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                "balanced_accuracy_min5": "balanced accuracy (classes with >= 5 images)"}

#: The paper's claims as comparisons (a, eval mode of a, b, eval mode of b): each claim says a > b.
STUDY_CLAIMS = (
    ("a", "BN collapses under shift relative to the same ResNet-18 without BN statistics", [
        ("resnet18_gn", "standard", "resnet18_bn", "standard"),
        ("resnet18_ln", "standard", "resnet18_bn", "standard"),
        ("resnet18_frozenbn", "standard", "resnet18_bn", "standard"),
        ("resnet18_nonorm", "standard", "resnet18_bn", "standard"),
        ("resnet18_in", "standard", "resnet18_bn", "standard")]),
    ("b", "GroupNorm holds up better than BN", [("resnet18_gn", "standard", "resnet18_bn", "standard")]),
    ("c", "frozen BN helps (EfficientNet-Lite0, ImageNet statistics frozen vs BN in train mode)", [
        ("efficientnet_lite0_freezebn", "standard", "efficientnet_lite0", "standard")]),
    ("d", "a ViT holds up better than the BN ResNet-18", [("vit_tiny", "standard", "resnet18_bn", "standard")]),
    ("e", "AdaBN recovers accuracy of BN models", [
        ("resnet18_bn", "adabn", "resnet18_bn", "standard"),
        ("efficientnet_lite0", "adabn", "efficientnet_lite0", "standard")]),
)


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def row_label(model: str, eval_mode: str) -> str:
    """'resnet18_bn' or 'resnet18_bn + AdaBN'."""
    return model if eval_mode == "standard" else f"{model} + {'AdaBN' if eval_mode == 'adabn' else eval_mode}"


def _model_order(models) -> list[str]:
    from .sweep import CPU_MODELS
    grid = [m if isinstance(m, str) else m[0] for m in CPU_MODELS]
    vals = list(dict.fromkeys(models))
    return sorted(vals, key=lambda m: (grid.index(m) if m in grid else len(grid), str(m)))


def study_protocol(runs_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What was actually run, from the run configs on disk: (settings, seeds).
    settings: one row per distinct training setting (profile hyper-parameters, train set, test sets, AdaBN)
    with the models that used it; seeds: per model, the seeds finished (`done` marker) and unfinished."""
    root = resolve_dir(runs_dir)
    cfgs = []
    for p in sorted(root.rglob("config.json")) if root.is_dir() else []:
        cfg = _read_json(p)
        if isinstance(cfg, dict):
            cfgs.append((p.parent, cfg))
    settings, seeds = {}, {}
    for run, cfg in cfgs:
        hp = dict(cfg.get("hparams") or {})
        key = json.dumps({"profile": cfg.get("profile"), "train": cfg.get("train"), "test": cfg.get("test"),
                          "adabn": cfg.get("adabn"), **hp}, sort_keys=True)
        settings.setdefault(key, set()).add(cfg.get("model"))
        s = seeds.setdefault(cfg.get("model"), {"done": set(), "unfinished": set()})
        s["done" if is_done(run) else "unfinished"].add(cfg.get("seed"))
    srows = []
    for key, models in settings.items():
        k = json.loads(key)
        srows.append({"models": ", ".join(_model_order(models)), "profile": k.get("profile"),
                      "train": k.get("train"),
                      "train subset (images/class)": k.get("train_subset_per_class") or "all",
                      "test": ", ".join(k.get("test") or []), "AdaBN": k.get("adabn"),
                      "stored px": k.get("stored_size"), "crop px": k.get("crop_size"), "epochs": k.get("epochs"),
                      "warm-up": k.get("warmup_epochs"), "lr": k.get("lr"), "weight decay": k.get("weight_decay"),
                      "batch": k.get("batch_size"), "flips": "h+v" if k.get("hflip") and k.get("vflip") else
                      ("h" if k.get("hflip") else ("v" if k.get("vflip") else "none")),
                      "mixup": k.get("mixup_alpha"), "ImageNet-pretrained": k.get("pretrained")})
    fmt = lambda s: ", ".join(str(x) for x in sorted(s)) or "–"  # noqa: E731
    rrows = [{"model": m, "seeds finished": len(seeds[m]["done"]), "finished": fmt(seeds[m]["done"]),
              "unfinished (running or interrupted)": fmt(seeds[m]["unfinished"] - seeds[m]["done"])}
             for m in _model_order(seeds)]
    return pd.DataFrame(srows), pd.DataFrame(rrows)


def pilot_table(pilot_dir, test_set: str = "pbc:val") -> pd.DataFrame:
    """The runs used to choose the cpu profile: one row per run directory, with its resolution, epochs,
    training subset, accuracy on `test_set` and the training time summed over the epochs of log.csv
    (wall-clock seconds as measured, on whatever else the machine was doing then)."""
    root = resolve_dir(pilot_dir)
    rows = []
    for p in sorted(root.rglob("config.json")) if root.is_dir() else []:
        run, cfg = p.parent, _read_json(p)
        if not isinstance(cfg, dict):
            continue
        hp = cfg.get("hparams") or {}
        m = _read_json(run / "eval" / test_set / "metrics.json") if is_done(run) else None
        try:
            log = pd.read_csv(run / "log.csv")
            secs, epochs_logged = float(log["seconds"].sum()), int(len(log))
        except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
            secs, epochs_logged = float("nan"), 0
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


def study_summary(df: pd.DataFrame, metrics=STUDY_METRICS) -> pd.DataFrame:
    """One row per model x eval mode x test set: mean, Student-t 95% CI half-width and SEM over seeds of
    each metric, the number of seeds, the majority baseline and a row label ('model + AdaBN')."""
    from .collect import summarize
    cols = ["label", "model", "eval_mode", "test_set", "seeds", "majority_baseline"] + \
        [f"{m}_{s}" for m in metrics for s in ("mean", "ci95", "sem")]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    s = summarize(df, metrics=tuple(metrics))
    s["majority_baseline"] = s["test_set"].map(df.groupby("test_set")["majority_baseline"].first())
    s["label"] = [row_label(m, e) for m, e in zip(s["model"], s["eval_mode"])]
    morder = {m: i for i, m in enumerate(_model_order(s["model"]))}
    torder = {t: i for i, t in enumerate(_ordered(s["test_set"]))}
    s = s.assign(_m=s["model"].map(morder), _e=(s["eval_mode"] != "standard").astype(int),
                 _t=s["test_set"].map(torder)).sort_values(["_m", "_e", "_t"])
    return s.drop(columns=["_m", "_e", "_t"]).reset_index(drop=True)[cols]


def fmt_ci_n(mean, ci, n, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± ci' in percent; with one seed the interval is undefined: 'mean (1 seed, no CI)'."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or not n:
        return "–"
    if n == 1 or ci is None or (isinstance(ci, float) and math.isnan(ci)):
        return f"{mean * scale:.{digits}f} ({int(n)} seed, no CI)"
    return f"{mean * scale:.{digits}f} ± {ci * scale:.{digits}f}"


def cell_value(summary: pd.DataFrame, model: str, test_set: str, metric: str = "balanced_accuracy",
               eval_mode: str = "standard") -> tuple[float, float, int]:
    """(mean, 95% CI half-width, seeds) of one study_summary cell; (nan, nan, 0) when it has no runs."""
    g = summary[(summary["model"] == model) & (summary["test_set"] == test_set) & (summary["eval_mode"] == eval_mode)] \
        if summary is not None and len(summary) else ()
    if not len(g):
        return float("nan"), float("nan"), 0
    r = g.iloc[0]
    return float(r[f"{metric}_mean"]), float(r[f"{metric}_ci95"]), int(r["seeds"])


def adabn_gains(df: pd.DataFrame, metric: str = "balanced_accuracy",
                domains=(IN_DOMAIN, *SHIFTED_DOMAINS)) -> pd.DataFrame:
    """AdaBN minus standard evaluation of the same trained networks, for every model evaluated both ways:
    per domain, the mean paired difference over seeds (percentage points) and its 95% Student-t interval."""
    cols = ["model", "test_set", "gain", "lo", "hi", "seeds"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    models = _model_order(df.loc[df["eval_mode"] == "adabn", "model"].unique())
    rows = []
    for m in models:
        for t in domains:
            r = compare(df, m, m, metric, t, "adabn", "standard", paired=True)
            if r["n"]:
                rows.append({"model": m, "test_set": t, "gain": r["diff"], "lo": r["diff"] - r["ci95"],
                             "hi": r["diff"] + r["ci95"], "seeds": r["n"]})
    return pd.DataFrame(rows, columns=cols)


def adabn_gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """adabn_gains as a model x domain table of '+gain [lo, hi]' in percentage points."""
    if gains is None or not len(gains):
        return pd.DataFrame()
    g = gains.assign(cell=[f"{d * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]" if not math.isnan(lo)
                           else f"{d * 100:+.1f} (no CI)" for d, lo, hi in zip(gains["gain"], gains["lo"], gains["hi"])])
    wide = g.pivot_table(index="model", columns="test_set", values="cell", aggfunc="first", sort=False)
    wide = wide[_ordered(wide.columns)]
    wide.insert(0, "seeds", g.groupby("model", sort=False)["seeds"].min().reindex(wide.index).to_numpy())
    wide.columns.name = None
    return wide


def study_table(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Wide table: rows = models (AdaBN rows right after their standard row), a `seeds` column, one column
    per test domain with 'mean ± 95% CI' in %, and a last row with each domain's majority baseline."""
    if summary is None or not len(summary):
        return pd.DataFrame()
    s = summary.copy()
    s["cell"] = [fmt_ci_n(m, c, n) for m, c, n in zip(s[f"{metric}_mean"], s[f"{metric}_ci95"], s["seeds"])]
    labels = list(dict.fromkeys(s["label"]))
    wide = s.pivot_table(index="label", columns="test_set", values="cell", aggfunc="first", sort=False)
    wide = wide[_ordered(wide.columns)].reindex(labels)
    seeds = s.groupby("label")["seeds"].max()
    wide.insert(0, "seeds", [int(seeds[lab]) for lab in wide.index])
    base = s.groupby("test_set")["majority_baseline"].first()
    wide.loc["majority baseline"] = ["–"] + [f"{base[t] * 100:.1f}" if t in base else "–" for t in wide.columns[1:]]
    wide.index.name = "model"
    wide.columns.name = None
    return wide.fillna("–")


def domain_drops(df: pd.DataFrame, metric: str = "accuracy", source: str = IN_DOMAIN,
                 domains=SHIFTED_DOMAINS) -> pd.DataFrame:
    """Per run and shifted domain, the drop `metric`(source) - `metric`(domain) in the same eval mode
    (AdaBN rows: source also with AdaBN), then mean and Student-t 95% CI over seeds per model x domain."""
    from .metrics import mean_ci
    cols = ["label", "model", "eval_mode", "test_set", "drop_mean", "drop_ci95", "drop_lo", "drop_hi", "seeds"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    src = df[df["test_set"] == source].set_index(["run_dir", "eval_mode"])[metric]
    rows = []
    tgt = df[df["test_set"].isin(domains)]
    per_run = []
    for r in tgt.itertuples(index=False):
        key = (r.run_dir, r.eval_mode)
        if key in src.index and getattr(r, metric) is not None and not pd.isna(getattr(r, metric)):
            per_run.append({"model": r.model, "eval_mode": r.eval_mode, "test_set": r.test_set, "seed": r.seed,
                            "drop": float(src[key]) - float(getattr(r, metric))})
    if not per_run:
        return pd.DataFrame(columns=cols)
    pr = pd.DataFrame(per_run)
    for (m, e, t), g in pr.groupby(["model", "eval_mode", "test_set"], sort=False):
        c = mean_ci(g["drop"].tolist())
        half = 0.0 if math.isnan(c["ci95"]) else c["ci95"]
        rows.append({"label": row_label(m, e), "model": m, "eval_mode": e, "test_set": t, "drop_mean": c["mean"],
                     "drop_ci95": c["ci95"], "drop_lo": c["mean"] - half, "drop_hi": c["mean"] + half,
                     "seeds": c["n"]})
    out = pd.DataFrame(rows)
    morder = {m: i for i, m in enumerate(_model_order(out["model"]))}
    torder = {t: i for i, t in enumerate(domains)}
    out = out.assign(_m=out["model"].map(morder), _e=(out["eval_mode"] != "standard").astype(int),
                     _t=out["test_set"].map(torder)).sort_values(["_m", "_e", "_t"])
    return out.drop(columns=["_m", "_e", "_t"]).reset_index(drop=True)[cols]


def recall_by_class(df: pd.DataFrame, domains=SHIFTED_DOMAINS, eval_modes=("standard", "adabn")) -> pd.DataFrame:
    """Long table: per model (x eval mode) x domain x class, the recall averaged over seeds and the number
    of seeds; a class absent from a domain has no recall (NaN) and its test-image count is 0."""
    cols = ["label", "model", "eval_mode", "test_set", "class", "recall", "seeds", "images"]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    d = df[df["test_set"].isin(domains) & df["eval_mode"].isin(eval_modes)]
    rows = []
    for (m, e, t), g in d.groupby(["model", "eval_mode", "test_set"], sort=False):
        counts = (_read_json(Path(g["eval_dir"].iloc[0]) / "metrics.json") or {}).get("class_counts", {})
        for c in CLASSES:
            v = pd.to_numeric(g[f"recall_{c}"], errors="coerce")
            rows.append({"label": row_label(m, e), "model": m, "eval_mode": e, "test_set": t, "class": c,
                         "recall": float(v.mean()) if v.notna().any() else float("nan"),
                         "seeds": int(v.notna().sum()), "images": counts.get(c)})
    out = pd.DataFrame(rows)
    morder = {m: i for i, m in enumerate(_model_order(out["model"]))}
    out = out.assign(_m=out["model"].map(morder), _e=(out["eval_mode"] != "standard").astype(int))
    return out.sort_values(["_m", "_e"], kind="stable").drop(columns=["_m", "_e"]).reset_index(drop=True)[cols]


def rank_models(summary: pd.DataFrame, metric: str = "balanced_accuracy", domains=SHIFTED_DOMAINS,
                eval_mode: str = "standard") -> pd.DataFrame:
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


def summed_confusion(df: pd.DataFrame, model: str, test_set: str, eval_mode: str = "standard"):
    """The confusion matrix (rows true, columns predicted) summed over the seeds of `model` on `test_set`,
    read from each run's metrics.json; (matrix, seeds) or (None, 0) when there is none."""
    if df is None or not len(df):
        return None, 0
    g = df[(df["model"] == model) & (df["test_set"] == test_set) & (df["eval_mode"] == eval_mode)]
    total, n = None, 0
    for d in g["eval_dir"]:
        cm = (_read_json(Path(d) / "metrics.json") or {}).get("confusion")
        if cm is None:
            continue
        cm = np.asarray(cm, dtype=np.int64)
        total = cm if total is None else total + cm
        n += 1
    return total, n


def _seed_values(df, model, eval_mode, test_set, metric) -> pd.Series:
    g = df[(df["model"] == model) & (df["eval_mode"] == eval_mode) & (df["test_set"] == test_set)]
    v = pd.to_numeric(g[metric], errors="coerce")
    return pd.Series(v.to_numpy(dtype=float), index=g["seed"].to_numpy()).dropna().groupby(level=0).mean()


def compare(df: pd.DataFrame, a: str, b: str, metric: str, test_set: str, mode_a: str = "standard",
            mode_b: str = "standard", paired: str | bool = "auto", confidence: float = 0.95) -> dict:
    """Difference of means (a - b) of `metric` on `test_set` over seeds, with its Student-t confidence interval.

    Paired t on per-seed differences when `paired` is True, or when "auto" and a and b are the same model
    (different eval modes: the same trained network, e.g. AdaBN vs standard) and share at least 2 seeds
    (only the shared seeds are used); otherwise Welch's t (unequal variances, Welch-Satterthwaite degrees of
    freedom). verdict: "holds" (interval above 0: a > b), "does not hold" (interval below 0),
    "inconclusive (CI includes 0)", or "undetermined (...)" when a side has fewer than 2 seeds."""
    from scipy import stats
    va, vb = _seed_values(df, a, mode_a, test_set, metric), _seed_values(df, b, mode_b, test_set, metric)
    out = {"a": row_label(a, mode_a), "b": row_label(b, mode_b), "metric": metric, "test_set": test_set,
           "n_a": int(len(va)), "n_b": int(len(vb)), "n": 0, "test": None, "diff": float("nan"),
           "ci95": float("nan"), "lo": float("nan"), "hi": float("nan"), "df": float("nan")}
    shared = sorted(set(va.index) & set(vb.index))
    use_paired = paired is True or (paired == "auto" and a == b and len(shared) >= 2)
    q = 0.5 + confidence / 2
    if use_paired:
        d = va.loc[shared].to_numpy() - vb.loc[shared].to_numpy()
        n = len(d)
        c = mean_ci(d, confidence)
        out.update(test="paired t", n=n, diff=c["mean"], ci95=c["ci95"])
        if n >= 2:
            out["df"] = n - 1
    else:
        na, nb = len(va), len(vb)
        out.update(test="Welch t", n=min(na, nb))
        if na and nb:
            out["diff"] = float(va.mean() - vb.mean())
        if na >= 2 and nb >= 2:
            sa, sb = float(va.var(ddof=1)) / na, float(vb.var(ddof=1)) / nb
            se = math.sqrt(sa + sb)
            if se > 0:
                dof = (sa + sb) ** 2 / ((sa ** 2 / (na - 1) if sa else 0.0) + (sb ** 2 / (nb - 1) if sb else 0.0))
                out["df"] = float(dof)
                out["ci95"] = float(stats.t.ppf(q, dof) * se)
            else:
                out["df"], out["ci95"] = float(na + nb - 2), 0.0
    if math.isnan(out["ci95"]):
        if out["n_a"] == 0 or out["n_b"] == 0:
            missing = [lab for lab, n in ((out["a"], out["n_a"]), (out["b"], out["n_b"])) if n == 0]
            out["verdict"] = f"undetermined (no finished runs of {' and '.join(missing)} on {test_set})"
        else:
            out["verdict"] = "undetermined (a confidence interval needs at least 2 seeds on each side)"
        return out
    out["lo"], out["hi"] = out["diff"] - out["ci95"], out["diff"] + out["ci95"]
    if out["lo"] > 0:
        out["verdict"] = "holds"
    elif out["hi"] < 0:
        out["verdict"] = "does not hold"
    else:
        out["verdict"] = "inconclusive (CI includes 0)"
    return out


_EMPTY_RUNS = pd.DataFrame(columns=["model", "eval_mode", "test_set", "seed", *STUDY_METRICS])


def verdicts(df: pd.DataFrame, metric: str = "balanced_accuracy", domains=SHIFTED_DOMAINS,
             claims=STUDY_CLAIMS) -> pd.DataFrame:
    """compare() for every comparison of every claim on every domain: one row each, with a sentence."""
    runs = df if df is not None and len(df) else _EMPTY_RUNS
    rows = []
    for cid, text, pairs in claims:
        for a, ma, b, mb in pairs:
            for t in domains:
                r = compare(runs, a, b, metric, t, ma, mb)
                rows.append({"claim": cid, "statement": text, **r, "sentence": verdict_sentence(r, cid)})
    return pd.DataFrame(rows)


def verdict_sentence(r: dict, claim: str = "") -> str:
    """A plain sentence for one comparison (differences in percentage points)."""
    head = f"({claim}) " if claim else ""
    what = f"{head}{r['a']} vs {r['b']} on {r['test_set']} ({METRIC_NAMES.get(r['metric'], r['metric'])})"
    if r["verdict"].startswith("undetermined"):
        extra = "" if math.isnan(r["diff"]) else f": difference {r['diff'] * 100:+.1f} pp without an interval"
        return f"{what}: {r['verdict']}{extra}; seeds {r['n_a']}/{r['n_b']}."
    return (f"{what}: {r['verdict']} — difference {r['diff'] * 100:+.1f} pp, 95% CI "
            f"[{r['lo'] * 100:+.1f}, {r['hi'] * 100:+.1f}] ({r['test']}, seeds {r['n_a']}/{r['n_b']}"
            f"{', ' + str(r['n']) + ' pairs' if r['test'] == 'paired t' else ''}).")


def verdict_overview(v: pd.DataFrame) -> pd.DataFrame:
    """Per claim: how many (comparison, domain) cells hold, do not hold, are inconclusive or undetermined."""
    if v is None or not len(v):
        return pd.DataFrame()
    kind = v["verdict"].str.split(" ").str[0].replace({"does": "does not hold"})
    t = pd.crosstab([v["claim"], v["statement"]], kind)
    for c in ("holds", "does not hold", "inconclusive", "undetermined"):
        if c not in t.columns:
            t[c] = 0
    return t[["holds", "does not hold", "inconclusive", "undetermined"]].reset_index()


#: Our CPU-study counterpart of each of the paper's situations, for the orientation-only BCCD comparison.
PAPER_COUNTERPARTS = (
    ("BN, statistics updated in training", "resnet50", "efficientnet_lite0"),
    ("BN, statistics updated in training", "vgg16_bn", "resnet18_bn"),
    ("BN frozen at ImageNet statistics", "resnet50_freezebn", "efficientnet_lite0_freezebn"),
    ("GroupNorm", "resnet50_gn", "resnet18_gn"),
    ("no normalisation", "vgg16", "resnet18_nonorm"),
    ("ViT (LayerNorm)", "vit_b_16", "vit_tiny"),
)


def paper_orientation(summary: pd.DataFrame, test_set: str = "bccd") -> pd.DataFrame:
    """The paper's accuracy on `test_set` (its Table 1, Raabin-trained, 224 px, ImageNet-pretrained) next to
    our CPU-study counterpart (PBC-trained, 48 px, mostly from scratch): for orientation only."""
    pub = load_published()
    pub = pub[pub["test_set"] == test_set].set_index("model")
    s = summary[(summary["test_set"] == test_set) & (summary["eval_mode"] == "standard")].set_index("model") \
        if summary is not None and len(summary) else pd.DataFrame()
    rows = []
    for situation, theirs, ours in PAPER_COUNTERPARTS:
        p = pub.loc[theirs] if theirs in pub.index else None
        o = s.loc[ours] if ours in s.index else None
        rows.append({
            "normalisation": situation, "paper model": theirs,
            f"paper {test_set} accuracy (%)": "–" if p is None else f"{p['accuracy_mean']:.2f} ± {p['accuracy_ci95']:.2f}",
            "in paper's table": "–" if p is None else ("yes" if p["in_paper"] else "no"),
            "our model": ours,
            f"our {test_set} accuracy (%)": "not run yet" if o is None else
            fmt_ci_n(o["accuracy_mean"], o["accuracy_ci95"], o["seeds"]),
            f"our {test_set} balanced accuracy (%)": "not run yet" if o is None else
            fmt_ci_n(o["balanced_accuracy_mean"], o["balanced_accuracy_ci95"], o["seeds"]),
        })
    return pd.DataFrame(rows)


def study_rerun(runs_dir, out: str | None = None) -> pd.DataFrame:
    """For every run directory under `runs_dir`: the CLI and papermill commands that redo it, rebuilt from
    its config.json."""
    from .sweep import rerun_commands
    from .train import train_args
    root = resolve_dir(runs_dir)
    out = out or str(runs_dir)
    rows = []
    for p in sorted(root.rglob("config.json")) if root.is_dir() else []:
        cfg = _read_json(p)
        if not isinstance(cfg, dict):
            continue
        args = train_args(cfg)
        args.pop("weights")
        cmds = rerun_commands(**{k: args.pop(k) for k in ("model", "profile", "seed", "train", "test", "adabn")},
                              out=out, data_root=None, overrides=args)
        rows.append({"model": cfg.get("model"), "seed": cfg.get("seed"), "run": p.parent.name,
                     "done": is_done(p.parent), "cli": cmds["cli"], "papermill": cmds["papermill"]})
    df = pd.DataFrame(rows, columns=["model", "seed", "run", "done", "cli", "papermill"])
    if len(df):
        morder = {m: i for i, m in enumerate(_model_order(df["model"]))}
        df = df.assign(_m=df["model"].map(morder)).sort_values(["_m", "seed"]).drop(columns="_m").reset_index(drop=True)
    return df


def domain_class_counts(df: pd.DataFrame, domains=(IN_DOMAIN, *SHIFTED_DOMAINS)) -> pd.DataFrame:
    """Test images per class in each test domain, as recorded in the runs' metrics.json (one run each)."""
    if df is None or not len(df):
        return pd.DataFrame()
    rows = []
    for t in _ordered([t for t in df["test_set"].unique() if t in domains]):
        counts = (_read_json(Path(df[df["test_set"] == t]["eval_dir"].iloc[0]) / "metrics.json") or {}) \
            .get("class_counts") or {}
        rows.append({"test set": t, **{c: counts.get(c) for c in CLASSES},
                     "classes with < 5 images": ", ".join(c for c in CLASSES if (counts.get(c) or 0) < 5) or "none"})
    return pd.DataFrame(rows)


def grid_size(grid: str = "cpu-study") -> dict:
    """Models, seeds and number of runs of a named sweep grid (wbcbench.sweep.GRIDS)."""
    from .sweep import GRIDS
    g = GRIDS[grid]
    models = [m if isinstance(m, str) else m[0] for m in g["models"]]
    return {"models": models, "seeds": list(g["seeds"]), "runs": len(models) * len(g["seeds"])}


def study_checkpoint(runs_dir="results/cpu", model: str = "resnet18_bn", seed: int = 0, retrain_into=None,
                     data_root=None) -> tuple[Path | None, str]:
    """The trained network of a finished study run, and a sentence saying where it came from.

    Checkpoints are never committed. When the run's `model.pt` is not on this machine and `retrain_into`
    is a folder, the run is trained again from its committed config.json into that folder (kept there for
    the next build) and the sentence says whether its predictions match the committed ones. Returns
    (None, why) when there is no such finished run."""
    root = resolve_dir(runs_dir)
    runs = [r for r in sorted(root.glob(f"{model}-*-s{seed}-*")) if is_done(r)] if root.is_dir() else []
    if not runs:
        return None, f"no finished `{model}` seed-{seed} run in `{runs_dir}`"
    run = runs[0]
    if (run / "model.pt").is_file():
        return run, f"the study's own checkpoint, `{run}/model.pt`"
    if retrain_into is None:
        return None, f"`{run}` has no model.pt on this machine (checkpoints are not committed)"
    from .train import reproduce
    again = reproduce(run, retrain_into, data_root=data_root)
    cmp = compare_runs(run, again)
    same = int(cmp["identical predictions"].sum())
    worst = float((cmp["accuracy (retrained)"] - cmp["accuracy (committed)"]).abs().max()) if len(cmp) else float("nan")
    return again, (f"`{run.name}` trained again on this machine from its committed config.json (checkpoints are "
                   f"not committed): its predictions are identical to the committed run's on {same} of "
                   f"{len(cmp)} evaluations" + ("" if same == len(cmp) else
                                               f", and accuracies differ by at most {100 * worst:.1f} points"))


def compare_runs(committed: str | os.PathLike, retrained: str | os.PathLike) -> pd.DataFrame:
    """Per evaluation of `committed`: its accuracy, the same evaluation's in `retrained`, and whether the
    two predictions files are byte-identical (what "reproduced exactly" means here)."""
    rows = []
    for m in sorted(Path(committed).glob("eval/*/metrics.json")):
        other = Path(retrained) / "eval" / m.parent.name
        a, b = _read_json(m) or {}, _read_json(other / "metrics.json") or {}
        pa, pb = m.parent / "predictions.csv", other / "predictions.csv"
        rows.append({"evaluation": m.parent.name, "accuracy (committed)": a.get("accuracy"),
                     "accuracy (retrained)": b.get("accuracy"),
                     "identical predictions": pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes()})
    return pd.DataFrame(rows, columns=["evaluation", "accuracy (committed)", "accuracy (retrained)",
                                       "identical predictions"])


_BENCH_COLS = {"measurement": "measurement", "model": "model", "stored_px": "stored px", "crop_px": "px",
               "batch_size": "batch", "images_per_s": "images/s", "input_wait_pct": "waiting for input, %",
               "input_cpu_ms_per_image": "input CPU, ms/image", "ratio": "ratio", "unit": "unit",
               "target": "target", "met": "met", "value": "value", "load_avg_1min": "load"}
_BENCH_TITLES = {"train": "Training, side by side", "loader": "Loader alone (pbc:train, 256 → 224 px, batch 128)",
                 "cache": "Decoded-image cache, all of PBC", "rss": "Peak memory of a training run"}


def benchmark_markdown(csv) -> str:
    """The performance page's tables from a CSV written by benchmarks/pipeline.py, one per section."""
    csv = resolve_dir(csv)
    if not csv.is_file():
        return f"_No measurements yet: `{csv.name}` does not exist. Run `python benchmarks/pipeline.py` to produce it._"
    df = pd.read_csv(csv)
    m = df.iloc[0]
    out = [f"Measured on **{m.device}**, {m.cores} cores, torch {m.torch} ({m.torch_threads} threads).\n"]
    for section, title in _BENCH_TITLES.items():
        part = df[df.section == section]
        if not len(part):
            continue
        part = part[[c for c in _BENCH_COLS if c in part and part[c].notna().any()]].rename(columns=_BENCH_COLS)
        for c in ("images/s", "value", "waiting for input, %"):
            if c in part:
                part[c] = part[c].map(lambda v: "" if pd.isna(v) else f"{v:,.1f}")
        for c in ("stored px", "px", "batch"):
            if c in part:
                part[c] = part[c].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
        for c in ("ratio", "input CPU, ms/image"):
            if c in part:
                part[c] = part[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        out += [f"**{title}**", to_markdown(part.fillna(""))]
    return "\n\n".join(out)


def paper_models_markdown(csv) -> str:
    """The table of benchmarks/paper_models.py: per paper model, speed, memory and a paper run's cost."""
    csv = resolve_dir(csv)
    if not csv.is_file():
        return f"_No measurements yet: `{csv.name}` does not exist. Run `python benchmarks/paper_models.py`._"
    df = pd.read_csv(csv)
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
    csv = resolve_dir(csv)
    if not csv.is_file():
        return f"_No measurements yet: `{csv.name}` does not exist. Run `python benchmarks/determinism.py`._"
    df = pd.read_csv(csv)
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

