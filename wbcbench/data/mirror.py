"""A mirror of the public sources' archives, built from a local copy of the data: each archive in its source's
own layout, so that `wbcbench data download` with WBCBENCH_DOWNLOAD_BASE pointing at a server of these files
behaves exactly as against the sources (a lab without internet, the loopback tests, benchmarks/fresh_folder.py)."""
from __future__ import annotations

import io
import zipfile

from wbcbench.data import download


def build_archives(rows: dict, read, compression=zipfile.ZIP_DEFLATED, extra: dict | None = None) -> dict[str, bytes]:
    """{archive file name: zip bytes} holding rows[folder] (manifest entries) of every folder of each archive,
    under GitHub's top folder where the source has one; read(folder, entry) gives a file's bytes. `extra`:
    {archive key: member} of one more file per archive that no manifest lists (what upstream also ships)."""
    archives = {}
    for key, archive in download.ARCHIVES.items():
        buf = io.BytesIO()
        top = f"{archive.fname[:-4]}-full-sha/" if archive.strip_top else ""
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for folder in (f for f, k in download.FOLDERS.items() if k == key):
                for e in rows[folder]:
                    zf.writestr(top + e.member, read(folder, e))
            if extra and key in extra:
                zf.writestr(top + extra[key], b"not listed in any manifest")
        archives[archive.fname] = buf.getvalue()
    return archives
