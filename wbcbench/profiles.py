"""Training profiles as data: the paper's recipe is written down here once and nowhere else.

`stored_size` is the side of the square uint8 image kept in the cache (shorter side resized to it, then
centre-cropped); training takes random `crop_size` crops + flips from it, evaluation the centre crop.
"""
from __future__ import annotations

from .errors import WbcError, unknown

PROFILES: dict[str, dict] = {
    # Tsutsui, Su & Wen (ICASSP 2023), Sec. 3: AdamW, lr 1e-4, wd 5e-3, batch 128, 100 epochs,
    # 10 linear warm-up epochs then cosine; Resize 256 -> RandomCrop 224 + flips; last epoch tested.
    "paper": dict(epochs=100, warmup_epochs=10, lr=1e-4, weight_decay=5e-3, batch_size=128,
                  stored_size=256, crop_size=224, hflip=True, vflip=True, mixup_alpha=0.0,
                  train_subset_per_class=None, eval_batch_size=256, pretrained=True),
    # CPU study: ResNet-18 from scratch on 2 CPU cores. Chosen on pbc:val only, before the grid (results/cpu-pilot,
    # shown in the book): 6 epochs on 200 images per class at crops of 32/48/64 px gave pbc:val accuracy
    # 0.872/0.929/0.927, so 48 px: as accurate as 64 px at about half the compute.
    "cpu": dict(epochs=6, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=64,
                stored_size=56, crop_size=48, hflip=True, vflip=True, mixup_alpha=0.0,
                train_subset_per_class=200, eval_batch_size=256, pretrained=False),
    # Tests and notebook smoke runs: seconds, on a small real subset.
    "smoke": dict(epochs=2, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=32,
                  stored_size=40, crop_size=32, hflip=True, vflip=True, mixup_alpha=0.0,
                  train_subset_per_class=24, eval_batch_size=128, pretrained=False),
}


def _check_type(key: str, value) -> None:
    """An override must have the type of the setting in the profiles (an int where an int is expected,
    a float may be given as an int, True/False only for flags), so `epochs="two"` fails here, by name."""
    kinds = {type(pr[key]) for pr in PROFILES.values() if pr.get(key) is not None}
    if bool in kinds:
        ok = isinstance(value, bool)
    elif float in kinds:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif int in kinds:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        want = "True or False" if bool in kinds else "a number" if float in kinds else "an integer"
        raise WbcError(f"profile setting {key}={value!r} has type {type(value).__name__}; it must be {want}")


def get_profile(name: str, **overrides) -> dict:
    """A copy of profile `name` with `overrides` (None values ignored) applied."""
    if name not in PROFILES:
        raise unknown("profile", name, PROFILES)
    p = dict(PROFILES[name])
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in p:
            raise unknown("profile setting", k, p)
        _check_type(k, v)
        p[k] = v
    p["name"] = name
    return p
