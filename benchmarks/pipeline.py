"""Input-pipeline benchmark: is training as fast as the model itself?

    python benchmarks/pipeline.py                    # everything, writes results/benchmarks.csv
    python benchmarks/pipeline.py --sections train   # only the side-by-side training comparison

On the same model, resolution, batch size and data (pbc:train), in one process, side by side:
  1. limit     - the trainer's own epoch loop (wbcbench.engine.fit.fit) fed batches already on the device;
  2. wbcbench  - the same loop with the real BatchLoader (uint8 cache -> crops/flips -> device -> normalise);
  3. reference - the same loop fed by what the paper's code does: torchvision ImageFolder + PIL decode +
                 Resize/RandomCrop/flips/ToTensor/Normalize per image through a DataLoader with 2 workers.
All three run through the identical training step (forward, loss, backward, AdamW, schedule, the per-step
bookkeeping; AMP on CUDA), so the ratios measure the input pipeline and nothing else. The methods are
interleaved in rounds (limit, wbcbench, reference, limit, ...) so that a change in machine load hits all
three alike; each number is the median over rounds. The first batch of every run (optimiser state, worker
start-up, kernel selection) is excluded from the timing window; the window covers fetching and training
the remaining batches. Beside images/s, each method reports the share of the window the training loop spent
waiting for its next batch (a stall, plus the host-side work done in the loop's own thread): unlike the
ratio of two timings on a shared machine, it is measured within one run and is barely affected by load. And
each pipeline's CPU cost per image, measured alone on one thread (decode/resize/crop/flip/normalise; crop,
flips and, on a CPU, normalisation for wbcbench): on a machine whose cores the model already fills, that is
the time it takes from the model, to compare with the model's own milliseconds per image.

Also measured: the loader alone at 224 px (host side: cache read + crop + flips into uint8 batches, what
feeds a GPU; and on the CPU including normalisation to float), the time and disk size of the cache for all
of PBC, and the peak RSS of training subprocesses (one full epoch at the smoke profile's 40/32 px, so that
it stays short on a CPU) on 1,000 images and on all of pbc:train: the images are a read-only memory map, so
memory must not grow with the dataset beyond the mapped pages.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wbcbench import models
from wbcbench.core.atomic import write_csv
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import get_profile
from wbcbench.data import cache, datasets
from wbcbench.data.loader import Batch, BatchLoader
from wbcbench.engine import train
from wbcbench.engine.fit import CHECKPOINT, fit, training_loader

SECTIONS = ("cache", "loader", "train", "rss")
COLUMNS = ["section", "measurement", "model", "stored_px", "crop_px", "batch_size", "images", "images_per_s",
           "input_wait_pct", "input_cpu_ms_per_image", "value", "unit", "ratio", "target", "met", "device", "cores",
           "torch_threads", "torch", "load_avg_1min"]


# ----------------------------------------------------------------------------------------------- helpers
def machine(dev: torch.device) -> dict:
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {"device": name, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class Timed:
    """Passed to fit as its loader: yields `n` batches from `source()` and times the
    window from fetching batch `warm` to the end of the last training step."""

    def __init__(self, source, n: int, warm: int, dev):
        self.source, self.n, self.warm, self.dev = source, n, warm, dev
        self.seconds = None
        self.wait = 0.0  # of which the training loop waited for the next batch (stall + host-side work)

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        pass

    def __iter__(self):
        it = iter(self.source())
        t0 = time.perf_counter()
        try:
            for i in range(self.n):
                if i == self.warm:
                    sync(self.dev)
                    t0 = time.perf_counter()
                tw = time.perf_counter()
                b = next(it)
                if i >= self.warm:
                    self.wait += time.perf_counter() - tw
                yield b
            sync(self.dev)  # fit reads loss.item() every step, so this is already synchronised
            self.seconds = time.perf_counter() - t0
        finally:
            close = getattr(it, "close", None)
            if close:
                close()
            del it


def reference_loader(root: Path, rel_paths, stored: int, crop: int, batch_size: int, mean, std, dev,
                     hflip=True, vflip=True, workers: int = 2, seed: int = 0):
    """The paper's pipeline: ImageFolder over the dataset folder restricted to `rel_paths`, per-image PIL
    transforms, a DataLoader with worker processes. Resize(stored) resizes the shorter side, as the cache."""
    from torchvision import datasets as tvd
    from torchvision import transforms as T
    keep = {str((root / p).resolve()) for p in rel_paths}
    tf = [T.Resize(stored), T.RandomCrop(crop)]
    tf += [T.RandomHorizontalFlip()] if hflip else []
    tf += [T.RandomVerticalFlip()] if vflip else []
    tf += [T.ToTensor(), T.Normalize(mean, std)]
    folder = tvd.ImageFolder(str(root), transform=T.Compose(tf),
                             is_valid_file=lambda p: str(Path(p).resolve()) in keep)
    assert len(folder) == len(keep), (len(folder), len(keep))
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(folder, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True, pin_memory=dev.type == "cuda", generator=g)


def reference_batches(dl, dev):
    for x, y in dl:
        yield Batch(x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), None)


# ----------------------------------------------------------------------------------------------- sections
def bench_train(model_name: str, profile: str, dev, n_batches: int, rounds: int, warm: int = 1,
                batch_size: int | None = None, workers: int = 2) -> list[dict]:
    hp_over = dict(epochs=1, warmup_epochs=1, pretrained=False, batch_size=batch_size)
    config = train.build_config(model_name, profile, 0, "pbc:train", ("pbc:test",), (), hp_over, None)
    hp = config["hparams"]
    stored, crop, bs = hp["stored_size"], hp["crop_size"], hp["batch_size"]
    ds = datasets.get_dataset("pbc:train")
    images = cache.load_images(ds, stored, progress=True)
    n = warm + n_batches
    idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:n * bs])  # spread over the whole cache
    net = train.new_model(config, dev)
    mean, std = net.wbc_config["mean"], net.wbc_config["std"]

    # 1. the limit: the first min(n, 8) real batches materialised on the device, then cycled
    real = BatchLoader(images, ds.labels, idx, crop=crop, batch_size=bs, mean=mean, std=std, device=dev,
                       train=True, hflip=hp["hflip"], vflip=hp["vflip"], seed=0)
    held = []
    for b in real:
        held.append(b)
        if len(held) == min(n, 8):
            break

    def limit_source():
        return (held[i % len(held)] for i in range(n))

    ref_dl = reference_loader(ds.root, [ds.paths[i] for i in idx], stored, crop, bs, mean, std, dev,
                              hp["hflip"], hp["vflip"], workers=workers)

    def make(kind):
        if kind == "limit":
            return Timed(limit_source, n, warm, dev)
        if kind == "wbcbench":  # the loader fit itself builds, with the run's own settings
            real_loader = training_loader(images, ds.labels, hp, indices=idx, seed=0, device=dev, mean=mean, std=std)
            return Timed(lambda: real_loader, n, warm, dev)
        return Timed(lambda: reference_batches(ref_dl, dev), n, warm, dev)

    speeds = {k: [] for k in ("limit", "wbcbench", "reference")}
    waits = {k: [] for k in speeds}
    loads = []
    with tempfile.TemporaryDirectory(prefix="wbcbench-bench-") as tmp:
        for r in range(rounds):
            for kind in speeds:
                timed = make(kind)
                loads.append(load())
                fit(net, images, ds.labels, hp, indices=idx, seed=0, device=dev, run_dir=tmp, loader=timed)
                ips = n_batches * bs / timed.seconds
                speeds[kind].append(ips)
                waits[kind].append(timed.wait / timed.seconds)
                print(f"  round {r + 1}/{rounds} {kind:>9}: {ips:8.1f} img/s, waiting for input "
                      f"{100 * waits[kind][-1]:4.1f}% of the time  (load {load():.2f})", flush=True)
                (Path(tmp) / CHECKPOINT).unlink(missing_ok=True)
    # CPU cost of each input pipeline per image, measured alone on one thread (process CPU time, so it hardly
    # depends on the load): what it takes away from the model on a machine whose cores the model already fills
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe = BatchLoader(images, ds.labels, idx, crop=crop, batch_size=bs, mean=mean, std=std, device=dev,
                            train=True, hflip=hp["hflip"], vflip=hp["vflip"], seed=1)
        t, count = time.process_time(), 0
        for x, _, _ in probe.host_batches():
            if dev.type == "cpu":  # on a GPU the normalisation runs there, not on the host
                probe.normalize(x)
            count += len(x)
        cpu_ms = {"limit": 0.0, "wbcbench": 1e3 * (time.process_time() - t) / count}
        folder, m = ref_dl.dataset, min(len(ref_dl.dataset), 4 * bs, 256)
        t = time.process_time()
        for k in range(m):
            folder[k]
        cpu_ms["reference"] = 1e3 * (time.process_time() - t) / m
    finally:
        torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in speeds.items()}
    wait = {k: 100 * sum(v) / len(v) for k, v in waits.items()}
    target = 1.05 if crop >= 200 else 1.10
    common = dict(section="train", model=model_name, stored_px=stored, crop_px=crop, batch_size=bs,
                  images=n_batches * bs * rounds, load_avg_1min=round(float(np.mean(loads)), 2))
    r21 = med["limit"] / med["wbcbench"]   # epoch-time ratio wbcbench / limit
    r32 = med["wbcbench"] / med["reference"]  # epoch-time ratio reference / wbcbench
    return [
        dict(common, measurement="1 limit (tensors in memory)", images_per_s=med["limit"], ratio=1.0,
             input_wait_pct=wait["limit"], input_cpu_ms_per_image=0.0),
        dict(common, measurement="2 wbcbench trainer", images_per_s=med["wbcbench"], ratio=r21,
             unit="time 2/1", target=f"<= {target:.2f}", met=bool(r21 <= target), input_wait_pct=wait["wbcbench"],
             input_cpu_ms_per_image=cpu_ms["wbcbench"]),
        dict(common, measurement=f"3 reference (ImageFolder+PIL, {workers} workers)",
             images_per_s=med["reference"], ratio=r32, unit="time 3/2", input_wait_pct=wait["reference"],
             input_cpu_ms_per_image=cpu_ms["reference"]),
    ]


def bench_loader(dev, n_batches: int, rounds: int, profile: str = "paper") -> list[dict]:
    hp = get_profile(profile)
    stored, crop, bs = hp["stored_size"], hp["crop_size"], hp["batch_size"]
    ds = datasets.get_dataset("pbc:train")
    images = cache.load_images(ds, stored, progress=True)
    rows, common = [], dict(section="loader", model="-", stored_px=stored, crop_px=crop, batch_size=bs)
    kw = dict(crop=crop, batch_size=bs, mean=models.IMAGENET_MEAN, std=models.IMAGENET_STD, device=dev,
              train=True, hflip=True, vflip=True, seed=0)
    idx = np.random.default_rng(1).permutation(len(ds))[:n_batches * bs]
    for i in np.sort(idx):  # page the images in: measure the loader, not the disk (a warm page cache)
        images[i, ::16, ::16].sum()
    for name, fn, target in [
        ("loader alone, host: cache read + crop + flips -> uint8 batch", lambda ldr: ldr.host_batches(), 5000),
        (f"loader alone, full: + to {dev.type} + normalise (float, channels_last)", lambda ldr: iter(ldr), None),
    ]:
        speeds, loads = [], []
        for r in range(rounds):
            ldr = BatchLoader(images, ds.labels, idx, **kw)
            ldr.set_epoch(r)
            loads.append(load())
            t0 = time.perf_counter()
            count = 0
            for b in fn(ldr):
                count += len(b[0] if isinstance(b, tuple) else b.x)
            sync(dev)
            speeds.append(count / (time.perf_counter() - t0))
        ips = statistics.median(speeds)
        print(f"  {name}: {ips:,.0f} img/s", flush=True)
        rows.append(dict(common, measurement=name, images=count * rounds, images_per_s=ips,
                         target=f">= {target}" if target else None, met=bool(ips >= target) if target else None,
                         load_avg_1min=round(float(np.mean(loads)), 2)))
    return rows


def bench_cache(sizes) -> list[dict]:
    rows = []
    ds = datasets.get_dataset("pbc")
    for size in sizes:
        tmp = tempfile.mkdtemp(prefix="wbcbench-cache-bench-", dir=str(cache.cache_dir().parent))
        old = os.environ.get("WBCBENCH_CACHE")
        os.environ["WBCBENCH_CACHE"] = tmp
        try:
            l0 = load()
            t0 = time.perf_counter()
            arr = cache.load_images(ds, size)
            secs = time.perf_counter() - t0
            nbytes = cache.cache_path(ds, size).stat().st_size
            del arr
        finally:
            if old is None:
                os.environ.pop("WBCBENCH_CACHE", None)
            else:
                os.environ["WBCBENCH_CACHE"] = old
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"  cache build, all of PBC ({len(ds)} images) at {size}px: {secs:.1f}s, "
              f"{nbytes / 2**20:.0f} MiB on disk", flush=True)
        common = dict(section="cache", model="-", stored_px=size, images=len(ds), load_avg_1min=(l0 + load()) / 2)
        rows.append(dict(common, measurement="cache build time, all of PBC", images_per_s=len(ds) / secs,
                         value=secs, unit="s"))
        rows.append(dict(common, measurement="cache size on disk, all of PBC", value=nbytes / 2**20, unit="MiB"))
    return rows


RSS_CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
import numpy as np, torch
from wbcbench.data import cache
from wbcbench.data import datasets
from wbcbench import models
from wbcbench.engine import train
from wbcbench.engine.fit import fit
n, profile, device = int(sys.argv[1]), sys.argv[2], sys.argv[3]
config = train.build_config("resnet18_bn", profile, 0, "pbc:train", ("pbc:test",), (),
                            dict(epochs=1, pretrained=False), None)
hp = config["hparams"]
ds = datasets.get_dataset("pbc:train")
images = cache.load_images(ds, hp["stored_size"])
idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
dev = train.resolve_device(device)
net = train.new_model(config, dev)
with tempfile.TemporaryDirectory() as tmp:
    fit(net, images, ds.labels, hp, indices=idx, seed=0, device=dev, run_dir=tmp)
st = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines() if ":" in l)
kb = lambda k: int(st[k].split()[0]) if k in st else None
print(json.dumps(dict(maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_anon_kb=kb("RssAnon"),
                      rss_file_kb=kb("RssFile"), mapped_bytes=int(len(idx) * images[0].nbytes),
                      stored=hp["stored_size"], crop=hp["crop_size"], batch=hp["batch_size"])))
"""


