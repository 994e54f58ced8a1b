"""Batches straight from the decoded-image cache: no JPEG decoding, no per-image Python transforms.

Random crop and both flips are one strided uint8 copy per image out of the memory map, done in a background
thread while the model computes (numpy releases the GIL for these copies). A vertical flip is a negative row
stride and costs nothing; a horizontal flip is copied one colour plane at a time, because numpy copies a
negative stride over whole 3-byte pixels with a slow generic loop (about 4x slower than three plane copies,
which keep the host at >10,000 images/s at 224 px). The host thus delivers fully augmented uint8 NHWC batches
(pinned on CUDA); on the training device they become normalised float tensors in `channels_last` layout in one
fused step, and mixup (when asked) is a batch operation there too. Crop offsets, flips and order come from a
generator seeded by (seed, epoch), so an epoch is the same whether or not the run was resumed. A colour
augmentation (wbcbench.engine.augment), when asked, is a batch operation on the device's uint8 batch, before the
normalisation.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    x: torch.Tensor        # float (B, 3, C, C), channels_last, normalised, on the device
    y: torch.Tensor        # int64 (B,), on the device
    index: np.ndarray      # positions into the image array


def epoch_rng(seed: int, epoch: int, stream: int = 0x5EED) -> np.random.Generator:
    """One epoch's draws, from (seed, epoch) alone (a resumed run draws what an uninterrupted one does);
    `stream` keeps independent uses (crops here, augmentation draws) apart."""
    return np.random.default_rng([seed, epoch, stream])


def _crop_batch(images: np.ndarray, idx: np.ndarray, crop: int, offsets: np.ndarray,
                vflip: np.ndarray, out: np.ndarray, hflip: np.ndarray | None = None) -> np.ndarray:
    """Copy crop x crop windows of images[idx] into out (B, crop, crop, 3), flipped vertically / horizontally
    where asked. Pixels are copied, never computed, so a flip here equals a flip anywhere else bit for bit."""
    for k, i in enumerate(idx):
        oy, ox = offsets[k]
        win = images[i, oy:oy + crop, ox:ox + crop]
        if vflip[k]:
            win = win[::-1]
        if hflip is not None and hflip[k]:
            win = win[:, ::-1]
            for c in range(3):  # plane by plane: see the module docstring
                out[k, :, :, c] = win[:, :, c]
        else:
            out[k] = win
    return out


class Normalizer:
    """uint8 NHWC -> float NCHW (channels_last memory), (x/255 - mean)/std fused as x*scale + shift."""

    def __init__(self, mean, std, device):
        mean = torch.tensor(mean, dtype=torch.float32)
        std = torch.tensor(std, dtype=torch.float32)
        self.scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device)
        self.shift = (-mean / std).view(1, 3, 1, 1).to(device)

    def __call__(self, x_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = x_uint8_nhwc.permute(0, 3, 1, 2)  # a view: NHWC memory is exactly channels_last
        return x.float().mul_(self.scale).add_(self.shift)  # float() and in-place ops keep channels_last


class BatchLoader:
    """Iterates over `images[indices]` in batches.

    train=True: shuffled, random crops + flips, last partial batch dropped (as torch's DataLoader with
    drop_last, which keeps BN batches large). train=False: in order, centre crops, every image once.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray | None, *, crop: int,
                 batch_size: int, mean, std, device, train: bool, hflip: bool = True, vflip: bool = True,
                 seed: int = 0, prefetch: int = 2, augment=None):
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.crop, self.batch_size, self.train = crop, batch_size, train
        self.hflip, self.vflip, self.seed, self.prefetch = hflip, vflip, seed, prefetch
        self.augment = augment  # epoch -> (uint8 NHWC batch -> uint8 NHWC batch), on the device; or None
        self.device = torch.device(device)
        self.pin = self.device.type == "cuda"
        self.normalize = Normalizer(mean, std, self.device)
        size = images.shape[1]
        if crop > size:
            raise ValueError(f"crop {crop} is larger than the stored image size {size}")
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _plan(self):
        """The whole epoch's random choices, drawn up front from (seed, epoch)."""
        n, size, c = len(self.indices), self.images.shape[1], self.crop
        if not self.train:
            off = (size - c) // 2
            order = self.indices
            offsets = np.full((n, 2), off)
            hf = vf = np.zeros(n, bool)
        else:
            rng = epoch_rng(self.seed, self.epoch)
            order = self.indices[rng.permutation(n)]
            offsets = rng.integers(0, size - c + 1, size=(n, 2))
            hf = rng.random(n) < 0.5 if self.hflip else np.zeros(n, bool)
            vf = rng.random(n) < 0.5 if self.vflip else np.zeros(n, bool)
        for b in range(len(self)):
            s = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield order[s], offsets[s], hf[s], vf[s]

    def _host_batches(self):
        for idx, off, hf, vf in self._plan():
            buf = np.empty((len(idx), self.crop, self.crop, 3), np.uint8)
            x = torch.from_numpy(_crop_batch(self.images, idx, self.crop, off, vf, buf, hf))
            y = torch.from_numpy(self.labels[idx])
            if self.pin:
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y, idx

    def host_batches(self):
        """The host side alone (uint8 NHWC crops, flipped, labels, positions), without the device step: what
        the benchmark times as 'the loader alone'. Same batches, in the same order, as iterating the loader."""
        return self._host_batches()

    def __iter__(self):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def worker():
            try:
                for item in self._host_batches():
                    if stop.is_set():
                        return
                    q.put(item)
                q.put(done)
            except BaseException as e:  # surfaced in the consumer
                q.put(e)

        batch_augment = self.augment(self.epoch) if self.augment is not None else None
        t = threading.Thread(target=worker, daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                x, y, idx = item
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                if batch_augment is not None:
                    x = batch_augment(x)
                yield Batch(self.normalize(x), y, idx)
        finally:
            stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(timeout=0.01)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Mixup (Zhang et al. 2018) on a whole batch: returns mixed x, (y, y[perm]), lam."""
    lam = float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0
    perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
    return x.mul(lam).add_(x[perm], alpha=1 - lam), (y, y[perm]), lam
