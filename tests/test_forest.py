"""The study figures (wbcbench.report.forest): every comparison is one point in its own claim's or domain's
panel, coloured by the plan's word in the one fixed colour of that word, effects in percentage points, and the
rendered SVG fits the page column and speaks reader words. Checked on the spec (what vl-convert renders) and on
the rendered SVG itself."""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import vl_convert as vlc
from test_plots import data, facet_marks_sources, layers, panel_rows

from wbcbench.analysis import pretrained_study as SP
from wbcbench.analysis import pretrained_v2 as V2
from wbcbench.analysis.verdict import PRIMARY_METRIC, ROBUSTNESS, TEST_TIME, WORDS
from wbcbench.core.paths import REPO_ROOT
from wbcbench.report import forest, plots
from wbcbench.report import words as W
from wbcbench.report.run_tables import chance_levels
from wbcbench.report.tables import summary_table
from wbcbench.report.words import in_words
from wbcbench.runs.collect import load_runs

PAGE_COLUMN = plots.PAGE_WIDTH
SVG = "{http://www.w3.org/2000/svg}"
#: Internal names a reader must never see on a figure.
INTERNAL = re.compile(r"adabn|\btent\b|macenko|reinhard|label_[ab]|test_set|eval_mode|_pp\b|\blo\b|\bhi\b"
                      r"|\bnan\b|undefined|null|_mean\b|_ci95\b")


def svg_of(chart) -> ET.Element:
    return ET.fromstring(vlc.vegalite_to_svg(chart.to_dict()))


def width(svg: ET.Element) -> float:
    return float(svg.get("width"))


def visible_text(svg: ET.Element) -> str:
    """Every text drawn (axis labels, headers, titles, legends, marks); not the aria labels, which the book
    never shows (a figure is an <img> with its own alt text)."""
    return " | ".join(" ".join(t.itertext()) for t in svg.iter(f"{SVG}text"))


def axis_labels(svg: ET.Element) -> list[str]:
    """The labels of every axis of every panel, lines joined by a space."""
    return [" ".join(t.itertext()) for t in marks(svg, "text", "axis-label")]


def marks(svg: ET.Element, kind: str, role: str = "mark") -> list[ET.Element]:
    """The drawn items of `kind` (symbol, rule, text) in `role` (the chart's marks, not axes or legends), in
    every panel."""
    return [item for g in svg.iter(f"{SVG}g") if g.get("class", "").startswith(f"mark-{kind} role-{role}")
            for item in g]


def verdict_frame() -> pd.DataFrame:
    """Two claims as verdict_table writes them: every word, one comparison with one pair (no interval) and
    one with none (no effect)."""
    rows = [("X", "net_x holds up better", ROBUSTNESS, "net_x", "net_b", "lisc", 5, 0.10, 0.05, 0.15, "holds"),
            ("X", "net_x holds up better", ROBUSTNESS, "net_x", "net_b", "bccd", 5, -0.08, -0.12, -0.04,
             "contradicted"),
            ("X", "net_x holds up better", ROBUSTNESS, "net_x", "net_b", "jtsc", 1, 0.02, math.nan, math.nan,
             "undetermined"),
            ("Y", "AdaBN recovers", TEST_TIME, "net_b + AdaBN", "net_b", "lisc", 5, 0.03, -0.01, 0.07,
             "inconclusive"),
            ("Y", "AdaBN recovers", TEST_TIME, "net_b + AdaBN", "net_b", "bccd", 5, 0.20, 0.10, 0.30,
             "uninformative"),
            ("Y", "AdaBN recovers", TEST_TIME, "net_b + AdaBN", "net_b", "cellavision", 0, math.nan, math.nan,
             math.nan, "undetermined")]
    cols = ["claim", "statement", "kind", "label_a", "label_b", "test_set", "n", "effect", "lo", "hi", "word"]
    return pd.DataFrame(rows, columns=cols).assign(p_holm=math.nan)


