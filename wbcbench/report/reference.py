"""The book's arms as reference rows: each committed study's networks, per test-time method and domain, as the
mean over seeds in the table of wbcbench.engine.scoring, the format `evaluate_model` and `score` return, so
that `pd.concat([reference_rows(), mine])` puts a new model beside the book's; and a figure of the two."""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import cpu_study, pretrained_study
from wbcbench.analysis.verdict import PRIMARY_METRIC, grid_runs, grid_variants
from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.names import ADAPT_METHODS, DOMAIN_ORDER, STANDARD, ordered
from wbcbench.engine import scoring
from wbcbench.report import plots
from wbcbench.runs.collect import load_runs

#: study name -> (its committed results folder, the grid whose runs it counts)
STUDIES = {"cpu": ("results/cpu", cpu_study.GRID), "cpu-pretrained": ("results/cpu-pretrained", pretrained_study.GRID)}
METHOD_ORDER = (STANDARD, *ADAPT_METHODS)


def study_rows(runs: pd.DataFrame, study: str, grid: str) -> pd.DataFrame:
    """The table's rows of a collect() table's `grid` runs: per network (its variant, as the study names it),
    test-time method and domain, each metric's mean over seeds (a seed run twice is averaged first)."""
    r = grid_runs(runs, grid)
    if not len(r):
        return scoring.tidy([])
    r = r.assign(**{c: pd.to_numeric(r[c], errors="coerce") for c in scoring.METRICS})
    keys = ["model", "test_set", "eval_mode"]
    per_seed = r.groupby([*keys, "seed"], sort=False)[list(scoring.METRICS)].mean()
    means = per_seed.groupby(level=keys, sort=False)
    rows = [scoring.row(m.to_dict(), model=model, domain=domain, method=method, study=study, seeds=k)
            for ((model, domain, method), m), k in zip(means.mean().iterrows(), means.size())]
    table = scoring.tidy(rows)
    rank = {c: {v: i for i, v in enumerate(ordered(table[c], order))}
            for c, order in (("model", grid_variants(grid)), ("method", METHOD_ORDER), ("domain", DOMAIN_ORDER))}
    key = pd.DataFrame({c: table[c].map(r) for c, r in rank.items()})
    return table.loc[key.sort_values(list(rank), kind="stable").index].reset_index(drop=True)


def reference_rows(study: str | None = None, runs_dir=None) -> pd.DataFrame:
    """The book's committed arms in the benchmark's table (wbcbench.engine.scoring.COLUMNS), one row per
    network x test-time method x domain with the mean over its seeds (`seeds` says how many), `study`
    naming the study: "cpu" (the from-scratch CPU study, results/cpu), "cpu-pretrained" (the pretrained
    study, results/cpu-pretrained), or None for both. `runs_dir`: read one study's runs from elsewhere."""
    names = list(STUDIES) if study is None else [study]
    for s in names:
        if s not in STUDIES:
            raise unknown("study", s, STUDIES)
    if runs_dir is not None and len(names) != 1:
        raise WbcError("runs_dir reads one study's runs: name the study too")
    parts = [study_rows(load_runs(runs_dir or STUDIES[s][0])[0], s, STUDIES[s][1]) for s in names]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def beside_chart(table: pd.DataFrame, metric: str = PRIMARY_METRIC, chance: dict | None = None, columns: int = 3):
    """Each row of a benchmark table (evaluate_model, score and reference rows together) as a point per
    domain, the book's rows in grey and the others in colour, with each domain's chance level dashed when
    `chance` (domain -> level, run_tables.chance_levels) gives it. Every layer reads the facet's one data
    source, so each panel draws its own domain only; panels wrap after `columns`."""
    alt = plots._alt()
    t = table.copy()
    book = t["study"].notna()
    several = t.loc[book, "study"].nunique() > 1
    t["row"] = [f"{lab} ({s})" if b and several else lab for lab, s, b in zip(t["label"], t["study"], book)]
    t["source"] = [f"book: {s}" if b else m for m, s, b in zip(t["model"], t["study"], book)]
    t["value"] = t[metric]
    t["chance"] = t["domain"].map(chance or {}).astype(float)
    sources = list(dict.fromkeys(t["source"]))
    palette = iter(["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"])
    colours = ["#9e9e9e" if s.startswith("book: ") else next(palette, "#17becf") for s in sources]
    base = alt.Chart().encode(y=alt.Y("row:N", sort=list(dict.fromkeys(t["row"])), title=None,
                                      axis=alt.Axis(labelLimit=200)))
    pts = base.mark_point(filled=True, size=50).encode(
        x=alt.X("value:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", tickCount=5)),
        color=alt.Color("source:N", scale=alt.Scale(domain=sources, range=colours), title=None,
                        legend=alt.Legend(orient="bottom")),
        tooltip=["row", "domain", alt.Tooltip("value:Q", format=".3f"), "seeds", "n"])
    rule, chance_note = plots.chance_rule(t["chance"])
    subtitle = "grey: the book's networks (mean over seeds)" + chance_note
    return plots._fit(alt.layer(pts, *rule, data=t).properties(width=100).facet(
        facet=alt.Facet("domain:N", sort=ordered(t["domain"]), title=None, header=plots.domain_header()),
        columns=columns).properties(
        title=alt.TitleParams(plots.metric_title(metric), subtitle=subtitle)))
