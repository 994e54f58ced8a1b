"""The methods chapter's remedy galleries (wbcbench.engine.gallery computes them) as PNG figures: image_grid_png's
grid under column headings wrapped onto lines as wide as a cell, so a heading in reader words stays whole."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw

from wbcbench.report.plots import PNGFigure, image_grid_png, label_font

PAD = 2   # px between cells, as image_grid_png lays them out


def wrap(text: str, width: float, measure) -> list[str]:
    """`text` split at spaces into lines no wider than `width` by `measure(line)` (a longer word stays whole)."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and measure(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def gallery_png(rows, row_labels, col_labels) -> bytes:
    """A PNG of `rows` ([row][column] uint8 square images of one size) with `row_labels` at the left and
    `col_labels` above the columns, each heading wrapped to its cell's width."""
    grid = Image.open(io.BytesIO(image_grid_png(rows, list(row_labels), None, pad=PAD)))
    side = rows[0][0].shape[0]
    left = grid.width - max(len(r) for r in rows) * (side + PAD)  # image_grid_png's row-label margin
    draw = ImageDraw.Draw(grid)
    font = label_font()
    texts = ["\n".join(wrap(c, side - 4, font.getlength)) for c in col_labels]
    head = 4 + max(draw.multiline_textbbox((0, 0), t, font=font)[3] for t in texts)
    canvas = Image.new("RGB", (grid.width, head + grid.height), "white")
    canvas.paste(grid, (0, head))
    draw = ImageDraw.Draw(canvas)
    for j, t in enumerate(texts):
        draw.multiline_text((left + j * (side + PAD) + 2, 1), t, fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def gallery_figure(gallery) -> PNGFigure:
    """A notebook output of a gallery (anything with `rows()`, `row_labels` and `col_labels`, as
    wbcbench.engine.gallery.Gallery)."""
    return PNGFigure(gallery_png(gallery.rows(), gallery.row_labels, gallery.col_labels))
