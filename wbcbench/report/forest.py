"""Figures for the studies' results (notebooks 06-08, the findings page): forest plots of the plan's
comparisons, a dot plot of the pretrained arms, and the headline in-domain vs shifted-domain chart. Each
comes from a table of wbcbench.analysis and goes through plots._fit, so it renders with the book's one font
size; the tables stay beside them for the exact numbers.

Effects are fractions in the tables (percentage points / 100) and percentage points here. Every layer of a
faceted chart reads the facet's one data source, so each panel draws its own rows only.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from wbcbench.analysis.verdict import PRIMARY_METRIC, ROBUSTNESS, SCORE, TEST_TIME, WORDS
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, ordered
from wbcbench.report.plots import (
    FONT_SIZE,
    PAGE_WIDTH,
    _alt,
    _fit,
    benchmark_chart,
    domain_header,
    lookup_expr,
    metric_title,
    rows_fit,
)
from wbcbench.report.words import domain_name, label_name

#: The plan's words, one colour each in every figure (Okabe-Ito blue and vermillion for the decided words).
WORD_COLOURS = {"holds": "#0072B2", "contradicted": "#D55E00", "inconclusive": "#666666",
                "uninformative": "#CC79A7", "undetermined": "#BBBBBB"}
#: A colour that means no word (the held-out gains are estimates, not tested comparisons).
NEUTRAL = "#444444"
#: One shape per shifted domain where the domain is not a panel of its own.
DOMAIN_SHAPES = dict(zip(SHIFTED_DOMAINS, ("circle", "square", "triangle-up", "diamond")))

EFFECT = "effect (pp)"
LOW, HIGH = "95% CI from (pp)", "95% CI to (pp)"
VETOED = "bootstrap disagrees"  # the t-test alone decided, the interval over test images does not agree
NO_PAIRS = "no pairs"  # x position (0) of the 'no paired runs' note on a row without an effect
DOMAIN = "shifted domain"
#: what a claim's effect measures, by its kind (a tooltip's words), and how the subtitle says it
KINDS = (ROBUSTNESS, SCORE, TEST_TIME)
WHAT = {ROBUSTNESS: f"less drop from {IN_DOMAIN}", SCORE: "higher score on the domain",
        TEST_TIME: "gain from the method"}
HOW = {ROBUSTNESS: f"for a robustness claim, how much less the first arm drops from {IN_DOMAIN}",
       SCORE: "for a claim on scores, how much higher the first arm scores on the shifted domain",
       TEST_TIME: "for a test-time claim, what the method gains"}


def _word_colour(alt, title: str = "the plan's word", **legend):
    return alt.Color("word:N", title=title, scale=alt.Scale(domain=list(WORDS), range=list(WORD_COLOURS.values())),
                     **({"legend": alt.Legend(**legend)} if legend else {}))


def _wrap(text: str, width: int) -> list[str]:
    """A row name in lines of at most `width` characters, broken before ' + ' where it can be, else at words."""
    parts = text.split(" + ")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " + " + part
        else:
            lines.append("+ " + part)
    return [w for line in lines for w in textwrap.wrap(line, width, break_on_hyphens=False)]


def _in_pp(df: pd.DataFrame, effect: str = "effect") -> pd.DataFrame:
    """A copy with the effect and its interval in percentage points under reader column names, and the
    note's position where there is no effect (fewer than one pair)."""
    d = df.copy()
    d[EFFECT] = pd.to_numeric(d[effect], errors="coerce") * 100
    d[LOW] = pd.to_numeric(d["lo"], errors="coerce") * 100
    d[HIGH] = pd.to_numeric(d["hi"], errors="coerce") * 100
    d[NO_PAIRS] = [0.0 if pd.isna(e) else float("nan") for e in d[EFFECT]]
    d["zero"] = 0.0
    return d


def _forest_layers(alt, y, x_title: str, colour, shape=None, tooltip=(), hollow: bool = False):
    """Interval rule, point, the 'no paired runs' note and the zero line, all reading the parent's data;
    `hollow`: rows whose VETOED column is true get an open point (drawn by a layer of their own)."""
    base = alt.Chart().encode(y=y, **({"yOffset": shape[0]} if shape else {}))
    x = alt.X(f"{EFFECT}:Q", title=x_title, axis=alt.Axis(format="~r"))
    rule = base.mark_rule(strokeWidth=2).encode(x=alt.X(f"{LOW}:Q", title=x_title), x2=f"{HIGH}:Q", color=colour)
    def point(**mark):
        return base.mark_point(size=55, opacity=1, **mark).encode(
            x=x, color=colour, **({"shape": shape[1]} if shape else {}), tooltip=list(tooltip))
    points = [point(filled=True)]
    if hollow:
        points = [point(filled=True).transform_filter(f"!datum['{VETOED}']"),
                  point(filled=False, fill="white", strokeWidth=2).transform_filter(f"datum['{VETOED}']")]
    note = base.mark_text(text="no paired runs", align="left", dx=4, fontSize=FONT_SIZE, color="dimgray").encode(
        x=alt.X(f"{NO_PAIRS}:Q", title=x_title))
    zero = alt.Chart().mark_rule(color="gray", strokeDash=[4, 3]).encode(
        x=alt.X("zero:Q", aggregate="min", title=x_title))
    return [zero, rule, *points, note]


