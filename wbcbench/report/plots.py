"""Charts for the book and the notebooks: altair specifications rendered to static SVG with vl-convert,
so that every figure is part of the page itself (no JavaScript, no CDN: the book works offline).

Sample-cell grids are PNG images (base64 in the notebook output), for the same reason.
"""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from wbcbench.analysis.verdict import METRIC_NAMES
from wbcbench.core.classes import CLASSES
from wbcbench.core.names import DOMAIN_NAMES, METHOD_NAMES
from wbcbench.data.cache import load_images
from wbcbench.data.domains import domain_sample
from wbcbench.report.tables import ordered
from wbcbench.report.words import label_name

FONT = "DejaVu Sans"  # available wherever matplotlib/fontconfig is; vl-convert falls back otherwise
FONT_SIZE = 12        # px at 100%: faceted charts are sized to the book's page column (PAGE_WIDTH), so
PANEL_WIDTH = 150     # they are shown unscaled and their text stays this size on the page
PAGE_WIDTH = 672      # px: the book's page column in a 1280 px window (the browser test measures it)


def metric_title(metric: str) -> str:
    """A metric's reader name, capitalised ('Balanced accuracy (classes with ≥ 5 images)')."""
    name = METRIC_NAMES.get(metric, metric.replace("_", " "))
    return name[:1].upper() + name[1:]


def _fit(chart):
    """Readable text on the page: one font size for axes, headers, legends and titles."""
    return chart.configure_axis(labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, labelLimit=220).configure_header(
        labelFontSize=FONT_SIZE + 1, titleFontSize=FONT_SIZE + 1).configure_legend(
        labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE).configure_title(fontSize=FONT_SIZE + 2, anchor="start")


def rows_fit(labels, panel_width: int, columns: int) -> tuple[int, int]:
    """(px, columns) for a faceted chart whose rows are named by `labels`: the row names' width, never cutting the
    longest short (at most 0.6 em a character in the charts' sans-serif), and as many panels side by side (at
    most `columns`, each with its gap) as fit beside it in the page column."""
    px = int(0.6 * FONT_SIZE * max((len(str(x)) for x in labels), default=0)) + 12
    return px, max(1, min(columns, (PAGE_WIDTH - px - 40) // (panel_width + 40)))


def lookup_expr(mapping: dict) -> str:
    """A Vega label expression that shows mapping[value] (a string, or a list of lines) for each value it has,
    and any other value as it is."""
    expr = "datum.value"
    for key, shown in reversed(mapping.items()):
        expr = f"datum.value === {json.dumps(key)} ? {json.dumps(shown)} : {expr}"
    return expr


def domain_header(**kw):
    """Facet headers that name each test set in words ('pbc:test' -> 'PBC (held-out test)'), while the data,
    tooltips and panel order keep the names a user passes to --test."""
    return _alt().Header(labelExpr=lookup_expr(DOMAIN_NAMES), **kw)


def _alt():
    import altair as alt
    return alt


def to_svg(chart) -> str:
    """The chart as an SVG document (vl-convert, fully offline)."""
    import vl_convert as vlc
    return vlc.vegalite_to_svg(chart.to_dict())


class SVGFigure:
    """A notebook output that is an SVG image and nothing else (no vega JSON, no JavaScript)."""

    def __init__(self, svg: str):
        self.svg = svg

    def _repr_svg_(self) -> str:
        return self.svg


def show(chart):
    """Display an altair chart as static SVG (use as the last expression of a cell)."""
    return SVGFigure(to_svg(chart))


# ---------------------------------------------------------------------------------------------------------
# Datasets


def class_counts_chart(counts: pd.DataFrame):
    """Normalised stacked bars: class composition of each domain (from domains.class_counts_table)."""
    alt = _alt()
    long = counts.melt(id_vars=["dataset"], value_vars=list(CLASSES), var_name="class", value_name="images")
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("dataset:N", sort=list(counts["dataset"]), title=None),
        x=alt.X("images:Q", stack="normalize", title="share of images", axis=alt.Axis(format="%")),
        color=alt.Color("class:N", sort=list(CLASSES)),
        order=alt.Order("class:N"),
        tooltip=["dataset", "class", "images"],
    ).properties(width=420, height=22 * len(counts), title="Class composition per domain")


def colour_chart(stats: pd.DataFrame, x: str = "H", y: str = "S"):
    """Per-image mean colour of each domain (from domains.colour_stats): the domain shift is visible
    as separated clouds."""
    alt = _alt()
    names = {"R": "mean red", "G": "mean green", "B": "mean blue", "H": "mean hue (degrees, 0 = red)",
             "S": "mean saturation", "V": "mean value (brightness)"}
    return alt.Chart(stats).mark_circle(size=28, opacity=0.6).encode(
        x=alt.X(f"{x}:Q", title=names.get(x, x), scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=names.get(y, y), scale=alt.Scale(zero=False)),
        color=alt.Color("dataset:N", sort=list(dict.fromkeys(stats["dataset"]))),
        tooltip=["dataset", "class"],
    ).properties(width=360, height=260, title=f"Per-image colour: {names.get(x, x)} vs {names.get(y, y)}")


def rgb_profile_chart(stats: pd.DataFrame):
    """Mean R, G, B per domain as grouped bars."""
    alt = _alt()
    m = stats.groupby("dataset", sort=False)[["R", "G", "B"]].mean().reset_index()
    long = m.melt(id_vars="dataset", var_name="channel", value_name="mean")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("channel:N", title=None, sort=["R", "G", "B"]),
        y=alt.Y("mean:Q", title="mean intensity (0-1)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("channel:N", scale=alt.Scale(domain=["R", "G", "B"], range=["#d62728", "#2ca02c", "#1f77b4"]),
                        legend=None),
        column=alt.Column("dataset:N", sort=list(m["dataset"]), title=None),
    ).properties(width=70, height=160)