def recipe_frame() -> pd.DataFrame:
    rows = [(f"efficientnet_lite0{a} + {m}" if m else f"efficientnet_lite0{a}", t, e)
            for a in ("", "+hed") for m in ("", "AdaBN") if a or m
            for t, e in zip(("lisc", "bccd", "jtsc", "cellavision"), (0.05, -0.02, 0.10, 0.0))]
    d = pd.DataFrame(rows, columns=["label_a", "test_set", "effect"])
    return d.assign(label_b="efficientnet_lite0", lo=d["effect"] - 0.03, hi=d["effect"] + 0.03,
                    word=["holds", "inconclusive", "contradicted"] * (len(d) // 3))


def held_frame() -> pd.DataFrame:
    return pd.DataFrame({"held-out domain": ["lisc", "bccd", "jtsc", "cellavision"],
                         "chosen on the other three": ["efficientnet_lite0+colour"] * 3 + ["–"],
                         "score": [0.52, 0.33, 0.40, math.nan], "plain": [0.41, 0.29, 0.29, math.nan],
                         "gain": [0.11, 0.04, 0.11, math.nan], "lo": [0.01, -0.06, 0.06, math.nan],
                         "hi": [0.22, 0.14, 0.15, math.nan], "seeds": [5, 5, 5, math.nan]})


def summary_frame() -> pd.DataFrame:
    """A summary_table's rows: two networks, one of them also adapted, on pbc:test and two shifted domains."""
    rows = []
    for model, mode, label in (("efficientnet_lite0", "standard", "efficientnet_lite0"),
                               ("efficientnet_lite0", "adabn", "efficientnet_lite0 + AdaBN"),
                               ("efficientnet_lite0_freezebn_last", "standard", "efficientnet_lite0_freezebn_last")):
        for t, m in (("pbc:test", 0.95), ("lisc", 0.40), ("bccd", 0.30)):
            bump = 0.2 if mode == "adabn" and t != "pbc:test" else 0.0
            bump += 0.05 if model.endswith("last") else 0.0
            rows.append({"label": label, "model": model, "eval_mode": mode, "test_set": t, "seeds": 5,
                         "majority_baseline": 0.3, "balanced_accuracy_mean": m + bump,
                         "balanced_accuracy_ci95": 0.02})
    return pd.DataFrame(rows)


def test_word_colours_are_one_fixed_colour_per_word():
    assert tuple(forest.WORD_COLOURS) == WORDS and len(set(forest.WORD_COLOURS.values())) == len(WORDS)
    only_holds = verdict_frame().iloc[:1]
    for chart in (forest.claims_forest(verdict_frame()), forest.claims_forest(only_holds),
                  forest.recipes_forest(recipe_frame())):
        spec = chart.to_dict()
        colours = [lay["encoding"]["color"] for lay in layers(spec) if "field" in lay["encoding"].get("color", {})]
        assert colours and all(c["field"] == "word" for c in colours)
        assert all(c["scale"] == {"domain": list(WORDS), "range": list(forest.WORD_COLOURS.values())} for c in colours)
    # the drawn points: each in its word's colour
    svg = svg_of(forest.claims_forest(verdict_frame()))
    fills = [p.get("fill") for p in marks(svg, "symbol")]
    drawn = verdict_frame().dropna(subset=["effect"])
    assert sorted(fills) == sorted(forest.WORD_COLOURS[w] for w in drawn["word"])


def test_a_comparison_the_bootstrap_vetoed_is_an_open_point_and_the_subtitle_says_so():
    v = verdict_frame()
    v["word_t"] = v["word"]
    v.loc[3, "word_t"] = "holds"  # the t-test alone holds; the bootstrap made it inconclusive
    svg = svg_of(forest.claims_forest(v))
    points = marks(svg, "symbol")
    open_ = [p for p in points if p.get("fill") == "white"]
    assert len(points) == v["effect"].notna().sum() and len(open_) == 1
    assert open_[0].get("stroke") == forest.WORD_COLOURS["inconclusive"]  # in the colour of its word
    assert "open point: the t-test alone decides" in visible_text(svg)
    plain = svg_of(forest.claims_forest(verdict_frame()))  # without word_t: no open point, no note
    assert not [p for p in marks(plain, "symbol") if p.get("fill") == "white"]
    assert "open point" not in visible_text(plain)


def test_claims_forest_one_panel_per_claim_with_its_own_comparisons():
    v = verdict_frame()
    spec = forest.claims_forest(v).to_dict()
    assert set(facet_marks_sources(spec).values()) == {"facet"}  # no layer escapes the panel's rows
    assert spec["resolve"]["scale"]["y"] == "independent"
    panels = panel_rows(spec)
    assert [{r["comparison"] for r in rows} for rows in panels.values()] == [{"net_x vs net_b"},
                                                                            {"net_b + AdaBN vs net_b"}]
    svg = svg_of(forest.claims_forest(v))
    # each comparison labels one band of its own panel only (a shared y scale would label both in every panel)
    assert [lab for lab in axis_labels(svg) if "net" in lab] == ["net_x vs net_b", "net_b + AdaBN vs net_b"]
    text = visible_text(svg)
    assert "(X) net_x holds up better (drop from in-domain)" in text and "(Y) AdaBN recovers" in text


def test_claims_forest_draws_every_comparison_in_percentage_points():
    v = verdict_frame()
    spec = forest.claims_forest(v).to_dict()
    rows = data(spec, spec)
    assert [r[forest.EFFECT] for r in rows[:2]] == [pytest.approx(10.0), pytest.approx(-8.0)]
    assert (rows[0][forest.LOW], rows[0][forest.HIGH]) == (pytest.approx(5.0), pytest.approx(15.0))
    zero, rule, point, note = layers(spec)
    assert zero["encoding"]["x"]["aggregate"] == "min" and {r["zero"] for r in rows} == {0.0}
    assert "(pp)" in point["encoding"]["x"]["title"]
    svg = svg_of(forest.claims_forest(v))
    # one point per comparison with an effect, a bar per interval, a note where there is no effect
    assert len(marks(svg, "symbol")) == v["effect"].notna().sum() == 5
    assert len([r for r in marks(svg, "rule") if r.get("stroke-dasharray") is None]) == v["lo"].notna().sum() == 4
    assert visible_text(svg).count("no paired runs") == v["effect"].isna().sum() == 1


def test_recipes_forest_one_panel_per_domain():
    tests = recipe_frame()
    spec = forest.recipes_forest(tests).to_dict()
    assert set(facet_marks_sources(spec).values()) == {"facet"}
    assert spec["facet"]["sort"] == ["lisc", "bccd", "jtsc", "cellavision"]
    assert {t: len(rows) for t, rows in panel_rows(spec).items()} == {t: 3 for t in spec["facet"]["sort"]}
    assert all({r["shifted domain"] for r in rows} == {t} for t, rows in panel_rows(spec).items())
    svg = svg_of(forest.recipes_forest(tests))
    assert len(marks(svg, "symbol")) == len(tests) and width(svg) <= PAGE_COLUMN
    assert "over EfficientNet-Lite0, BN fine-tuned" in visible_text(svg)  # the plain recipe, named in the subtitle
    assert "EfficientNet-Lite0, BN fine-tuned, HED stain jitter + AdaBN" in axis_labels(svg)


def test_held_out_forest_rows_in_domain_order_with_the_choice():
    held = held_frame()
    spec = forest.held_out_forest(held).to_dict()
    rows = data(spec, spec)
    assert rows[0]["row"] == "LISC|chosen: EfficientNet-Lite0, BN fine-tuned, colour jitter"
    assert rows[3]["row"] == "CellaVision|chosen: –"
    assert layers(spec)[2]["encoding"]["y"]["sort"] == [r["row"] for r in rows]
    assert rows[0][forest.EFFECT] == pytest.approx(11.0)
    svg = svg_of(forest.held_out_forest(held))
    assert len(marks(svg, "symbol")) == 3 and visible_text(svg).count("no paired runs") == 1


def test_arms_dot_chart_is_the_benchmark_chart_with_a_row_per_evaluation():
    s = summary_frame()
    spec = forest.arms_dot_chart(s, {"pbc:test": 0.2, "lisc": 0.25, "bccd": 0.25}, "balanced_accuracy").to_dict()
    bars, pts, chance = layers(spec)
    assert pts["encoding"]["y"]["field"] == "label" and pts["encoding"]["color"]["field"] == "model"
    assert pts["encoding"]["y"]["sort"] == [W.label_name(x) for x in dict.fromkeys(s["label"])]
    assert "EfficientNet-Lite0, BN fine-tuned + AdaBN" in pts["encoding"]["y"]["sort"]  # networks in words
    assert set(facet_marks_sources(spec).values()) == {"facet"}
    assert {t: {r["chance"] for r in rs} for t, rs in panel_rows(spec).items()} == \
        {"pbc:test": {0.2}, "lisc": {0.25}, "bccd": {0.25}}


def test_headline_points_pair_each_shifted_score_with_the_in_domain_one():
    s = summary_frame()
    p = forest.headline_points(s)
    assert list(p.columns) == ["model", "test_set", "in-domain", "shifted", "metric"]
    assert len(p) == 4 and set(p["test_set"]) == {"lisc", "bccd"}  # standard rows only, pbc:test is the x
    row = p[(p["model"] == "efficientnet_lite0_freezebn_last") & (p["test_set"] == "lisc")].iloc[0]
    assert (row["in-domain"], row["shifted"]) == (pytest.approx(1.0), pytest.approx(0.45))
    adapted = forest.headline_points(s, eval_mode="adabn")  # against the adapted network's own pbc:test score
    assert list(adapted["shifted"]) == [pytest.approx(0.6), pytest.approx(0.5)] and set(adapted["in-domain"]) == {0.95}
    assert len(forest.headline_points(s[s["test_set"] != "pbc:test"])) == 0
    val = s[s["test_set"] == "lisc"].assign(test_set="pbc:val")  # the training lab's validation split
    assert forest.headline_points(pd.concat([s, val])).equals(p)  # is no other lab


def test_headline_chart_diagonal_and_one_chance_line_per_domain():
    p = forest.headline_points(summary_frame())
    spec = forest.headline_chart(p, {"pbc:test": 0.2, "lisc": 0.25, "bccd": 0.25}).to_dict()
    diagonal, lines, names, dots = spec["layer"]
    low = spec["layer"][3]["encoding"]["x"]["scale"]["domain"][0]
    assert 0 <= low < p["in-domain"].min()        # the x axis starts just below the lowest in-domain score
    assert data(spec, diagonal) == [{"in-domain": low, "shifted": low}, {"in-domain": 1.0, "shifted": 1.0}]
    assert data(spec, lines) == [{"shifted domain": t, "shifted": 0.25} for t in ("LISC", "BCCD")]
    assert [r["text"] for r in data(spec, names)] == ["chance: LISC, BCCD"]
    assert len(data(spec, dots)) == len(p) and dots["encoding"]["x"]["axis"]["format"] == "%"
    shapes = dots["encoding"]["shape"]["scale"]
    assert shapes["range"] == [forest.DOMAIN_SHAPES[t] for t in ("lisc", "bccd")], "one shape per domain"
    assert "Balanced accuracy" in dots["encoding"]["y"]["title"]
    assert len(forest.headline_chart(p).to_dict()["layer"]) == 2  # no chance levels: no lines


@pytest.mark.parametrize("build", [
    lambda: forest.claims_forest(verdict_frame()), lambda: forest.recipes_forest(recipe_frame()),
    lambda: forest.held_out_forest(held_frame()),
    lambda: forest.arms_dot_chart(summary_frame(), {"lisc": 0.25}, "balanced_accuracy"),
    lambda: forest.headline_chart(forest.headline_points(summary_frame()), {"lisc": 0.25})],
    ids=["claims", "recipes", "held-out", "arms", "headline"])
def test_figures_fit_the_page_column_in_reader_words(build):
    chart = build()
    assert chart.to_dict()["config"]["axis"]["labelFontSize"] >= 12
    svg = svg_of(chart)
    assert width(svg) <= PAGE_COLUMN
    assert not INTERNAL.findall(visible_text(svg)), visible_text(svg)


def test_on_the_committed_pretrained_runs():
    """The pretrained study's own figures: one point per comparison with an effect, in its claim's panel."""
    runs, _ = load_runs(REPO_ROOT / "results" / "cpu-pretrained")
    v = SP.verdict(runs)
    assert len(v) == 48 and v["effect"].notna().all()
    spec = forest.claims_forest(v).to_dict()
    assert set(facet_marks_sources(spec).values()) == {"facet"}
    assert [r["claim"] for r in data(spec, spec)] == list(v["claim"])
    svg = svg_of(forest.claims_forest(in_words(v)))  # as the chapter draws it: the longest labels, in words
    assert len(marks(svg, "symbol")) == len(v) and width(svg) <= PAGE_COLUMN
    assert "EfficientNet-Lite2, frozen BN, last stages trained vs EfficientNet-Lite2, BN fine-tuned" in axis_labels(svg)
    assert not [t for t in visible_text(svg).split(" | ") if "…" in t]  # nothing cut short
    fills = sorted(p.get("fill") for p in marks(svg, "symbol"))
    assert fills == sorted(forest.WORD_COLOURS[w] for w in v["word"])
    assert not INTERNAL.findall(visible_text(svg))
    summary = summary_table(runs, metrics=(PRIMARY_METRIC,))
    svg = svg_of(forest.arms_dot_chart(summary, chance_levels(runs, PRIMARY_METRIC), PRIMARY_METRIC))
    assert width(svg) <= PAGE_COLUMN and not [t for t in visible_text(svg).split(" | ") if "…" in t]
    assert "EfficientNet-Lite2, frozen BN, last stages trained + Macenko" in axis_labels(svg)
    tests, held = SP.recipe_tests(runs), SP.held_out(runs)
    for chart, n in ((forest.recipes_forest(tests), len(tests)), (forest.held_out_forest(held), len(held))):
        svg = svg_of(chart)
        assert len(marks(svg, "symbol")) == n and width(svg) <= PAGE_COLUMN
        assert not INTERNAL.findall(visible_text(svg))


def test_on_the_committed_converged_runs():
    """The converged study's claims forest as chapter 10 draws it: every comparison in full words (the longest
    wrapped before ' + ', never cut), each band tall enough for its lines, the legends above, within the page."""
    runs, _ = load_runs(REPO_ROOT / "results" / "cpu-pretrained-v2")
    v = V2.verdict(runs)
    svg = svg_of(forest.claims_forest(in_words(v)))
    assert width(svg) <= PAGE_COLUMN and not [t for t in visible_text(svg).split(" | ") if "…" in t]
    labels = axis_labels(svg)
    assert "EfficientNet-Lite2, BN fine-tuned + rescaling + AdaBN vs EfficientNet-Lite2, BN fine-tuned + AdaBN" \
        in labels
    assert "EfficientNet-Lite0, frozen BN, last stages trained vs EfficientNet-Lite0, BN fine-tuned" in labels
    assert len(marks(svg, "symbol")) == v["effect"].notna().sum()
    assert "a claim on scores" in visible_text(svg)  # V1 and V2 compare scores, not drops
    assert forest._wrap("EfficientNet-Lite0, BN fine-tuned + rescaling + AdaBN", 52) == \
        ["EfficientNet-Lite0, BN fine-tuned + rescaling", "+ AdaBN"]
