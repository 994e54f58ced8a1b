"""Tables for the book: the benchmark table (model x test domain, mean ± Student-t 95% CI over seeds),
majority-class baselines, the side-by-side with the paper's published numbers, dataset counts and colour
statistics per domain, and the run index of the appendix.

The paper's numbers are read from `published_accuracy.csv` next to this file, here and nowhere else.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import CLASSES
from .paths import REPO_ROOT

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
            "status": "done" if (run / "done").is_file() else "unfinished",
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
