"""The charts (wbcbench.report.plots): each spec's data and encodings come from the input frame, in the book's
order; the figures render to SVG/PNG. Specs are read from chart.to_dict(), what vl-convert renders."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wbcbench.core.classes import CLASSES
from wbcbench.report import plots, run_tables


def data(spec: dict, node: dict) -> list[dict]:
    """The rows a (sub)chart draws: its named dataset, else its parent's."""
    return spec["datasets"][node["data"]["name"]]


def layers(spec: dict) -> list[dict]:
    """The layers of a faceted layer chart (or the chart itself)."""
    inner = spec.get("spec", spec)
    return inner.get("layer", [inner])


def facet_marks_sources(spec: dict) -> dict[str, str]:
    """Compile a faceted chart to Vega (what vl-convert renders) and, for every mark drawn in a panel, the
    data it reads traced back through the panel's own data: 'facet' when it is the panel's rows, else the
    name of the chart-wide dataset it escapes to (every panel would draw every row)."""
    import vl_convert as vlc
    vega = vlc.vegalite_to_vega(spec)
    vega = json.loads(vega) if isinstance(vega, str) else vega
    cells = [m for m in vega["marks"] if "facet" in m.get("from", {})]
    assert len(cells) == 1, "not a faceted chart"
    cell = cells[0]
    source = {d["name"]: d.get("source") for d in cell.get("data", [])}
    out = {}
    for mark in cell["marks"]:
        name = mark["from"]["data"]
        while name in source and name != cell["from"]["facet"]["name"]:
            name = source[name]
        out[mark["name"]] = "facet" if name == cell["from"]["facet"]["name"] else name
    return out


def panel_rows(spec: dict) -> dict[str, list[dict]]:
    """The rows each panel of a faceted chart draws: its single data source split by the facet field."""
    field = spec["facet"]["field"] if "field" in spec["facet"] else spec["facet"]["column"]["field"]
    rows = data(spec, spec)
    return {v: [r for r in rows if r[field] == v] for v in dict.fromkeys(r[field] for r in rows)}


def counts_frame():
    return pd.DataFrame([{"dataset": "lisc", "Basophil": 1, "Eosinophil": 2, "Lymphocyte": 3, "Monocyte": 4,
                          "Neutrophil": 5, "total": 15},
                         {"dataset": "bccd", "Basophil": 0, "Eosinophil": 2, "Lymphocyte": 0, "Monocyte": 0,
                          "Neutrophil": 8, "total": 10}])


def colour_frame():
    return pd.DataFrame({"dataset": ["bccd", "bccd", "lisc"], "class": ["Neutrophil", "Basophil", "Monocyte"],
                         "R": [0.2, 0.4, 0.9], "G": [0.1, 0.3, 0.5], "B": [0.6, 0.8, 0.7],
                         "H": [-10.0, 5.0, 30.0], "S": [0.3, 0.5, 0.2], "V": [0.6, 0.8, 0.9]})


def test_class_counts_chart_draws_every_count():
    counts = counts_frame()
    spec = plots.class_counts_chart(counts).to_dict()
    rows = {(r["dataset"], r["class"]): r["images"] for r in data(spec, spec)}
    assert rows == {(d, c): int(counts.set_index("dataset").loc[d, c]) for d in ("lisc", "bccd") for c in CLASSES}
    enc = spec["encoding"]
    assert enc["y"]["sort"] == ["lisc", "bccd"] and enc["x"]["stack"] == "normalize"
    assert enc["color"]["sort"] == list(CLASSES) and spec["height"] == 22 * 2


def test_colour_charts_plot_the_statistics_they_are_given():
    stats = colour_frame()
    spec = plots.colour_chart(stats, "H", "V").to_dict()
    assert (spec["encoding"]["x"]["field"], spec["encoding"]["y"]["field"]) == ("H", "V")
    assert spec["encoding"]["x"]["title"] == "mean hue (degrees, 0 = red)"
    assert spec["encoding"]["color"]["sort"] == ["bccd", "lisc"]
    assert [r["H"] for r in data(spec, spec)] == [-10.0, 5.0, 30.0]
    rgb = plots.rgb_profile_chart(stats).to_dict()
    means = {(r["dataset"], r["channel"]): r["mean"] for r in data(rgb, rgb)}
    assert means[("bccd", "R")] == pytest.approx(0.3) and means[("bccd", "B")] == pytest.approx(0.7)
    assert means[("lisc", "G")] == pytest.approx(0.5) and len(means) == 6
    assert rgb["encoding"]["column"]["sort"] == ["bccd", "lisc"]


