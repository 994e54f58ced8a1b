"""Small ImageFolders of real images for tests: symlinks into the data root, never copies into the repo."""
from __future__ import annotations

from pathlib import Path


def real_files(data_root: Path, name: str, cls: str, k: int) -> list[Path]:
    """The first k image files of class `cls` in bundled dataset `name`."""
    files = sorted(p for p in (data_root / name / cls).iterdir() if p.name != "manifest.csv")
    assert len(files) >= k, f"{name}/{cls} has fewer than {k} files"
    return files[:k]


def image_folder(root: Path, layout: dict[str, list[Path]]) -> Path:
    """root/<class>/<file> symlinks for each class -> files."""
    for cls, files in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / cls / f.name).symlink_to(f)
    return root
