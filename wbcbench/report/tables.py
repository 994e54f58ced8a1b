"""The table helpers every chapter uses: one row order, one way to write 'mean ± CI', one summary of runs
over seeds, one wide model x domain table, and markdown without a tabulate dependency."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from wbcbench.analysis.stats import mean_ci
from wbcbench.core.metrics import MIN_CLASS_SUPPORT
from wbcbench.core.names import DOMAIN_ORDER, METHOD_NAMES, STANDARD, ordered, row_label  # noqa: F401  (re-exported)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy")

#: Reader names of internal column and index names that would otherwise stand in a table's header; code and
#: tests keep the internal names, `for_reader` swaps them when a table is shown.
READER_NAMES = {"adabn": "AdaBN", "augment": "augmentation", "test_set": "test domain", "eval_mode": "evaluation",
                "label_a": "recipe", "label_b": "against", "lr": "learning rate", "batch": "batch size",
                "crop": "crop (px)", "in_paper": "in the paper", "n": "images", "balanced_accuracy_min5":
                "balanced accuracy (classes with ≥ 5 images)", "balanced_accuracy": "balanced accuracy",
                "macro_f1": "macro-F1", "majority_baseline": "majority baseline"}

#: A cell written by fmt_ci or fmt_gain ('85.1 ± 1.2', '+2.1 [+0.3, +3.9]', '85.0 (1 seed, no CI)'): shown on
#: one line (its spaces made non-breaking by to_markdown), so that a narrow column never splits a number
#: from its interval.
_INTERVAL_CELL = re.compile(r"[+-]?\d+(\.\d+)?( ± \d+(\.\d+)?| \[[+-]?\d+(\.\d+)?, [+-]?\d+(\.\d+)?\]"
                            r"| \((1 seed, )?no CI\))")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def sort_rows(df: pd.DataFrame, model_order=(), domain_order=DOMAIN_ORDER, then=()) -> pd.DataFrame:
    """Rows by model (`model_order` first, see `ordered`), standard evaluation before adapted ones, test
    domain (`domain_order`; None: keep their order), then the columns `then`; stable, so ties keep their
    order. Columns the frame lacks are not sorted on."""
    keys, cols = {}, []
    for col, order in (("model", model_order), ("eval_mode", (STANDARD,)), ("test_set", domain_order)):
        if order is not None and col in df.columns:
            rank = {v: i for i, v in enumerate(ordered(df[col], order))}
            keys[f"_{col}"] = df[col].map(rank)
            cols.append(f"_{col}")
    by = cols + [c for c in then if c in df.columns]
    if not by:
        return df.reset_index(drop=True)
    return df.assign(**keys).sort_values(by, kind="stable").drop(columns=cols).reset_index(drop=True)


def fmt_ci(mean, ci, n=None, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± ci' in percent. One seed has no interval: 'mean (1 seed, no CI)'. No value, or n=0: '–'."""
    if _missing(mean) or n == 0:
        return "–"
    m = f"{mean * scale:.{digits}f}"
    if n == 1 or _missing(ci):
        return f"{m} (1 seed, no CI)"
    return f"{m} ± {ci * scale:.{digits}f}"


def fmt_gain(d, lo, hi) -> str:
    """A paired difference in percentage points with its interval: '+2.1 [+0.3, +3.9]', '+2.1 (no CI)' with
    one pair, '–' with none."""
    if _missing(d):
        return "–"
    def pp(x):
        return f"{round(x * 100, 1) + 0.0:+.1f}"   # + 0.0: no '-0.0'
    return f"{pp(d)} (no CI)" if _missing(lo) else f"{pp(d)} [{pp(lo)}, {pp(hi)}]"


def pct(x, digits: int = 1) -> str:
    """A fraction as a percentage for a table cell ('85.1'); '–' for none."""
    return "–" if pd.isna(x) else f"{float(x) * 100:.{digits}f}"


def for_reader(df: pd.DataFrame, percent=(), names: dict | None = None) -> pd.DataFrame:
    """A table as the book shows it (a copy): the fraction columns `percent` in % with one decimal and their
    header marked '(%)', and internal names (READER_NAMES, then `names`) replaced in the header and the
    index name."""
    if df is None or not len(df.columns):
        return df
    out = df.copy()
    for c in percent:
        out[c] = [pct(v) for v in out[c]]
    rename = {**READER_NAMES, **(names or {})}
    out.columns = [rename.get(c, c) + (" (%)" if c in percent else "") for c in out.columns]
    if out.index.name is not None:
        out.index.name = rename.get(out.index.name, out.index.name)
    return out


def chance_level(metric: str, class_counts: dict) -> float:
    """What a classifier that ignores the image scores on a test set with these class counts: for the
    balanced accuracies 1/K, K the classes with a test image (with at least MIN_CLASS_SUPPORT for
    balanced_accuracy_min5, as wbcbench.core.metrics averages), which any constant prediction scores exactly
    and random guessing in expectation; for accuracy the majority class's share. NaN for other metrics or
    no images."""
    counts = [int(v or 0) for v in (class_counts or {}).values()]
    if not sum(counts):
        return math.nan
    if metric == "accuracy":
        return max(counts) / sum(counts)
    floor = {"balanced_accuracy": 1, "balanced_accuracy_min5": MIN_CLASS_SUPPORT}.get(metric)
    k = sum(c >= floor for c in counts) if floor else 0
    return 1.0 / k if k else math.nan