def summary_frame():
    return pd.DataFrame({"model": ["m2", "m2", "m1"], "test_set": ["lisc", "pbc:test", "lisc"],
                         "accuracy_mean": [0.5, 0.9, 0.4], "accuracy_ci95": [0.1, float("nan"), 0.2],
                         "majority_baseline": [0.3, 0.4, 0.3], "seeds": [2, 1, 2]})


def test_benchmark_chart_bars_are_mean_plus_minus_ci_and_domains_in_order():
    spec = plots.benchmark_chart(summary_frame(), "accuracy").to_dict()
    assert spec["facet"]["sort"] == ["pbc:test", "lisc"] and spec["columns"] == 3  # in-domain first, wrapped
    bars, pts, chance = layers(spec)
    rows = {(r["model"], r["test_set"]): r for r in data(spec, spec)}
    assert (rows["m2", "lisc"]["lo"], rows["m2", "lisc"]["hi"]) == (pytest.approx(0.4), pytest.approx(0.6))
    low = summary_frame().assign(accuracy_mean=[0.95, 0.9, 0.1])
    clipped = {(r["model"], r["test_set"]): r for r in data(*[plots.benchmark_chart(low, "accuracy").to_dict()] * 2)}
    assert clipped["m1", "lisc"]["lo"] == 0.0 and clipped["m2", "lisc"]["hi"] == 1.0  # drawn within [0, 1]
    assert rows["m2", "pbc:test"]["lo"] == rows["m2", "pbc:test"]["hi"] == 0.9  # one seed: no bar
    assert (bars["encoding"]["x"]["field"], bars["encoding"]["x2"]["field"]) == ("lo", "hi")
    assert pts["encoding"]["x"]["field"] == "mean" and pts["encoding"]["y"]["sort"] == ["m2", "m1"]
    # accuracy's chance level is the majority class's share, one rule per panel
    assert (chance["encoding"]["x"]["field"], chance["encoding"]["x"]["aggregate"]) == ("chance", "min")
    assert {t: {r["chance"] for r in rs} for t, rs in panel_rows(spec).items()} == {"lisc": {0.3}, "pbc:test": {0.4}}
    assert "chance level" in spec["title"]["subtitle"]  # named there: a label in the panel would cover points
    assert not [lay for lay in layers(spec) if lay["mark"] == "text" or lay["mark"].get("type") == "text"]


def test_benchmark_chart_each_panel_draws_only_its_domain():
    spec = plots.benchmark_chart(summary_frame(), "accuracy").to_dict()
    assert all("data" not in layer for layer in layers(spec))  # one data source, the facet's
    sources = facet_marks_sources(spec)
    assert len(sources) == 3 and set(sources.values()) == {"facet"}, sources
    panels = panel_rows(spec)
    assert {r["model"] for r in panels["pbc:test"]} == {"m2"} and {r["model"] for r in panels["lisc"]} == {"m2", "m1"}
    assert [r["mean"] for r in panels["pbc:test"]] == [0.9]