def bench_rss(sizes, profile: str, device: str) -> list[dict]:
    rows = []
    for n in sizes:
        l0 = load()
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(n), profile, device], capture_output=True,
                             text=True, cwd=REPO_ROOT)
        if out.returncode != 0:
            raise SystemExit(f"RSS child failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  peak RSS, one epoch of resnet18_bn ({profile}) on {n} images: {r['maxrss_kb'] / 1024:.0f} MiB "
              f"(at the end: anonymous {r['rss_anon_kb'] / 1024:.0f} MiB, file-backed incl. the memory map "
              f"{r['rss_file_kb'] / 1024:.0f} MiB; images mapped {r['mapped_bytes'] / 2**20:.0f} MiB; "
              f"{time.perf_counter() - t0:.0f}s)", flush=True)
        common = dict(section="rss", model="resnet18_bn", stored_px=r["stored"], crop_px=r["crop"],
                      batch_size=r["batch"], images=n, load_avg_1min=(l0 + load()) / 2)
        rows += [dict(common, measurement=f"peak RSS, one epoch on {n} images", value=r["maxrss_kb"] / 1024,
                      unit="MiB"),
                 dict(common, measurement=f"RSS anonymous at end, {n} images", value=r["rss_anon_kb"] / 1024,
                      unit="MiB"),
                 dict(common, measurement=f"cache bytes those {n} images occupy", value=r["mapped_bytes"] / 2**20,
                      unit="MiB")]
    return rows


