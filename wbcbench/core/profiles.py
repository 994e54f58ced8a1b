"""Training profiles as data: the paper's recipe is written down here once and nowhere else.

`SETTINGS` is the schema of a profile: each setting's type, meaning and allowed range. It is the one list
that the CLI's flags, the sweep's overrides, the notebook's parameters and the rerun commands are built
from, so a setting added here is accepted everywhere and checked the same way everywhere.

`stored_size` is the side of the square uint8 image kept in the cache (shorter side resized to it, then
centre-cropped); training takes random `crop_size` crops + flips from it, evaluation the centre crop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from wbcbench.core.errors import WbcError, unknown

#: Training-time augmentations by name (wbcbench.engine.augment implements each, with its defaults).
AUGMENTATIONS = ("none", "hed", "colour", "grayscale", "scale", "colour+scale")

REQUIRED = object()  # a setting every profile sets itself


@dataclass(frozen=True)
class Setting:
    """One profile setting: its type (int, float or bool), what it means, and its allowed range."""
    type: type
    help: str
    min: float | None = None
    max: float | None = None
    min_open: bool = False   # the minimum itself is not allowed (lr > 0)
    max_open: bool = False   # the maximum itself is not allowed (label_smoothing < 1)
    none_ok: bool = False    # None is a value of its own (train_subset_per_class: every image)
    choices: tuple = ()      # the values of a str setting
    # A setting added after runs were recorded has a default, which a profile may leave unset. A run record
    # leaves such a setting out while it has its default, so the runs made before it keep their names.
    default: object = REQUIRED

    def allowed(self) -> str:
        """The allowed values in words, for error messages and --help."""
        if self.type is bool:
            return "True or False"
        if self.type is str:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.type is int else "a finite number"
        lo = None if self.min is None else f"{'>' if self.min_open else '>='} {self.min:g}"
        hi = None if self.max is None else f"{'<' if self.max_open else '<='} {self.max:g}"
        if lo and hi:
            text = (f"{kind} in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}"
                    f"{')' if self.max_open else ']'}")
        else:
            text = " ".join(filter(None, (kind, lo or hi)))
        return text + (" or None" if self.none_ok else "")

    def check(self, name: str, value):
        """`value` if it is allowed (an int given for a float becomes a float), else WbcError naming it."""
        if value is None and self.none_ok:
            return None
        if self.type is str:
            if not isinstance(value, str) or value not in self.choices:
                raise WbcError(f"profile setting {name}={value!r} is not allowed: it must be {self.allowed()}")
            return value
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise WbcError(f"profile setting {name}={value!r} has type {type(value).__name__}; "
                           f"it must be {self.allowed()}")
        if self.type is bool:
            return value
        if self.type is float:
            value = float(value)
            if not math.isfinite(value):
                raise WbcError(f"profile setting {name}={value!r} is out of range: it must be {self.allowed()}")
        too_low = self.min is not None and (value <= self.min if self.min_open else value < self.min)
        too_high = self.max is not None and (value >= self.max if self.max_open else value > self.max)
        if too_low or too_high:
            raise WbcError(f"profile setting {name}={value!r} is out of range: it must be {self.allowed()}")
        return value


SETTINGS: dict[str, Setting] = {
    "epochs": Setting(int, "training epochs (the last epoch is the one tested)", min=1),
    "warmup_epochs": Setting(int, "epochs of linear learning-rate warm-up before the cosine decay (<= epochs)",
                             min=0),
    "lr": Setting(float, "peak learning rate of AdamW", min=0, min_open=True),
    "weight_decay": Setting(float, "AdamW weight decay", min=0),
    "batch_size": Setting(int, "training batch size", min=1),
    "eval_batch_size": Setting(int, "evaluation batch size", min=1),
    "stored_size": Setting(int, "side of the square image kept in the cache, in pixels", min=1),
    "crop_size": Setting(int, "side of the training crops and of the evaluation centre crop (<= stored_size)",
                         min=1),
    "hflip": Setting(bool, "random horizontal flips in training"),
    "vflip": Setting(bool, "random vertical flips in training"),
    "mixup_alpha": Setting(float, "mixup Beta(alpha, alpha) parameter; 0 turns mixup off", min=0),
    "label_smoothing": Setting(float, "label smoothing of the cross-entropy loss", min=0, max=1, max_open=True),
    "train_subset_per_class": Setting(int, "train on at most this many images per class (a class-balanced "
                                           "subset); None, as in the paper profile: every image", min=1,
                                     none_ok=True),
    "pretrained": Setting(bool, "start from ImageNet weights"),
    "tent_batch_size": Setting(int, "batch size of TENT's online updates (its paper: 64); None: the evaluation "
                                    "batch size", min=1, none_ok=True, default=None),
    "augment": Setting(str, "colour augmentation of every training batch (wbcbench.engine.augment; grayscale also "
                            "converts the test images)", choices=AUGMENTATIONS, default="none"),
}

PROFILES: dict[str, dict] = {
    # Tsutsui, Su & Wen (ICASSP 2023), Sec. 3: AdamW, lr 1e-4, wd 5e-3, batch 128, 100 epochs,
    # 10 linear warm-up epochs then cosine; Resize 256 -> RandomCrop 224 + flips; last epoch tested.
    # Label smoothing 0.1 belongs to the reference's mixup recipe only: the mixup model sets it (models.py).
    "paper": dict(epochs=100, warmup_epochs=10, lr=1e-4, weight_decay=5e-3, batch_size=128,
                  stored_size=256, crop_size=224, hflip=True, vflip=True, mixup_alpha=0.0, label_smoothing=0.0,
                  train_subset_per_class=None, eval_batch_size=256, pretrained=True),
    # CPU study: ResNet-18 from scratch on 2 CPU cores. Chosen on pbc:val only, before the grid (results/cpu-pilot,
    # shown in the book): 6 epochs on 200 images per class at crops of 32/48/64 px gave pbc:val accuracy
    # 0.872/0.929/0.927, so 48 px: as accurate as 64 px at about half the compute.
    "cpu": dict(epochs=6, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=64,
                stored_size=56, crop_size=48, hflip=True, vflip=True, mixup_alpha=0.0, label_smoothing=0.0,
                train_subset_per_class=200, eval_batch_size=256, pretrained=False),
    # The pretrained study: ImageNet EfficientNet-Lite fine-tuned with the paper's optimiser and lr on
    # 2 CPU cores. Resolution, epochs and subset chosen on pbc:val only, before the grid (results/cpu-pretrained-pilot,
    # shown in the book; the rule is in book/analysis_plan.md): Lite0's pbc:val balanced accuracy was 0.829 /
    # 0.941 / 0.948 / 0.926 at 64 px x 8 epochs x 200 per class / 96 x 8 x 200 / 96 x 4 x 400 / 128 x 4 x 200,
    # so 96 px, 4 epochs, 400 images per class: the best, at the cost of the 96 px x 8 x 200 setting.
    "cpu-pretrained": dict(epochs=4, warmup_epochs=1, lr=1e-4, weight_decay=5e-3, batch_size=32,
                           stored_size=110, crop_size=96, hflip=True, vflip=True, mixup_alpha=0.0,
                           label_smoothing=0.0, train_subset_per_class=400, eval_batch_size=256, pretrained=True),
    # The converged pretrained study (book/analysis_plan.md, second addendum): all of pbc:train, 8 epochs, so
    # that every arm's training accuracy has plateaued (checked on seed 0 before the other seeds); TENT at 64.
    "cpu-pretrained-v2": dict(epochs=8, warmup_epochs=1, lr=1e-4, weight_decay=5e-3, batch_size=32,
                              stored_size=110, crop_size=96, hflip=True, vflip=True, mixup_alpha=0.0,
                              label_smoothing=0.0, train_subset_per_class=None, eval_batch_size=256,
                              pretrained=True, tent_batch_size=64),
    # Tests and notebook smoke runs: seconds, on a small real subset.
    "smoke": dict(epochs=2, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=32,
                  stored_size=40, crop_size=32, hflip=True, vflip=True, mixup_alpha=0.0, label_smoothing=0.0,
                  train_subset_per_class=24, eval_batch_size=128, pretrained=False),
}


def check_setting(name: str, value):
    """One override checked alone (type and range; not the cross-checks of get_profile)."""
    if name not in SETTINGS:
        raise unknown("profile setting", name, SETTINGS)
    return SETTINGS[name].check(name, value)


def check_seed(seed) -> int:
    """A run's seed: an integer >= 0 (numpy's generators reject negative seeds mid-run)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise WbcError(f"seed={seed!r} has type {type(seed).__name__}; it must be an integer >= 0")
    if seed < 0:
        raise WbcError(f"seed={seed!r} is out of range: it must be an integer >= 0")
    return seed