def test_benchmark_chart_chance_line_is_one_over_k_per_domain(tmp_path):
    """Balanced accuracy's chance level is 1/K, K the classes with a test image (>= 5 for the _min5 metric),
    read from each domain's recorded class counts, drawn in that domain's panel only."""
    counts = {"pbc:test": dict(zip(CLASSES, [10, 10, 10, 10, 10])), "jtsc": dict(zip(CLASSES, [1, 8, 9, 12, 40])),
              "bccd": dict(zip(CLASSES, [0, 3, 4, 30, 60]))}
    rows = []
    for t, c in counts.items():
        (tmp_path / t.replace(":", "_")).mkdir()
        (tmp_path / t.replace(":", "_") / "metrics.json").write_text(json.dumps({"class_counts": c}))
        rows.append({"test_set": t, "eval_dir": str(tmp_path / t.replace(":", "_"))})
    runs = pd.DataFrame(rows)
    assert run_tables.chance_levels(runs, "balanced_accuracy_min5") == {"pbc:test": 1 / 5, "jtsc": 1 / 4,
                                                                        "bccd": 1 / 2}
    assert run_tables.chance_levels(runs, "balanced_accuracy") == {"pbc:test": 1 / 5, "jtsc": 1 / 5, "bccd": 1 / 4}
    summary = pd.DataFrame({"model": ["m"] * 3, "test_set": list(counts),
                            "balanced_accuracy_min5_mean": [0.9, 0.5, 0.4], "balanced_accuracy_min5_ci95": [0.01] * 3,
                            "majority_baseline": [0.2, 0.57, 0.62], "seeds": [3] * 3})
    spec = plots.benchmark_chart(summary, "balanced_accuracy_min5",
                                 run_tables.chance_levels(runs, "balanced_accuracy_min5")).to_dict()
    assert {t: [r["chance"] for r in rs] for t, rs in panel_rows(spec).items()} == \
        {"pbc:test": [0.2], "jtsc": [0.25], "bccd": [0.5]}
    assert set(facet_marks_sources(spec).values()) == {"facet"}
    no_line = plots.benchmark_chart(summary, "balanced_accuracy_min5").to_dict()  # no levels given: no line
    assert len(layers(no_line)) == 2 and "chance" not in no_line["title"]["subtitle"]


def test_bn_charts_encode_their_columns():
    gaps = pd.DataFrame({"dataset": ["pbc:test", "pbc:test", "lisc", "lisc"], "layer": ["bn1", "l1.bn"] * 2,
                         "layer_index": [0, 1, 0, 1], "gap": [0.1, 0.2, 0.8, 1.1], "var_ratio": [1.0] * 4})
    g = plots.bn_gap_chart(gaps).to_dict()
    assert (g["encoding"]["x"]["field"], g["encoding"]["y"]["field"]) == ("layer_index", "gap")
    assert g["encoding"]["color"]["sort"] == ["pbc:test", "lisc"]
    assert [r["gap"] for r in data(g, g)] == [0.1, 0.2, 0.8, 1.1]
    modes = pd.DataFrame({"dataset": ["lisc"] * 3, "mode": ["standard", "adabn", "batch_stats"],
                          "balanced_accuracy": [0.3, 0.6, 0.5]})
    m = plots.bn_mode_chart(modes).to_dict()
    assert m["encoding"]["x"]["sort"] == ["standard", "AdaBN", "batch stats"]  # the methods' reader names
    assert m["encoding"]["y"]["field"] == "balanced_accuracy" and m["encoding"]["column"]["sort"] == ["lisc"]


def test_learning_curves_chart_ticks_every_epoch():
    log = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.5, 1.0, 0.7], "train_accuracy": [0.4, 0.6, 0.8],
                        "lr": [1e-3, 5e-4, 1e-4]})
    spec = plots.learning_curves_chart(log, title="run x").to_dict()
    loss, acc = spec["hconcat"]
    assert loss["encoding"]["y"]["field"] == "train_loss" and acc["encoding"]["y"]["field"] == "train_accuracy"
    assert loss["encoding"]["x"]["axis"]["values"] == [1, 2, 3] and spec["title"] == "run x"
    assert [r["train_loss"] for r in data(spec, spec)] == [1.5, 1.0, 0.7]


def test_confusion_chart_rates_are_row_normalised_counts():
    cm = np.zeros((5, 5), dtype=int)
    cm[4, 4], cm[4, 1], cm[1, 1] = 3, 1, 2   # Neutrophil: 3 right, 1 called Eosinophil; no Basophil at all
    spec = plots.confusion_chart({"bccd": cm}).to_dict()
    rows = {(r["true"], r["predicted"]): r for r in data(spec, spec)}
    assert len(rows) == 25
    nn = rows["Neutrophil", "Neutrophil"]
    assert nn["rate"] == pytest.approx(0.75) and nn["count"] == 3
    assert rows["Neutrophil", "Eosinophil"]["rate"] == pytest.approx(0.25)
    assert rows["Eosinophil", "Eosinophil"]["rate"] == 1.0
    assert all(rows["Basophil", p]["rate"] == 0.0 for p in CLASSES)  # an empty row is 0, not NaN
    heat, _ = layers(spec)
    assert heat["encoding"]["color"]["field"] == "rate" and heat["encoding"]["x"]["sort"] == list(CLASSES)
    counts = plots.confusion_chart({"bccd": cm}, normalize=False).to_dict()
    assert layers(counts)[0]["encoding"]["color"]["field"] == "count"


