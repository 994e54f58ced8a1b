"""Training profiles as data: the paper's recipe is written down here once and nowhere else.

`stored_size` is the side of the square uint8 image kept in the cache (shorter side resized to it, then
centre-cropped); training takes random `crop_size` crops + flips from it, evaluation the centre crop.
"""
from __future__ import annotations

from .errors import unknown

PROFILES: dict[str, dict] = {
    # Tsutsui, Su & Wen (ICASSP 2023), Sec. 3: AdamW, lr 1e-4, wd 5e-3, batch 128, 100 epochs,
    # 10 linear warm-up epochs then cosine; Resize 256 -> RandomCrop 224 + flips; last epoch tested.
    "paper": dict(epochs=100, warmup_epochs=10, lr=1e-4, weight_decay=5e-3, batch_size=128,
                  stored_size=256, crop_size=224, hflip=True, vflip=True, mixup_alpha=0.0,
                  train_subset_per_class=None, eval_batch_size=256, pretrained=True),
    # CPU study (issue 6): small images, few epochs, so one resnet18 run fits in <= 3 min on 2 cores.
    # Resolution and epochs were chosen on pbc:val only (see book/methods).
    "cpu": dict(epochs=8, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=64,
                stored_size=72, crop_size=64, hflip=True, vflip=True, mixup_alpha=0.0,
                train_subset_per_class=400, eval_batch_size=256, pretrained=False),
    # Tests and notebook smoke runs: seconds, on a small real subset.
    "smoke": dict(epochs=2, warmup_epochs=1, lr=1e-3, weight_decay=5e-3, batch_size=32,
                  stored_size=40, crop_size=32, hflip=True, vflip=True, mixup_alpha=0.0,
                  train_subset_per_class=24, eval_batch_size=128, pretrained=False),
}


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
        p[k] = v
    p["name"] = name
    return p