def label_font():
    """The PNG grids' label font: Pillow's bundled FreeType font at the charts' text size."""
    from PIL import ImageFont
    return ImageFont.load_default(size=FONT_SIZE)


def image_grid_png(images: np.ndarray, row_labels, col_labels=None, pad: int = 2, scale: int = 1) -> bytes:
    """A PNG of a grid of uint8 RGB images (rows x cols, each (S, S, 3)); missing cells (None) stay white.
    `images` is a nested list [row][col]. Labels are drawn at the charts' text size (label_font)."""
    rows = len(images)
    cols = max(len(r) for r in images)
    s = next(im.shape[0] for r in images for im in r if im is not None) * scale
    font = label_font()
    label_w = 8 + int(max(font.getlength(str(label)) for label in row_labels))
    head_h = FONT_SIZE + 4 if col_labels else 0
    canvas = Image.new("RGB", (label_w + cols * (s + pad), head_h + rows * (s + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    labels = [str(c) for c in col_labels or []]
    for j, text in enumerate(labels):
        if j and labels[j - 1] == text:
            continue                     # a run of equal headings is written once, across its columns
        span = next((k for k in range(j, len(labels)) if labels[k] != text), len(labels)) - j
        while len(text) > 1 and font.getlength(text) > span * (s + pad) - 4:
            text = text[:-1]
        draw.text((label_w + j * (s + pad) + 2, 1), text, fill="black", font=font)
    for i, (row, lab) in enumerate(zip(images, row_labels)):
        y = head_h + i * (s + pad)
        draw.text((2, y + s // 2 - FONT_SIZE // 2), str(lab), fill="black", font=font)
        for j, im in enumerate(row):
            if im is None:
                continue
            tile = Image.fromarray(np.asarray(im, dtype=np.uint8))
            if scale != 1:
                tile = tile.resize((s, s), Image.NEAREST)
            canvas.paste(tile, (label_w + j * (s + pad), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class PNGFigure:
    """A notebook output that is a PNG image (embedded as base64 in the .ipynb, a file in the book)."""

    def __init__(self, png: bytes):
        self.png = png

    def _repr_png_(self) -> bytes:
        return self.png

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


def sample_grid(names, per_class: int = 2, size: int = 64, data_root=None, seed: int = 0):
    """One row per domain, `per_class` sample cells of each class (fewer where a domain has fewer),
    decoded through wbcbench.data.cache at `size` px."""
    rows, col_labels = [], [c for c in CLASSES for _ in range(per_class)]
    for n in names:
        ds = domain_sample(n, per_class, data_root, seed=seed)
        x = load_images(ds, size)
        row = []
        for k in range(len(CLASSES)):
            idx = np.flatnonzero(ds.labels == k)[:per_class]
            row += [np.array(x[i]) for i in idx] + [None] * (per_class - len(idx))
        rows.append(row)
    return PNGFigure(image_grid_png(rows, list(names), col_labels))


# ---------------------------------------------------------------------------------------------------------
# Results

CHANCE_NOTE = "dashed line: the domain's chance level"  # in the subtitle: a label in a panel covers points


def chance_rule(chance: pd.Series, **x) -> tuple[list, str]:
    """A score chart's dashed line at each panel's `chance` and its words for the subtitle ([] and '' without)."""
    alt = _alt()
    rule = alt.Chart().mark_rule(strokeDash=[4, 3], color="gray").encode(x=alt.X("chance:Q", aggregate="min", **x))
    return ([rule], f"; {CHANCE_NOTE}") if chance.notna().any() else ([], "")


def benchmark_chart(summary: pd.DataFrame, metric: str = "accuracy", chance: dict | None = None,
                    columns: int = 3, rows: str = "model", width: int = PANEL_WIDTH, row_height: int = 20,
                    x_title: str | None = None):
    """Mean ± Student-t 95% CI per model, one panel per test domain (from tables.summary_table), with each
    domain's chance level dashed: `chance` maps a test set to it (run_tables.chance_levels); for accuracy
    it defaults to the majority-class share. Every layer reads the one data source of the facet, so each
    panel draws its own domain's rows only; panels wrap after `columns` to fit the page column. `rows`: the
    column that names a row ('label' gives adapted evaluations rows of their own), coloured by its model;
    `x_title`: each panel's axis title (default none: the chart's title names the metric). Rows are named in
    words, in full, with as many panels side by side (at most `columns`) as fit beside them (rows_fit)."""
    alt = _alt()
    s = summary.copy()
    s[rows] = s[rows].map(label_name)  # networks in words on the figure
    s["mean"] = s[f"{metric}_mean"]
    half = s[f"{metric}_ci95"].fillna(0)
    s["lo"] = (s["mean"] - half).clip(lower=0.0)
    s["hi"] = (s["mean"] + half).clip(upper=1.0)
    if chance is None and metric == "accuracy":
        chance = s.groupby("test_set")["majority_baseline"].first().to_dict()
    s["chance"] = s["test_set"].map(chance or {}).astype(float)
    models = list(dict.fromkeys(s[rows]))
    axis_title = "" if x_title is None else x_title   # the chart's title names the metric
    label_px, columns = rows_fit(models, width, columns)
    base = alt.Chart().encode(y=alt.Y(f"{rows}:N", sort=models, title=None, axis=alt.Axis(labelLimit=label_px)))
    x = alt.X("mean:Q", title=axis_title, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", tickCount=5))
    colour = alt.Color("model:N", legend=None, scale=alt.Scale(scheme="tableau20"))  # up to 20 distinct networks
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", title=axis_title), x2="hi:Q", color=colour)
    pts = base.mark_point(filled=True, size=60).encode(
        x=x, color=colour, tooltip=[rows, "test_set", alt.Tooltip("mean:Q", format=".3f"), "seeds"])
    rule, chance_note = chance_rule(s["chance"], title=axis_title)
    height = row_height * max(1, len(models))
    return _fit(alt.layer(bars, pts, *rule, data=s).properties(width=width, height=height).facet(
        facet=alt.Facet("test_set:N", sort=ordered(s["test_set"]), title=None, header=domain_header()),
        columns=columns)
        .resolve_axis(x="independent").properties(title=alt.TitleParams(
            metric_title(metric), subtitle="mean ± 95% CI over seeds"
            + ("; no bar: one seed" if s["seeds"].eq(1).any() else "") + chance_note)))


def bn_gap_chart(gaps: pd.DataFrame):
    """Per BN layer (depth order), the gap between the stored running statistics and a domain's activation
    statistics (from evaluate.domain_stat_gaps)."""
    alt = _alt()
    return alt.Chart(gaps).mark_line(point=True).encode(
        x=alt.X("layer_index:Q", title="BN layer (input to output)"),
        y=alt.Y("gap:Q", title="normalised mean gap"),
        color=alt.Color("dataset:N", sort=list(dict.fromkeys(gaps["dataset"]))),
        tooltip=["dataset", "layer", alt.Tooltip("gap:Q", format=".3f"), alt.Tooltip("var_ratio:Q", format=".2f")],
    ).properties(width=460, height=240,
                 title="How far each domain's activations are from the BN running statistics")


def bn_mode_chart(acc: pd.DataFrame, metric: str = "balanced_accuracy"):
    """Accuracy per domain for standard BN, AdaBN and test-time batch statistics (from evaluate.compare_bn_modes)."""
    alt = _alt()
    acc = acc.assign(mode=[METHOD_NAMES.get(m, m) for m in acc["mode"]])
    modes = list(dict.fromkeys(acc["mode"]))
    return _fit(alt.Chart(acc).mark_bar().encode(
        x=alt.X("mode:N", title=None, sort=modes),
        y=alt.Y(f"{metric}:Q", title=METRIC_NAMES.get(metric, metric), scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        color=alt.Color("mode:N", sort=modes, title="evaluation"),
        column=alt.Column("dataset:N", sort=list(dict.fromkeys(acc["dataset"])), title=None),
        tooltip=["dataset", "mode", alt.Tooltip(f"{metric}:Q", format=".3f")],
    ).properties(width=80, height=180))


# ---------------------------------------------------------------------------------------------------------
# One run (notebooks/02_train_one_run)


def learning_curves_chart(log: pd.DataFrame, title: str | None = None):
    """Training loss and training accuracy per epoch, side by side (from a run's log.csv)."""
    alt = _alt()
    ticks = alt.Axis(values=[int(e) for e in log["epoch"]]) if len(log) <= 12 else alt.Axis(tickMinStep=1)
    base = alt.Chart(log).encode(x=alt.X("epoch:Q", title="epoch", axis=ticks))
    loss = base.mark_line(point=True).encode(
        y=alt.Y("train_loss:Q", title="training loss (cross-entropy)"),
        tooltip=["epoch", alt.Tooltip("train_loss:Q", format=".4f"), alt.Tooltip("lr:Q", format=".2e")],
    ).properties(width=260, height=180, title="Training loss")
    acc = base.mark_line(point=True, color="#2ca02c").encode(
        y=alt.Y("train_accuracy:Q", title="training accuracy", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        tooltip=["epoch", alt.Tooltip("train_accuracy:Q", format=".3f")],
    ).properties(width=260, height=180, title="Training accuracy")
    chart = alt.hconcat(loss, acc)
    return chart.properties(title=title) if title else chart


def confusion_chart(confusions: dict, normalize: bool = True, columns: int = 2):
    """Heatmaps of confusion matrices {title (its lines joined by ' | '): 5x5 counts (rows true, columns
    predicted)}; colour is the row-normalised rate when `normalize` (recall on the diagonal), each cell shows
    its count."""
    alt = _alt()
    rows = []
    for name, cm in confusions.items():
        cm = np.asarray(cm, dtype=float)
        sums = cm.sum(axis=1, keepdims=True)
        rate = np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)
        for i, t in enumerate(CLASSES):
            for j, p in enumerate(CLASSES):
                rows.append({"test set": name, "true": t, "predicted": p, "count": int(cm[i, j]),
                             "rate": float(rate[i, j])})
    df = pd.DataFrame(rows)
    value = "rate" if normalize else "count"
    base = alt.Chart().encode(
        x=alt.X("predicted:N", sort=list(CLASSES), title="predicted"),
        y=alt.Y("true:N", sort=list(CLASSES), title="true"))
    heat = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", title="row rate" if normalize else "count",
                        scale=alt.Scale(scheme="blues", domain=[0, 1]) if normalize else alt.Scale(scheme="blues")),
        tooltip=["test set", "true", "predicted", "count", alt.Tooltip("rate:Q", format=".2f")])
    text = base.mark_text(fontSize=FONT_SIZE).encode(
        text="count:Q",
        color=alt.condition(f"datum.{value} > {0.6 if normalize else float(df['count'].max()) * 0.6}",
                            alt.value("white"), alt.value("black")))
    return _fit(alt.layer(heat, text, data=df).properties(width=200, height=200).facet(
        facet=alt.Facet("test set:N", sort=list(confusions), title=None,
                        header=alt.Header(labelExpr="split(datum.value, ' | ')")), columns=columns))


# ---------------------------------------------------------------------------------------------------------
# The CPU study (notebooks/06_cpu_study)


def drop_chart(drops: pd.DataFrame, metric: str = "accuracy", source: str = "pbc:test", columns: int = 2):
    """Drop of `metric` from `source` to each shifted domain per model, in percentage points: mean over seeds
    with its Student-t 95% CI as error bars (from run_tables.domain_drops); one panel per domain (wrapped
    after `columns`), a rule at zero. Every layer reads the facet's one data source."""
    alt = _alt()
    d = drops.copy()
    d["label"] = d["label"].map(label_name)
    for c in ("drop_mean", "drop_ci95", "drop_lo", "drop_hi"):
        d[f"{c}_pp"] = pd.to_numeric(d[c], errors="coerce") * 100
    d["zero"] = 0.0
    d["evaluation"] = [METHOD_NAMES.get(e, e) for e in d["eval_mode"]]
    modes = [METHOD_NAMES.get(e, e) for e in dict.fromkeys(d["eval_mode"])]
    labels = list(dict.fromkeys(d["label"]))
    label_px, columns = rows_fit(labels, PANEL_WIDTH, columns)
    domains = list(dict.fromkeys(d["test_set"]))
    lo, hi = min(0.0, float(d["drop_lo_pp"].min())), max(0.0, float(d["drop_hi_pp"].max()))
    title = "drop (percentage points)"
    base = alt.Chart().encode(y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=label_px)))
    pts = base.mark_point(filled=True, size=50).encode(
        x=alt.X("drop_mean_pp:Q", title=title, axis=alt.Axis(format="~r"), scale=alt.Scale(domain=[lo, hi], nice=True)),
        color=alt.Color("evaluation:N", title="evaluation", sort=modes),
        tooltip=["label", "test_set", alt.Tooltip("drop_mean_pp:Q", format=".1f", title="drop (pp)"),
                 alt.Tooltip("drop_ci95_pp:Q", format=".1f", title="95% CI half-width (pp)"), "seeds"])
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("drop_lo_pp:Q", title=title), x2="drop_hi_pp:Q",
                                                 color=alt.Color("evaluation:N", sort=modes))
    zero = alt.Chart().mark_rule(color="gray", strokeDash=[4, 3]).encode(x=alt.X("zero:Q", title=title))
    return _fit(alt.layer(bars, pts, zero, data=d).properties(width=PANEL_WIDTH, height=18 * max(1, len(labels))).facet(
        facet=alt.Facet("test_set:N", sort=domains, title=None, header=domain_header()), columns=columns
    ).resolve_axis(x="independent")
        .properties(title=alt.TitleParams(f"{metric_title(metric)}: drop from {source}",
                                          subtitle="mean ± 95% CI over seeds; no bar: one seed")))


def recall_heatmap(recall: pd.DataFrame, columns: int = 2):
    """Per-class recall averaged over seeds, model x class, one panel per shifted domain (from
    study_tables.recall_by_class). A class absent from a domain is a grey cell marked 'n/a'; the tooltip gives
    each class's number of test images, since a recall over 1 or 3 images says little."""
    alt = _alt()
    d = recall.copy()
    d["label"] = d["label"].map(label_name)
    d["text"] = [("n/a" if pd.isna(r) else f"{r:.2f}") for r in d["recall"]]
    d["present"] = d["recall"].notna()
    d["recall_fill"] = d["recall"].fillna(-1.0)
    labels = list(dict.fromkeys(d["label"]))
    label_px, columns = rows_fit(labels, 200, columns)
    domains = ordered(d["test_set"])
    base = alt.Chart().encode(x=alt.X("class:N", sort=list(CLASSES), title=None),
                              y=alt.Y("label:N", sort=labels, title=None, axis=alt.Axis(labelLimit=label_px)))
    heat = base.mark_rect().encode(
        color=alt.condition("datum.present", alt.Color("recall_fill:Q", title="recall",
                                                       scale=alt.Scale(scheme="blues", domain=[0, 1])),
                            alt.value("#dddddd")),
        tooltip=["label", "test_set", "class", alt.Tooltip("recall:Q", format=".3f"), "seeds", "images"])
    text = base.mark_text(fontSize=FONT_SIZE - 2).encode(
        text="text:N", color=alt.condition("datum.recall_fill > 0.6", alt.value("white"), alt.value("black")))
    return _fit(alt.layer(heat, text, data=d).properties(width=200, height=18 * max(1, len(labels))).facet(
        facet=alt.Facet("test_set:N", sort=domains, title=None, header=domain_header()), columns=columns
    ).properties(title="Per-class recall on the shifted domains (mean over seeds)"))