# ----------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda, ...")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison (median reported)")
    ap.add_argument("--batches-small", type=int, default=None,
                    help="timed batches per run for resnet18 at the cpu profile (default 6 on CPU, 100 on GPU)")
    ap.add_argument("--batches-224", type=int, default=None,
                    help="timed batches per run for resnet50 at 224 px (default 2 on CPU, 30 on GPU)")
    ap.add_argument("--batch-size-224", type=int, default=None,
                    help="default: the paper profile's (128) on a GPU, 8 on a CPU (a step of 128 takes minutes)")
    ap.add_argument("--loader-batches", type=int, default=20, help="batches of 128 per loader-alone round")
    ap.add_argument("--cache-sizes", default=None,
                    help="stored sizes to time the PBC cache build at (default: the cpu profile's)")
    ap.add_argument("--rss-sizes", default="1000,6169", help="training-set sizes of the RSS subprocesses")
    ap.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks.csv"))
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r}; choose from {SECTIONS}")
    dev = train.resolve_device(args.device)
    gpu = dev.type == "cuda"
    cpu_hp = get_profile("cpu")
    info = machine(dev)
    print(f"wbcbench pipeline benchmark: device {info['device']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_threads']} intra-op threads), AMP {'on' if gpu else 'off (CPU)'}; "
          f"cpu profile: stored {cpu_hp['stored_size']} / crop {cpu_hp['crop_size']}; load {os.getloadavg()}",
          flush=True)
    rows = []
    if "cache" in sections:
        print("cache", flush=True)
        sizes = [int(s) for s in args.cache_sizes.split(",")] if args.cache_sizes else [cpu_hp["stored_size"]]
        rows += bench_cache(sizes)
    if "loader" in sections:
        print("loader alone (pbc:train, stored 256, crop 224, batch 128)", flush=True)
        rows += bench_loader(dev, args.loader_batches, args.rounds)
    if "train" in sections:
        for model, profile, nb, bs in [
                ("resnet18_bn", "cpu", args.batches_small or (100 if gpu else 6), None),
                ("resnet50", "paper", args.batches_224 or (30 if gpu else 2),
                 args.batch_size_224 or (None if gpu else 8))]:
            hp = get_profile(profile, batch_size=bs)
            print(f"train {model} at {hp['crop_size']}px (stored {hp['stored_size']}), batch {hp['batch_size']}, "
                  f"{nb} timed batches x {args.rounds} rounds per method", flush=True)
            got = bench_train(model, profile, dev, nb, args.rounds, batch_size=bs)
            for g in got:
                extra = f"  ratio {g['unit']} = {g['ratio']:.3f}" if g.get("unit") else ""
                extra += f" (target {g['target']}: {'met' if g['met'] else 'NOT met'})" if g.get("target") else ""
                print(f"  {g['measurement']:<42} {g['images_per_s']:9.1f} img/s "
                      f"({1e3 / g['images_per_s']:6.1f} ms/img), "
                      f"waiting for input {g['input_wait_pct']:4.1f}%, input CPU {g['input_cpu_ms_per_image']:5.2f} "
                      f"ms/img{extra}", flush=True)
            rows += got
    if "rss" in sections:
        print("peak memory of training subprocesses (resnet18_bn, smoke profile, one epoch)", flush=True)
        rows += bench_rss([int(s) for s in args.rss_sizes.split(",")], "smoke", str(dev))

    new = pd.DataFrame([dict(info, **r) for r in rows]).reindex(columns=COLUMNS)
    out = Path(args.out)
    if out.is_file():  # keep the sections not re-measured this time
        old = pd.read_csv(out)
        new = pd.concat([old[~old.section.isin(sections)].reindex(columns=COLUMNS), new], ignore_index=True)
    order = {s: i for i, s in enumerate(SECTIONS)}
    new = new.sort_values("section", key=lambda s: s.map(order), kind="stable")
    for c in ("images_per_s", "input_wait_pct", "input_cpu_ms_per_image", "value", "ratio", "load_avg_1min"):
        new[c] = pd.to_numeric(new[c]).round(3)
    write_csv(out, new)
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