def _claim_titles(v: pd.DataFrame) -> list[str]:
    """'(P1) statement' per row, wrapped into lines joined by '|' (split back by the header's labelExpr)."""
    return ["|".join(textwrap.wrap(f"({c}) {s} ({k})", 42, break_on_hyphens=False))
            for c, s, k in zip(v["claim"], v["statement"], v["kind"])]


LABEL_CHARS = 52  # a comparison's label lines: each side of 'vs' wrapped at this many characters


def claims_forest(v: pd.DataFrame, width: int = 260):
    """A study's verdict table (verdict.verdict_table) as a forest plot: one panel per claim, one band per
    comparison ('a vs b'), inside it one point per shifted domain (shape) at the paired effect in the claimed
    direction (pp) with its 95% interval, coloured by the plan's word; a point without a bar has one pair, an
    open point is a comparison the bootstrap over test images made inconclusive (word_t, pretrained_v2)."""
    alt = _alt()
    d = _in_pp(v)
    d[VETOED] = (d["word_t"] != d["word"]) if "word_t" in d.columns else False
    hollow = bool(d[VETOED].any())
    d["comparison"] = [f"{a} vs {b}" for a, b in zip(d["label_a"], d["label_b"])]
    d["claim title"] = _claim_titles(d)
    d[DOMAIN] = d["test_set"].map(domain_name)  # ids or reader names (words.in_words) alike
    domains = ordered(d[DOMAIN], [domain_name(t) for t in SHIFTED_DOMAINS])
    shapes = {domain_name(t): s for t, s in DOMAIN_SHAPES.items()}
    d["what"] = d["kind"].map(WHAT)
    shape = (alt.YOffset(f"{DOMAIN}:N", sort=domains),
             alt.Shape(f"{DOMAIN}:N", sort=domains, title=DOMAIN, legend=alt.Legend(orient="top", columns=2),
                       scale=alt.Scale(domain=domains, range=[shapes.get(t, "cross") for t in domains])))
    lines = {c: _wrap(a, LABEL_CHARS) + _wrap(f"vs {b}", LABEL_CHARS)
             for c, a, b in zip(d["comparison"], d["label_a"], d["label_b"])}
    label_px, _ = rows_fit([x for ls in lines.values() for x in ls], width, 1)
    y = alt.Y("comparison:N", sort=list(lines), title=None,
              axis=alt.Axis(labelExpr=lookup_expr(lines), labelLimit=label_px, labelPadding=6))
    colour = _word_colour(alt, orient="top", columns=2)
    layers = _forest_layers(alt, y, "effect in the claimed direction (pp)", colour, shape, hollow=hollow,
                            tooltip=["comparison", DOMAIN, "what", alt.Tooltip(f"{EFFECT}:Q", format="+.1f"),
                                     alt.Tooltip(f"{LOW}:Q", format="+.1f"), alt.Tooltip(f"{HIGH}:Q", format="+.1f"),
                                     "word"] + ([f"{VETOED}:N"] if hollow else []))
    header = alt.Header(labelExpr="split(datum.value, '|')", labelAnchor="start", labelAlign="left",
                        labelFontWeight="bold", labelLimit=PAGE_WIDTH - 330)  # beside the y labels
    step = max(12, -(-max(map(len, lines.values()), default=1) * (FONT_SIZE + 3) // max(1, len(domains))))
    chart = alt.layer(*layers, data=d).properties(width=width, height=alt.Step(step, **{"for": "offset"})).facet(
        facet=alt.Facet("claim title:N", sort=list(dict.fromkeys(d["claim title"])), title=None, header=header),
        columns=1).resolve_scale(y="independent").resolve_axis(x="independent")  # ticks under every panel
    meaning = [HOW[k] for k in KINDS if k in set(d["kind"])]
    return _fit(chart.properties(title=alt.TitleParams(
        "Every comparison of every claim, on each shifted domain", subtitle=textwrap.wrap(
            "Effect in percentage points, positive in the claimed direction: " + "; ".join(meaning)
            + ". Point: mean over seeds; bar: 95% CI" + (
                "; open point: the t-test alone decides, the 95% bootstrap interval over test images does not"
                " agree, so inconclusive" if hollow else "") + ".", 88))))


def recipes_forest(tests: pd.DataFrame, columns: int = 2, width: int = 150):
    """pretrained_study.recipe_tests as a forest plot: one panel per shifted domain, one row per recipe, its
    gain over the plain recipe (pp) with the 95% interval, coloured by the plan's word."""
    alt = _alt()
    d = _in_pp(tests)
    d["recipe"], d[DOMAIN] = d["label_a"].map(label_name), d["test_set"]
    plain = ", ".join(dict.fromkeys(d["label_b"].map(label_name))) or "the plain recipe"
    label_px, columns = rows_fit(d["recipe"], width, columns)
    y = alt.Y("recipe:N", sort=list(dict.fromkeys(d["recipe"])), title=None, axis=alt.Axis(labelLimit=label_px))
    layers = _forest_layers(alt, y, "gain over the plain recipe (pp)", _word_colour(alt), tooltip=[
        "recipe", DOMAIN, alt.Tooltip(f"{EFFECT}:Q", format="+.1f"), alt.Tooltip(f"{LOW}:Q", format="+.1f"),
        alt.Tooltip(f"{HIGH}:Q", format="+.1f"), "word"])
    chart = alt.layer(*layers, data=d).properties(width=width, height=alt.Step(14)).facet(
        facet=alt.Facet(f"{DOMAIN}:N", sort=ordered(d["test_set"], SHIFTED_DOMAINS), title=None,
                        header=domain_header()), columns=columns)
    return _fit(chart.properties(title=alt.TitleParams(
        "Each recipe against the plain one, on each shifted domain",
        subtitle=[f"Gain in balanced accuracy over {plain} (classes with ≥ 5 images), percentage points:",
                  "mean over seeds (point), 95% CI (bar), one Holm family for all recipes and domains."])))


def held_out_forest(held: pd.DataFrame, width: int = 320):
    """pretrained_study.held_out as a forest plot: per held-out domain, what the recipe chosen on the other
    three gains there over the plain recipe (pp), with its 95% interval."""
    alt = _alt()
    d = held.copy()
    d["effect"] = d["gain"]
    d = _in_pp(d)
    d["row"] = [f"{domain_name(t)}|chosen: {label_name(c)}"
                for t, c in zip(d["held-out domain"], d["chosen on the other three"])]
    d["chosen recipe (%)"] = pd.to_numeric(d["score"], errors="coerce") * 100
    d["plain recipe (%)"] = pd.to_numeric(d["plain"], errors="coerce") * 100
    label_px, _ = rows_fit([line for r in d["row"] for line in r.split("|")], width, 1)
    y = alt.Y("row:N", sort=list(d["row"]), title="held-out domain",
              axis=alt.Axis(labelExpr="split(datum.value, '|')", labelLimit=label_px, labelPadding=6))
    layers = _forest_layers(alt, y, "gain over the plain recipe on the held-out domain (pp)", alt.value(NEUTRAL),
                            tooltip=["held-out domain", "chosen on the other three",
                                     alt.Tooltip("chosen recipe (%):Q", format=".1f"),
                                     alt.Tooltip("plain recipe (%):Q", format=".1f"),
                                     alt.Tooltip(f"{EFFECT}:Q", format="+.1f"), "seeds"])
    return _fit(alt.layer(*layers, data=d).properties(width=width, height=alt.Step(40), title=alt.TitleParams(
        "What the recommendation gains in a lab it was not chosen on",
        subtitle=["Recipe chosen on the other three shifted domains, scored on the held-out one:",
                  "gain over the plain recipe, mean over seeds (point) and 95% CI (bar)."])))


def arms_dot_chart(summary: pd.DataFrame, chance: dict | None, metric: str = PRIMARY_METRIC, columns: int = 3):
    """The arms' score per test domain (tables.summary_table, every evaluation mode): plots.benchmark_chart
    with one row per arm and evaluation ('EfficientNet-Lite0, BN fine-tuned + AdaBN', in the colour of its network), the
    domain's chance level dashed; narrow panels, as many side by side as fit beside the row names."""
    return benchmark_chart(summary, metric, chance, columns=columns, rows="label", width=112, row_height=14,
                           x_title="")


def headline_points(summary: pd.DataFrame, metric: str = "balanced_accuracy", eval_mode: str = STANDARD):
    """Per model and shifted domain (a summary_table's rows in `eval_mode`): its mean `metric` on IN_DOMAIN
    ('in-domain') and on the domain ('shifted'), and the metric's name; models without an IN_DOMAIN score
    are left out, and so are the training lab's other splits (pbc:val is no other lab)."""
    s = summary[summary["eval_mode"] == eval_mode] if len(summary) else summary
    cols = ["model", "test_set", "in-domain", "shifted", "metric"]
    if not len(s):
        return pd.DataFrame(columns=cols)
    mean = s.groupby(["model", "test_set"], sort=False)[f"{metric}_mean"].first().astype(float)
    home = s["test_set"].str.split(":").str[0] == IN_DOMAIN.split(":")[0]
    out = s.loc[~home, ["model", "test_set"]].drop_duplicates()
    out["in-domain"] = [mean.get((m, IN_DOMAIN)) for m in out["model"]]
    out["shifted"] = [mean[(m, t)] for m, t in zip(out["model"], out["test_set"])]
    out["metric"] = metric
    return out.dropna(subset=["in-domain", "shifted"]).reset_index(drop=True)[cols]


def headline_chart(points: pd.DataFrame, chance: dict | None = None, metric: str | None = None, size: int = 380):
    """headline_points as a scatter: x the in-domain score, y the score on a shifted domain, one point per
    model and domain coloured by the domain; on the diagonal a model loses nothing, and each domain's chance
    level (run_tables.chance_levels) is a dashed line of its colour, named at its left end. `metric`: the
    points' own by default."""
    alt = _alt()
    metric = metric or (points["metric"].iloc[0] if "metric" in points.columns and len(points) else
                        "balanced_accuracy")
    d = points.rename(columns={"test_set": DOMAIN}).copy()
    tests = ordered(d[DOMAIN], SHIFTED_DOMAINS)
    levels = {domain_name(t): (chance or {})[t] for t in tests if t in (chance or {})}
    domains = [domain_name(t) for t in tests]
    d[DOMAIN] = d[DOMAIN].map(domain_name)
    d["in-domain (%)"], d["shifted (%)"] = d["in-domain"] * 100, d["shifted"] * 100
    name = metric_title(metric)
    colour = alt.Color(f"{DOMAIN}:N", sort=domains, scale=alt.Scale(domain=domains), title=DOMAIN)
    low = max(0.0, float(np.floor(d["in-domain"].min() * 20) / 20 - 0.05)) if len(d) else 0.0
    x = alt.X("in-domain:Q", title=f"{name} on {domain_name(IN_DOMAIN)}", scale=alt.Scale(domain=[low, 1]),
              axis=alt.Axis(format="%"))
    y = alt.Y("shifted:Q", title=f"{name} on the shifted domain", scale=alt.Scale(domain=[0, 1]),
              axis=alt.Axis(format="%"))
    diagonal = alt.Chart(pd.DataFrame({"in-domain": [low, 1.0], "shifted": [low, 1.0]})).mark_line(
        color="gray", strokeDash=[2, 2]).encode(x=x, y=y)
    dots = alt.Chart(d).mark_point(filled=True, size=70, opacity=0.85).encode(
        x=x, y=y, color=colour, shape=alt.Shape(f"{DOMAIN}:N", sort=domains, title=DOMAIN, scale=alt.Scale(
            domain=domains, range=[DOMAIN_SHAPES.get(t, "cross") for t in tests])),
        tooltip=["model", DOMAIN, alt.Tooltip("in-domain (%):Q", format=".1f"),
                 alt.Tooltip("shifted (%):Q", format=".1f")])
    layers = [diagonal, dots]
    if levels:
        lines = pd.DataFrame({DOMAIN: list(levels), "shifted": list(levels.values())})
        names = lines.groupby("shifted", sort=False)[DOMAIN].agg(", ".join).reset_index()
        names["text"] = "chance: " + names[DOMAIN]
        layers[1:1] = [alt.Chart(lines).mark_rule(strokeDash=[6, 4], strokeWidth=1.5).encode(y=y, color=colour),
                       alt.Chart(names).mark_text(align="left", baseline="bottom", dx=4, dy=-2, color="dimgray",
                                                  fontSize=FONT_SIZE - 1).encode(y=y, x=alt.value(0), text="text:N")]
    note = "; dashed: each domain's chance level" if levels else ""
    return _fit(alt.layer(*layers).properties(width=size, height=size, title=alt.TitleParams(
        "In-domain score against the score in other labs",
        subtitle=[f"One point per model and shifted domain; dotted diagonal: no drop{note}."])))