def given(overrides: dict) -> dict:
    """The `overrides` that set something. None means "the profile's value" and is dropped, except for a
    setting of which None is a value of its own (none_ok: train_subset_per_class=None, every image), so
    `--train-subset-per-class None` can undo a profile's subset."""
    return {k: v for k, v in overrides.items() if v is not None or (k in SETTINGS and SETTINGS[k].none_ok)}


def get_profile(name: str, **overrides) -> dict:
    """A copy of profile `name` with `overrides` (see `given` for None) applied, every setting checked
    (type, range, and the settings that bound each other), so a bad value fails before anything is written."""
    if name not in PROFILES:
        raise unknown("profile", name, PROFILES)
    p = dict(PROFILES[name])
    for k, s in SETTINGS.items():
        if s.default is not REQUIRED:
            p.setdefault(k, s.default)
    for k, v in given(overrides).items():
        p[k] = check_setting(k, v)
    for k, v in p.items():
        SETTINGS[k].check(k, v)
    if p["crop_size"] > p["stored_size"]:
        raise WbcError(f"profile setting crop_size={p['crop_size']} is out of range: it must be <= "
                       f"stored_size={p['stored_size']} (crops are taken from the stored image)")
    if p["warmup_epochs"] > p["epochs"]:
        raise WbcError(f"profile setting warmup_epochs={p['warmup_epochs']} is out of range: it must be <= "
                       f"epochs={p['epochs']} (the warm-up would not end before training does)")
    p["name"] = name
    return p


