"""The machine a run ran on: what besides its config can change float results, recorded in config.json.

Same seed, same code, same library versions and thread count still give other floats on another CPU type:
the kernels torch and oneDNN choose depend on the instruction set (AVX2, AVX-512, ...) and the CPU, and the
thread count splits reductions differently. So byte-identical reproduction is checked only between runs of
one host class (`host_class`), at the recorded thread count. The class holds what picks the kernels (torch's
CPU capability level, the CPU model, library versions), not a hash of every /proc/cpuinfo flag: virtual
machines of one CPU model differ in flags that no kernel choice reads, and such hosts reproduce each other's
runs. A class that matches too much shows as a failed comparison, never as a silent pass.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata

import numpy as np
import torch
import torchvision

from wbcbench import __version__


def _cpu() -> tuple[str | None, str | None]:
    """(CPU model name, short hash of its feature flags) from /proc/cpuinfo; (processor(), None) elsewhere.
    The flags are recorded, not compared (host_class)."""
    try:
        info = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return platform.processor() or None, None
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info if ":" in line)}
    flags = " ".join(sorted(field.get("flags", "").split()))
    return field.get("model name"), hashlib.sha256(flags.encode()).hexdigest()[:12] if flags else None


def environment() -> dict:
    """Library versions, platform, CPU type and thread count of this process. Recorded, never hashed: a
    run's name comes from its training settings alone (rundir.config_hash)."""
    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                "torchvision": torchvision.__version__, "wbcbench": __version__}
    for dist in ("timm", "pandas", "pillow", "scipy", "kornia", "torchstain"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu, flags = _cpu()
    return {"versions": versions, "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu": cpu, "cpu_flags": flags,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def host_class(env: dict) -> tuple:
    """What must be equal, besides the thread count (reproduce.reproduce sets the recorded one), for two CPU
    runs of one config to be byte-identical: library versions and CPU type (model, torch's kernel level).
    Records from before the CPU was recorded give None fields, which match nothing."""
    v = env.get("versions") or {}
    return (v.get("torch"), v.get("torchvision"), v.get("timm"), v.get("numpy"), env.get("cpu"),
            env.get("cpu_capability"))


def same_host_class(recorded: dict) -> bool:
    key = host_class(recorded)
    return None not in key and key == host_class(environment())
