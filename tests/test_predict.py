"""`wbcbench predict` on a practitioner's folder tree of unlabelled images, checked against a tiny real run:
every real image gets exactly the probabilities the run's own evaluation gave it (same model, same
preprocessing), odd but valid files (grayscale, 16-bit, palette, RGBA, CMYK) are converted as the cache
converts them, junk is named and nothing is written, and AdaBN statistics come from the folder's images
whatever their folder layout or order."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wbcbench import cli
from wbcbench.core.classes import CLASSES
from wbcbench.engine import train

PROBS = [f"p_{c}" for c in CLASSES]


@pytest.fixture(scope="module")
def run_dir(data_root, tmp_path_factory) -> Path:
    """Smoke-profile run, evaluated on cellavision as is and with AdaBN. Eval batches of 16 make its 100
    images 7 batches, the last smaller: a layout-dependent AdaBN would show."""
    return train.run(model="resnet18_bn", profile="smoke", seed=0, train_set="pbc:train", test_sets=["cellavision"],
                     out=tmp_path_factory.mktemp("runs"), quiet=True, adapt=["adabn"], eval_batch_size=16)


def cellavision(data_root: Path) -> list[str]:
    with open(data_root / "cellavision" / "manifest.csv", newline="") as f:
        return [r["path"] for r in csv.DictReader(f)]


def copy_tree(data_root: Path, top: Path, where) -> dict[str, str]:
    """Copies of every cellavision image under `top` at where(i, file name); {path in tree: manifest path}."""
    placed = {}
    for i, src in enumerate(cellavision(data_root)):
        dest = top / where(i, Path(src).name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / "cellavision" / src, dest)
        placed[dest.relative_to(top).as_posix()] = src
    return placed


def nested(i: int, name: str) -> str:
    return f"slide{i % 3}/" + ("field/deeper/" if i % 2 else "") + name


def predict(run_dir, images, out, *extra) -> pd.DataFrame:
    assert cli.main(["predict", "--checkpoint", str(run_dir), "--images", str(images), "--out", str(out),
                     "--quiet", *extra]) == 0
    return pd.read_csv(out)


def evaluation(run_dir: Path, folder: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / "eval" / folder / "predictions.csv").set_index("path")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wbcbench: error: "), err
    return err[0]


def test_predictions_equal_the_runs_own_evaluation_and_odd_images_are_converted(run_dir, data_root, tmp_path):
    top = tmp_path / "lab"
    placed = copy_tree(data_root, top, nested)
    first = Image.open(data_root / "cellavision" / cellavision(data_root)[0]).convert("RGB")
    odd = top / "odd"
    odd.mkdir()
    # each odd file next to the plain RGB image it must be read as
    rgba = first.copy()
    rgba.putalpha(255)
    rgba.save(odd / "rgba.png")  # opaque: composited on white it is the original image
    rgba.putalpha(128)
    rgba.save(odd / "rgba_half.png")  # half transparent: over white, the colour of an empty slide
    Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB").save(odd / "rgba_half_as_rgb.png")
    gray = first.convert("L")
    gray.save(odd / "gray.png")
    gray.convert("RGB").save(odd / "gray_as_rgb.png")
    Image.fromarray(np.asarray(gray, np.uint16) * 257).save(odd / "gray16.png")  # 16-bit, same grey levels
    pal = first.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.save(odd / "palette.png")
    pal.convert("RGB").save(odd / "palette_as_rgb.png")
    cmyk = first.convert("CMYK")
    cmyk.save(odd / "cmyk.tif")
    cmyk.convert("RGB").save(odd / "cmyk_as_rgb.png")
    modes = {Image.open(odd / f).mode for f in ("gray16.png", "palette.png", "rgba.png", "cmyk.tif")}
    assert modes >= {"P", "RGBA", "CMYK"}
    assert Image.open(odd / "gray16.png").mode.startswith("I")
    (odd / "notes.txt").write_text("not an image and not an image extension: ignored")
    (odd / ".hidden.png").write_bytes(b"hidden files are skipped, as datasets skips them")

    table = predict(run_dir, top, tmp_path / "out" / "preds.csv")
    assert list(table.columns) == ["path", "prediction", *PROBS]
    odd_files = ["rgba", "rgba_half", "rgba_half_as_rgb", "gray", "gray_as_rgb", "gray16", "palette", "palette_as_rgb",
                 "cmyk", "cmyk_as_rgb"]
    expected = sorted([*placed, *(f"odd/{n}.{'tif' if n == 'cmyk' else 'png'}" for n in odd_files)])
    assert table["path"].tolist() == expected
    np.testing.assert_allclose(table[PROBS].sum(1), 1.0, atol=1e-6)
    assert (table["prediction"] == np.array(CLASSES)[table[PROBS].to_numpy().argmax(1)]).all()

    by_path = table.set_index("path")
    ours = by_path.loc[list(placed)]
    theirs = evaluation(run_dir, "cellavision").loc[list(placed.values())]
    assert ours["prediction"].tolist() == theirs["prediction"].tolist()
    np.testing.assert_allclose(ours[PROBS].to_numpy(), theirs[PROBS].to_numpy(), rtol=0, atol=1e-6)

    def same(a: str, b: pd.Series) -> None:
        np.testing.assert_allclose(by_path.loc[a, PROBS].to_numpy(float), b[PROBS].to_numpy(float), atol=1e-6)
    same("odd/rgba.png", theirs.iloc[0])
    for a, b in [("rgba_half", "rgba_half_as_rgb"), ("gray", "gray_as_rgb"), ("gray16", "gray_as_rgb"),
                 ("palette", "palette_as_rgb"), ("cmyk", "cmyk_as_rgb")]:
        same(f"odd/{a}.{'tif' if a == 'cmyk' else 'png'}", by_path.loc[f"odd/{b}.png"])
    # not a trivial check: the grey image is predicted differently from the colour one
    gray, colour = by_path.loc["odd/gray.png", PROBS].to_numpy(float), theirs.iloc[0][PROBS].to_numpy(float)
    assert np.abs(gray - colour).max() > 1e-4


def test_adabn_uses_the_folders_images_whatever_their_layout(run_dir, data_root, tmp_path):
    """The same 100 images nested in three folders, or flat in reversed order, adapt to the same statistics:
    those of the run's own AdaBN evaluation of cellavision (exact AdaBN: over all images, not an
    equal-weight average of batches, whose composition depends on the layout)."""
    a = copy_tree(data_root, tmp_path / "a", nested)
    b = copy_tree(data_root, tmp_path / "b", lambda i, name: f"{999 - i:03d}_{name}")
    pa = predict(run_dir, tmp_path / "a", tmp_path / "a.csv", "--adapt", "adabn").set_index("path")
    pb = predict(run_dir, tmp_path / "b", tmp_path / "b.csv", "--adapt", "adabn").set_index("path")
    want = evaluation(run_dir, "cellavision@adabn")
    plain = evaluation(run_dir, "cellavision")
    for placed, got in ((a, pa), (b, pb)):
        got = got.loc[list(placed)]
        ref = want.loc[list(placed.values())]
        np.testing.assert_allclose(got[PROBS].to_numpy(), ref[PROBS].to_numpy(), rtol=0, atol=1e-5)
        assert got["prediction"].tolist() == ref["prediction"].tolist()
    # adapting changed something (else this test would prove nothing)
    assert np.abs(want[PROBS].to_numpy() - plain.loc[want.index, PROBS].to_numpy()).max() > 1e-3


def test_stain_normalised_predictions_equal_the_runs_own_macenko_evaluation(run_dir, data_root, tmp_path):
    """`--adapt macenko` on a folder normalises each image to the training domain's reference, as the
    evaluation does: the same probabilities as the run's cellavision@macenko evaluation, which it gains
    here without retraining (the run is done)."""
    again = train.run(model="resnet18_bn", profile="smoke", seed=0, train_set="pbc:train", test_sets=["cellavision"],
                      out=run_dir.parent, quiet=True, adapt=["adabn", "macenko"], eval_batch_size=16)
    assert again == run_dir
    placed = copy_tree(data_root, tmp_path / "a", nested)
    got = predict(run_dir, tmp_path / "a", tmp_path / "a.csv", "--adapt", "macenko").set_index("path")
    got = got.loc[list(placed)]
    ref = evaluation(run_dir, "cellavision@macenko").loc[list(placed.values())]
    np.testing.assert_allclose(got[PROBS].to_numpy(), ref[PROBS].to_numpy(), rtol=0, atol=1e-6)
    plain = evaluation(run_dir, "cellavision").loc[ref.index]
    assert np.abs(ref[PROBS].to_numpy() - plain[PROBS].to_numpy()).max() > 1e-3


def test_junk_is_named_and_nothing_is_written(run_dir, data_root, tmp_path, capsys):
    top = tmp_path / "lab"
    copy_tree(data_root, top, nested)
    pbc_jpeg = next((data_root / "pbc" / "Lymphocyte").glob("*.jpg"))
    (top / "slide0" / "cut.jpg").write_bytes(pbc_jpeg.read_bytes()[: pbc_jpeg.stat().st_size // 2])
    (top / "slide1" / "empty.jpg").write_bytes(b"")
    (top / "junk.png").write_text("this is a text file")
    (top / ".hidden.png").write_text("skipped")
    out = tmp_path / "new" / "preds.csv"
    assert cli.main(["predict", "--checkpoint", str(run_dir), "--images", str(top), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "3 of 103 files" in line, line
    for name in ("slide0/cut.jpg", "slide1/empty.jpg", "empty (0 bytes)", "junk.png"):
        assert name in line, (name, line)
    assert ".hidden" not in line
    assert not out.parent.exists()


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_an_unwritable_out_is_refused_before_any_work(run_dir, tmp_path, capsys, where):
    top = tmp_path / "lab"
    top.mkdir()
    (top / "junk.png").write_text("would fail later: the --out check comes first")
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder should be")
    out = blocker / "preds.csv" if where == "under a file" else tmp_path
    assert cli.main(["predict", "--checkpoint", str(run_dir), "--images", str(top), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"--out {out}" in line and "junk.png" not in line, line
    assert blocker.read_text() == "a file where a folder should be"


@pytest.mark.parametrize("case, words", [
    ("adapt batch_stats", ("batch_stats", "adabn")),
    ("adapt typo", ("unknown test-time method 'adabm'",)),
    ("missing images folder", ("nowhere", "not a folder")),
    ("empty images folder", ("no images under",)),
    ("symlink loop", ("symlink loop",)),
    ("missing checkpoint", ("no-run", "not found")),
])
def test_bad_arguments_exit_2_with_one_line(run_dir, data_root, tmp_path, capsys, case, words):
    top = tmp_path / "lab"
    (top / "a").mkdir(parents=True)
    checkpoint, extra = run_dir, []
    if case != "empty images folder":
        shutil.copyfile(data_root / "cellavision" / cellavision(data_root)[0], top / "a" / "x.bmp")
    if case == "adapt batch_stats":
        extra = ["--adapt", "batch_stats"]
    elif case == "adapt typo":
        extra = ["--adapt", "adabm"]
    elif case == "missing images folder":
        top = tmp_path / "nowhere"
    elif case == "symlink loop":
        (top / "a" / "back").symlink_to(top)
    elif case == "missing checkpoint":
        checkpoint = tmp_path / "no-run"
    out = tmp_path / "preds.csv"
    assert cli.main(["predict", "--checkpoint", str(checkpoint), "--images", str(top), "--out", str(out),
                     "--quiet", *extra]) == 2
    line = one_error_line(capsys)
    assert all(w in line for w in words), line
    assert not out.exists()