def setting(hp: dict, name: str):
    """A setting of a run's hyperparameters, its default where the record leaves it out (see recorded)."""
    return hp[name] if name in hp else SETTINGS[name].default


def recorded(hp: dict) -> dict:
    """The hyperparameters as a run record keeps them: a setting with a default is left out while it has
    it, so that adding a setting does not rename every run recorded before it."""
    return {k: v for k, v in hp.items()
            if not (k in SETTINGS and SETTINGS[k].default is not REQUIRED and v == SETTINGS[k].default)}


def flag(name: str) -> str:
    """The command-line flag of a setting: `weight_decay` -> `--weight-decay`."""
    return "--" + name.replace("_", "-")


def parse_flag_value(name: str, text: str):
    """A setting's value from its command-line text: `None`/`none` for a setting that allows None, else
    the setting's type (ValueError otherwise, which argparse reports as an invalid value)."""
    s = SETTINGS[name]
    if s.none_ok and text.strip().lower() == "none":
        return None
    return s.type(text)


def setting_args(overrides: dict) -> list[str]:
    """`wbcbench train` arguments that set `overrides` (see `given` for None):
    {"weight_decay": 0.01, "hflip": False, "train_subset_per_class": None}
    -> ["--weight-decay", "0.01", "--no-hflip", "--train-subset-per-class", "None"]."""
    args = []
    for k, v in given(overrides).items():
        v = check_setting(k, v)
        if v is None:
            args += [flag(k), "None"]
        elif isinstance(v, bool):
            args.append(flag(k) if v else "--no-" + flag(k)[2:])
        elif isinstance(v, str):
            args += [flag(k), v]
        else:
            args += [flag(k), repr(v) if isinstance(v, float) else str(v)]
    return args