def summarize(df: pd.DataFrame, metrics=("accuracy", "balanced_accuracy"), by=("model", "test_set", "eval_mode")):
    """Mean, Student-t 95% CI half-width and standard error over seeds for each group."""
    out = []
    for key, g in df.groupby(list(by), sort=False):
        row = dict(zip(by, key))
        for m in metrics:
            s = mean_ci(g[m].tolist())
            row.update({f"{m}_mean": s["mean"], f"{m}_ci95": s["ci95"], f"{m}_sem": s["sem"]})
        row["seeds"] = int(g["seed"].nunique())
        out.append(row)
    return pd.DataFrame(out)


def summary_table(df: pd.DataFrame, eval_mode: str | None = None, metrics=SUMMARY_METRICS,
                  model_order=()) -> pd.DataFrame:
    """One row per model x eval mode x test set (only `eval_mode` when given): a row label ('model + AdaBN'),
    the number of seeds, the majority-class baseline, and per metric the mean, Student-t 95% CI half-width
    and standard error over seeds. Rows in `sort_rows` order."""
    cols = ["label", "model", "eval_mode", "test_set", "seeds", "majority_baseline"] + \
        [f"{m}_{s}" for m in metrics for s in ("mean", "ci95", "sem")]
    if df is not None and len(df) and eval_mode is not None:
        df = df[df["eval_mode"] == eval_mode]
    if df is None or not len(df):
        return pd.DataFrame(columns=cols)
    s = summarize(df, metrics=tuple(metrics))
    s["majority_baseline"] = s["test_set"].map(df.groupby("test_set")["majority_baseline"].first())
    s["label"] = [row_label(m, e) for m, e in zip(s["model"], s["eval_mode"])]
    return sort_rows(s, model_order)[cols]


def wide_table(summary: pd.DataFrame, metric: str = "accuracy", seeds: bool = False,
               chance: dict | None = None) -> pd.DataFrame:
    """Rows = the summary's row labels in its order (adapted rows right after their standard row), columns
    = test domains, cells = 'mean ± 95% CI' of `metric` in %, and a last row with each domain's chance level:
    `chance` maps a test set to it (run_tables.chance_levels); for accuracy it defaults to the majority-class
    share, for other metrics the row is left out without it. With `seeds`, a first column with each row's
    number of seeds, and a one-seed row's cells are its score alone (that column says why there is no
    interval, once per row instead of in every cell). Missing cells are '–'."""
    if summary is None or not len(summary):
        return pd.DataFrame()
    wide = label_by_domain(summary, [pct(m) if seeds and n == 1 else fmt_ci(m, c, n) for m, c, n in
                                     zip(summary[f"{metric}_mean"], summary[f"{metric}_ci95"], summary["seeds"])])
    if chance is None and metric == "accuracy":
        chance = summary.groupby("test_set")["majority_baseline"].first().to_dict()
    if seeds:
        n = summary.groupby("label")["seeds"].max()
        wide.insert(0, "seeds", [int(n[lab]) for lab in wide.index])
    if chance:
        row = [pct(chance[t]) if t in chance else "–" for t in wide.columns if t != "seeds"]
        wide.loc["majority baseline" if metric == "accuracy" else "chance (1/classes)"] = \
            (["–"] if seeds else []) + row
    return wide.fillna("–")


def label_by_domain(rows: pd.DataFrame, cells) -> pd.DataFrame:
    """`cells` (one per row of `rows`) as a table: rows = the rows' `label` in order of appearance (index
    named "model"), columns = their `test_set` in domain order; a missing cell is NaN."""
    wide = rows.assign(cell=list(cells)).pivot_table(index="label", columns="test_set", values="cell",
                                                     aggfunc="first", sort=False)
    wide = wide[ordered(wide.columns)].reindex(list(dict.fromkeys(rows["label"])))
    wide.index.name, wide.columns.name = "model", None
    return wide


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (no tabulate dependency), for IPython.display.Markdown in the book; None/NaN is '–', a
    boolean 'yes' or 'no', a 'mean ± CI' or gain cell stays on one line."""
    if df is None or not len(df):
        return "_(empty)_"
    d = df.reset_index() if index else df
    # float32 cells as numpy prints them (0.862), not widened to float64 (0.8619999885559082)
    d = d.assign(**{c: [float(str(v)) for v in d[c].to_numpy()] for c in d.columns if d[c].dtype == np.float32})

    def esc(v) -> str:
        text = "–" if _missing(v) else ({True: "yes", False: "no"}[v] if isinstance(v, (bool, np.bool_)) else str(v))
        if _INTERVAL_CELL.fullmatch(text):
            text = text.replace(" ", "\u00a0")
        return text.replace("|", "\\|")

    head = "| " + " | ".join(esc(c) for c in d.columns) + " |"
    sep = "|" + "|".join("---" for _ in d.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join([head, sep, *body])
