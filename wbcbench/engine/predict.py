"""`wbcbench predict`: a trained run's model on a practitioner's own unlabelled images, one CSV row per image
(path relative to the folder, predicted class, the five probabilities in wbcbench.core.classes order).

The images go through exactly the evaluation's preprocessing (cache.decode at the run's stored size, the
centre crop and normalisation of evaluate.eval_loader), so a file gets the probabilities it gets in the
run's own evaluation. With `--adapt adabn` (or `tent`) the network adapts to these images alone: the
point is a new lab whose stain and scanner the training set never saw. `--adapt macenko` (or `reinhard`)
stain-normalises them to the training domain first; its reference is fitted on pbc:train, which must lie
under the data root. Every file is decoded before
anything is predicted; files that cannot be read are all named in one error and no CSV is written.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from wbcbench.core import names
from wbcbench.core.atomic import write_csv
from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.data.cache import decode
from wbcbench.data.datasets import IMAGE_EXTENSIONS, walk_images
from wbcbench.engine import evaluate
from wbcbench.engine.train import load_model

# batch_stats normalises each batch with its own statistics: a file's prediction would depend on which other
# files share its batch, so it is an analysis tool, not something to hand a practitioner (bn.test_time_bn).
NOT_DEPLOYABLE = ("batch_stats",)
_LISTED = 30  # bad files named in the error; the rest are counted


def predict_methods() -> tuple[str, ...]:
    """The test-time methods `predict --adapt` offers: evaluate's, less the batch-dependent ones."""
    return tuple(m for m in names.ADAPT_METHODS if m not in NOT_DEPLOYABLE)


def check_method(adapt) -> str:
    """names.STANDARD for None/"", else the one deployable method named, else a WbcError."""
    methods = names.parse_adapt(adapt) if adapt not in (None, "") else []
    if not methods:
        return names.STANDARD
    if len(methods) > 1 or methods[0] not in predict_methods():
        raise WbcError(f"--adapt {adapt!r}: predict adapts with one method, one of {', '.join(predict_methods())}"
                       + (" (batch_stats makes a prediction depend on the other images in its batch)"
                          if "batch_stats" in methods else ""))
    return methods[0]


def find_images(folder) -> list[str]:
    """Paths (relative to `folder`, '/'-separated, sorted) of every image under it, recursively, as the
    dataset reader finds them: datasets.IMAGE_EXTENSIONS, hidden files skipped, symlinks followed, loops refused."""
    top = Path(folder).expanduser()
    if not top.is_dir():
        raise WbcError(f"--images {folder}: not a folder")
    found = [p.relative_to(top).as_posix() for p in walk_images(top, ())]
    if not found:
        raise WbcError(f"no images under {folder} (looked for {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} "
                       "files, in subfolders too)")
    return sorted(found)


def decode_images(folder, paths, size: int, quiet: bool = True) -> np.ndarray:
    """uint8 (N, size, size, 3), each file decoded as the image cache decodes it (any mode -> RGB, shorter
    side to `size`, centre square). All files are tried; those that fail are named in one WbcError."""
    top = Path(folder).expanduser()
    out = np.empty((len(paths), size, size, 3), np.uint8)
    bad = []
    for i, rel in enumerate(tqdm(paths, desc=f"decoding {len(paths)} images", unit="img", disable=quiet)):
        try:
            out[i] = decode(top / rel, size)
        except WbcError as e:  # decode names the file by its full path: shorten it to the one given
            why = " ".join(str(e).replace(str(top / rel), rel).split())
            bad.append(why if rel in why else f"{rel} ({why})")
    if bad:
        more = f"; and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
        raise WbcError(f"{len(bad)} of {len(paths)} files under {folder} are not readable images, fix or remove "
                       f"them (nothing was written): {'; '.join(bad[:_LISTED])}{more}")
    return out


def check_out(out) -> Path:
    """The CSV path, refused now if it cannot be written (rather than after decoding and predicting):
    an existing folder, a file where a folder should be, or a folder nobody may write into. Creates nothing."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise WbcError(f"--out {out} is a folder; name the CSV file to write")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise WbcError(f"cannot write --out {out}: {parent} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise WbcError(f"cannot write --out {out}: {e.strerror or e} in {parent}") from None
    return path


def predict_folder(checkpoint, folder, adapt=None, device=None, quiet: bool = True, data_root=None) -> pd.DataFrame:
    """One row per image under `folder`: path, prediction, p_<class> for every class of wbcbench.core.classes.
    `data_root`: where pbc:train lies, for stain normalisation's training-domain reference."""
    method = check_method(adapt)
    paths = find_images(folder)
    net, cfg, dev = load_model(checkpoint, device)
    if method != names.STANDARD and not evaluate.applicable(net, [method]):
        raise WbcError(f"--adapt {method}: model {cfg['model']} has no batch-norm statistics to adapt")
    hp = cfg["hparams"]
    images = decode_images(folder, paths, hp["stored_size"], quiet)
    return evaluate.probability_table(paths, evaluate.method_probabilities(net, method, images, hp, dev, quiet=quiet,
                                                                           desc="predict", data_root=data_root))


def main_predict(checkpoint, images, out, adapt=None, device=None, quiet: bool = False, data_root=None) -> int:
    """CLI: `wbcbench predict --checkpoint C --images DIR [--adapt adabn|tent|macenko|reinhard] --out preds.csv`."""
    check_method(adapt)
    path = check_out(out)
    table = predict_folder(checkpoint, images, adapt, device, quiet, data_root)
    write_csv(path, table)
    counts = table["prediction"].value_counts()
    print(f"{os.fspath(out)}: {len(table)} images predicted ("
          + ", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES) + ")")
    return 0
