"""What each remedy does to a cell: one fixed cell of every domain through each training-time augmentation and
each test-time image method, computed by the code that trains and evaluates, so a figure of it shows what a model
is given.

Every cell is the centre crop of the stored image (the evaluation loader's crop, wbcbench.data.loader.BatchLoader),
the input of a pretrained-study model before its normalisation. Augmentations (wbcbench.engine.augment) act on the
crops of all domains as one batch, with the generator a run of `seed` draws from in its first epoch; a training run
also crops at random and flips, which the figure leaves out. Test-time methods act on the stored images of the
whole domain before the crop, as in evaluation: the per-domain stain methods fit the domain's estimate as
wbcbench.adapt.stain_domain does (the same seeded sample of its images) and map the one cell with it, which is
what the method gives that cell; rescaling is the method registry's own step (wbcbench.adapt.methods)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wbcbench.adapt import methods, stain_domain
from wbcbench.core.classes import CLASSES, class_index
from wbcbench.core.errors import WbcError
from wbcbench.core.names import BENCHMARK_DOMAINS, DOMAIN_NAMES
from wbcbench.core.profiles import get_profile
from wbcbench.data.cache import load_dataset
from wbcbench.data.datasets import balanced_indices
from wbcbench.data.loader import BatchLoader
from wbcbench.engine.augment import epoch_generator, make_augment

PROFILE = "cpu-pretrained-v2"   # the study whose remedies these are: stored at 110 px, cropped to 96
CLASS = "Lymphocyte"
#: The training-time augmentations shown, in reader words (wbcbench.core.profiles.AUGMENTATIONS; their chain
#: `colour+scale` is scale then colour jitter, both shown alone).
AUGMENT_COLUMNS = {"colour": "colour jitter", "hed": "HED stain jitter", "grayscale": "grayscale",
                   "scale": "scale jitter"}
#: The test-time image methods shown, in reader words; `{train}` is the training domain.
TEST_COLUMNS = {"macenko_domain": "Macenko, fitted per domain", "reinhard_domain": "Reinhard, fitted per domain",
                "scale": "rescaled to {train}'s cell scale"}
ORIGINAL = "original"
#: The columns of two_stain_gallery: what Macenko keeps of a cell, and what it gives it.
TWO_STAIN_COLUMNS = ("rebuilt from its domain's two stains", "Macenko, fitted per domain")


@dataclass(frozen=True)
class Gallery:
    """cells[i, j]: domain i's cell (uint8 crop x crop x 3) under column j; `index[i]`: its position in the domain's
    dataset."""

    cells: np.ndarray
    row_labels: tuple
    col_labels: tuple
    index: tuple

    def rows(self) -> list[list[np.ndarray]]:
        """The cells as image_grid_png (wbcbench.report.plots) takes them: [row][column]."""
        return [list(row) for row in self.cells]


def domain_cell(labels, cls: str = CLASS, seed: int = 0) -> int:
    """The position of a domain's one shown cell: its `cls` image in the seeded class-balanced sample of one image
    per class (wbcbench.data.domains.domain_sample's sample with per_class=1)."""
    labels = np.asarray(labels)
    pick = balanced_indices(labels, 1, seed=seed)
    hit = pick[labels[pick] == class_index(cls)]
    if not len(hit):
        raise WbcError(f"this domain has no {cls} image to show")
    return int(hit[0])


def centre_crops(stored: np.ndarray, crop: int) -> np.ndarray:
    """uint8 (N, crop, crop, 3): the evaluation loader's centre crops of stored images (N, S, S, 3)."""
    loader = BatchLoader(np.ascontiguousarray(stored), np.zeros(len(stored), np.int64), None, crop=crop,
                         batch_size=len(stored), mean=(0, 0, 0), std=(1, 1, 1), device="cpu", train=False)
    return np.concatenate([x.numpy() for x, _, _ in loader.host_batches()])


def augmented(crops: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """Augmentation `name` with its defaults on `crops` as one training batch, drawing from epoch 0's generator of
    a run seeded `seed`."""
    out = make_augment(name)(torch.from_numpy(np.ascontiguousarray(crops)), epoch_generator(seed, 0))
    return out.numpy()


def test_time_image(method: str, images: np.ndarray, i: int, hp: dict, ds=None, data_root=None,
                    train_set: str = "pbc:train") -> np.ndarray:
    """Stored image i of a domain (`images`, all of it) after test-time image method `method`, uncropped."""
    root = None if data_root is None else str(data_root)
    if method in stain_domain.DOMAIN_METHODS:
        base = stain_domain.DOMAIN_METHODS[method]
        reference = methods.stain_reference(base, hp["stored_size"], root, train_set)
        domain = stain_domain.domain_reference(images, base)
        return stain_domain.normalise_domain(images[i:i + 1], domain, reference).images[0]
    ctx = methods.Context(hp=hp, seed=0, loader=None, predict=None, data_root=root, ds=ds, train_set=train_set)
    return methods.IMAGE_STEPS[method](images, ctx)[i]


def _row_labels(names) -> tuple:
    return tuple(DOMAIN_NAMES.get(n, n) for n in names)


def _domains(names, cls, seed, data_root, size):
    for name in names:
        ds, images = load_dataset(name, data_root, size)
        yield name, ds, images, domain_cell(ds.labels, cls, seed)


def augmentation_gallery(names=BENCHMARK_DOMAINS, columns=tuple(AUGMENT_COLUMNS), cls: str = CLASS,
                         seed: int = 0, data_root=None, profile: str = PROFILE) -> Gallery:
    """Each domain's cell as stored, then under each training-time augmentation of `columns`."""
    hp = get_profile(profile)
    found = list(_domains(names, cls, seed, data_root, hp["stored_size"]))
    crops = centre_crops(np.stack([images[i] for _, _, images, i in found]), hp["crop_size"])
    cells = np.stack([crops] + [augmented(crops, name, seed) for name in columns], axis=1)
    return Gallery(cells, _row_labels(names), (ORIGINAL, *(AUGMENT_COLUMNS.get(c, c) for c in columns)),
                   tuple(i for *_, i in found))


def normalisation_gallery(names=BENCHMARK_DOMAINS, columns=tuple(TEST_COLUMNS), cls: str = CLASS, seed: int = 0,
                          data_root=None, profile: str = PROFILE, train_set: str = "pbc:train") -> Gallery:
    """Each domain's cell as stored, then after each test-time image method of `columns`, fitted on its domain."""
    hp = get_profile(profile)
    rows = []
    found = list(_domains(names, cls, seed, data_root, hp["stored_size"]))
    for _, ds, images, i in found:
        stored = [np.asarray(images[i])]
        stored += [test_time_image(m, images, i, hp, ds, data_root, train_set) for m in columns]
        rows.append(centre_crops(np.stack(stored), hp["crop_size"]))
    train = train_set.split(":")[0].upper()
    labels = (ORIGINAL, *(TEST_COLUMNS.get(c, c).format(train=train) for c in columns))
    return Gallery(np.stack(rows), _row_labels(names), labels, tuple(i for *_, i in found))


def two_stain_gallery(name: str = "pbc:test", classes=CLASSES, seed: int = 0, data_root=None,
                      profile: str = PROFILE, train_set: str = "pbc:train") -> Gallery:
    """One cell per class of domain `name`: as stored; rebuilt from the two stain vectors and amounts fitted on its
    own domain (Macenko mapping the domain to itself: all it changes is what two stains cannot hold,
    wbcbench.adapt.stain_domain.off_plane_od); and mapped to the training reference, as `macenko_domain` does."""
    hp = get_profile(profile)
    ds, images = load_dataset(name, data_root, hp["stored_size"])
    domain = stain_domain.domain_reference(images, "macenko")
    reference = methods.stain_reference("macenko", hp["stored_size"], None if data_root is None else str(data_root),
                                        train_set)
    picked = [domain_cell(ds.labels, c, seed) for c in classes]
    cells = np.stack([images[picked]] + [stain_domain.normalise_domain(images[picked], domain, target).images
                                         for target in (domain, reference)], axis=1)
    crops = centre_crops(cells.reshape(-1, *cells.shape[2:]), hp["crop_size"]).reshape(
        len(picked), 3, hp["crop_size"], hp["crop_size"], 3)
    return Gallery(crops, tuple(classes), (ORIGINAL, *TWO_STAIN_COLUMNS), tuple(picked))