def test_drop_chart_in_percentage_points_covers_every_interval_and_zero():
    drops = pd.DataFrame({"label": ["a", "a + AdaBN"], "eval_mode": ["standard", "adabn"], "test_set": ["jtsc", "lisc"],
                          "drop_mean": [0.5, -0.05], "drop_ci95": [0.1, 0.1], "drop_lo": [0.4, -0.15],
                          "drop_hi": [0.6, 0.05], "seeds": [2, 2]})
    spec = plots.drop_chart(drops).to_dict()
    bars, pts, zero = layers(spec)
    x = pts["encoding"]["x"]
    assert x["scale"]["domain"] == [pytest.approx(-15.0), pytest.approx(60.0)]
    assert x["title"] == "drop (percentage points)" and "%" not in x["axis"]["format"]  # points, not a percentage
    rows = {r["label"]: r for r in data(spec, spec)}
    assert rows["a"]["drop_mean_pp"] == pytest.approx(50.0) and rows["a + AdaBN"]["drop_lo_pp"] == pytest.approx(-15.0)
    assert (bars["encoding"]["x"]["field"], bars["encoding"]["x2"]["field"]) == ("drop_lo_pp", "drop_hi_pp")
    assert spec["facet"]["sort"] == ["jtsc", "lisc"] and pts["encoding"]["y"]["sort"] == ["a", "a + AdaBN"]
    assert {r["evaluation"] for r in data(spec, spec)} == {"standard", "AdaBN"}  # reader names in the legend
    assert {r["zero"] for r in data(spec, spec)} == {0.0}
    assert set(facet_marks_sources(spec).values()) == {"facet"}
    assert {t: [r["label"] for r in rs] for t, rs in panel_rows(spec).items()} == {"jtsc": ["a"], "lisc": ["a + AdaBN"]}
    only_up = plots.drop_chart(drops.iloc[:1]).to_dict()
    assert layers(only_up)[1]["encoding"]["x"]["scale"]["domain"] == [0.0, pytest.approx(60.0)]  # 0 always in view


def test_faceted_charts_fit_the_page_column():
    """The book's page column is about 730 px: a wider SVG is scaled down and its text shrinks with it."""
    summary = pd.DataFrame({"model": [f"resnet18_variant_{i}" for i in range(8)] * 5,
                            "test_set": [t for t in ("pbc:test", "lisc", "bccd", "jtsc", "cellavision")
                                         for _ in range(8)],
                            "accuracy_mean": [0.5] * 40, "accuracy_ci95": [0.05] * 40,
                            "majority_baseline": [0.3] * 40, "seeds": [5] * 40})
    svg = plots.to_svg(plots.benchmark_chart(summary, "accuracy"))
    assert float(svg.split('width="', 1)[1].split('"', 1)[0]) <= 760
    assert spec_font(plots.benchmark_chart(summary, "accuracy").to_dict()) >= 12


def svg_texts(chart) -> list[str]:
    """Every text element the rendered SVG draws."""
    import re
    return re.findall(r"<text[^>]*>([^<]*)</text>", plots.to_svg(chart))


def test_panel_headers_name_the_domains_in_words_and_keep_their_order():
    """Panels are headed 'PBC (held-out test)', not 'pbc:test'; a test set the book does not name keeps its own."""
    summary = summary_frame().assign(test_set=["lisc", "pbc:test", "my-lab"])
    texts = svg_texts(plots.benchmark_chart(summary, "accuracy"))
    assert {"PBC (held-out test)", "LISC", "my-lab"} <= set(texts) and not {"pbc:test", "lisc"} & set(texts)
    assert texts.index("PBC (held-out test)") < texts.index("LISC")  # in-domain first
    drops = pd.DataFrame({"label": ["a"] * 2, "eval_mode": ["standard"] * 2,
                          "test_set": ["cellavision", "raabin:testB"],
                          "drop_mean": [0.5, 0.1], "drop_ci95": [0.1] * 2, "drop_lo": [0.4, 0.0],
                          "drop_hi": [0.6, 0.2], "seeds": [2] * 2})
    texts = svg_texts(plots.drop_chart(drops))
    assert {"CellaVision", "Raabin-WBC Test-B"} <= set(texts) and "cellavision" not in texts


def spec_font(spec: dict) -> int:
    return min(spec["config"]["axis"]["labelFontSize"], spec["config"]["header"]["labelFontSize"])


def test_recall_heatmap_marks_absent_classes():
    recall = pd.DataFrame({"label": ["m"] * 2 + ["m + AdaBN"] * 2, "test_set": ["jtsc", "lisc"] * 2,
                           "class": ["Basophil", "Monocyte"] * 2, "recall": [float("nan"), 0.5, 0.25, 0.75],
                           "seeds": [0, 2, 2, 2], "images": [0, 3, 1, 3]})
    spec = plots.recall_heatmap(recall).to_dict()
    rows = data(spec, spec)
    absent = [r for r in rows if r["class"] == "Basophil" and r["label"] == "m"][0]
    assert absent["text"] == "n/a" and absent["present"] is False and absent["recall_fill"] == -1.0
    assert [r["text"] for r in rows][1:] == ["0.50", "0.25", "0.75"]
    assert spec["facet"]["sort"] == ["lisc", "jtsc"] and spec["columns"] == 2  # the book's domain order
    heat, _ = layers(spec)
    assert heat["encoding"]["y"]["sort"] == ["m", "m + AdaBN"] and heat["encoding"]["x"]["sort"] == list(CLASSES)


def test_svg_holds_the_data_labels():
    svg = plots.show(plots.class_counts_chart(counts_frame()))._repr_svg_()
    assert svg.lstrip().startswith("<svg") and "lisc" in svg and "bccd" in svg and "Class composition" in svg


def test_image_grid_png_places_tiles_and_leaves_gaps_white():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 2] = 255
    png = plots.image_grid_png([[red, None], [blue, red]], ["a", "b"], ["x", "y"], pad=2)
    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    font = plots.label_font()
    label_w, head_h, s = 8 + int(max(font.getlength("a"), font.getlength("b"))), plots.FONT_SIZE + 4, 4
    assert im.shape == (head_h + 2 * (s + 2), label_w + 2 * (s + 2), 3)

    def tile(i, j):
        y, x = head_h + i * (s + 2), label_w + j * (s + 2)
        return im[y: y + s, x: x + s]

    assert (tile(0, 0) == red).all() and (tile(1, 0) == blue).all() and (tile(1, 1) == red).all()
    assert (tile(0, 1) == 255).all()  # the missing cell
    fig = plots.PNGFigure(png)
    assert fig._repr_png_() == png and fig.data_uri().startswith("data:image/png;base64,iVBOR")


def test_sample_grid_one_row_per_domain(data_root):
    fig = plots.sample_grid(["lisc"], per_class=1, size=8, data_root=data_root)
    im = Image.open(io.BytesIO(fig.png))
    label_w = 8 + int(plots.label_font().getlength("lisc"))
    assert im.size == (label_w + len(CLASSES) * (8 + 2), plots.FONT_SIZE + 4 + (8 + 2))
    assert not math.isnan(np.asarray(im, dtype=float).mean())


def test_image_grid_png_writes_a_run_of_equal_headings_once():
    tiles = [[np.zeros((40, 40, 3), np.uint8)] * 2]
    same = np.asarray(Image.open(io.BytesIO(plots.image_grid_png(tiles, ["r"], ["Eosinophil", "Eosinophil"]))))
    other = np.asarray(Image.open(io.BytesIO(plots.image_grid_png(tiles, ["r"], ["Eosinophil", "Monocyte"]))))
    font = plots.label_font()
    x = 8 + int(font.getlength("r")) + 40 + 2 + 2     # where the second heading would start
    end = x - 40 - 2 + int(font.getlength("Eosinophil"))  # where the first one, written in full, ends
    head = slice(0, plots.FONT_SIZE + 4)
    assert end > x                                     # it runs across into the second column...
    assert not (same[head, x:end] == 255).all()
    assert (same[head, end + 2:x + 38] == 255).all()   # ...and nothing else is written there
    assert not (other[head, end + 2:x + 38] == 255).all()  # a different heading is
