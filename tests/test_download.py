"""`wbcbench data download` against a loopback HTTP server that serves archives in each source's own layout,
built here from real images of the data bundle, and `import_raabin` on Raabin-shaped folders and zips.

To stay quick the server's archives hold a few files per class, and the md5 manifests and registry counts used
are restricted to that subset (`manifest_dir=`, monkeypatched counts); the shipped manifests are checked in
full against the bundle by `test_shipped_manifests_match_the_bundle_and_registry`."""
from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from werkzeug import Request, Response

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.data import datasets as D
from wbcbench.data import download as DL
from wbcbench.data.mirror import build_archives
from wbcbench.data.raabin import import_raabin
from wbcbench.data.sources import DATASETS
from wbcbench.data.verify import verify

IMAGE_FOLDERS = ("pbc", "lisc", "bccd", "jtsc", "cellavision")
SPLITS = ("train", "val", "test")
# a file upstream that the manifests do not list: extraction must ignore it
EXTRA = {"pbc": "PBC_dataset_normal_DIB/platelet/PLATELET_1.jpg", "wbcatt": "README.md",
         "lisc": "data2/mixt/1.png", "bccd": "labels.csv", "zheng": "Dataset 1/001.png"}


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def write_manifest(folder_dir: Path, name: str, entries) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["member", "path", "label", "md5"])
    w.writerows((e.member, e.path, e.label, e.md5) for e in entries)
    with gzip.open(folder_dir / f"{name}.csv.gz", "wt", newline="") as f:
        f.write(buf.getvalue())


def make_archives(rows: dict, read, compression=zipfile.ZIP_DEFLATED) -> dict[str, bytes]:
    """The sources' archives holding rows[folder] of every folder, plus one unlisted upstream file each.
    Also used by tests/test_colab.py with the full shipped manifests."""
    return build_archives(rows, read, compression, extra=EXTRA)


@pytest.fixture(scope="module")
def upstream(data_root, tmp_path_factory):
    """{fname: archive bytes} in each source's layout, the subset manifests' folder, and the subset counts."""
    tmp = tmp_path_factory.mktemp("upstream")
    split_of = {r["img_name"]: s for s in SPLITS
                for r in csv.DictReader(open(data_root / "splits" / f"pbc_wbcatt_{s}.csv"))}
    subset, files = {}, {}
    for folder in IMAGE_FOLDERS:
        taken, rows = Counter(), []
        for e in DL.load_manifest(folder):
            key = (e.label, split_of[Path(e.path).name]) if folder == "pbc" else e.label
            if taken[key] < (1 if folder == "pbc" else 2):  # pbc: one per class and split
                taken[key] += 1
                rows.append(e)
                files[(folder, e.member)] = (data_root / folder / e.path).read_bytes()
        subset[folder] = rows
    chosen = {Path(e.path).name for e in subset["pbc"]}
    split_rows = []
    for s, e in zip(SPLITS, DL.load_manifest("splits")):
        text = (data_root / "splits" / e.path).read_text()
        lines = text.splitlines(keepends=True)
        body = [ln for ln in lines[1:] if ln.split(",", 1)[0] in chosen]
        data = "".join(lines[:1] + body).encode()
        files[("splits", e.member)] = data
        split_rows.append(dataclasses.replace(e, md5=md5(data)))
    subset["splits"] = split_rows

    archives = make_archives(subset, lambda folder, e: files[(folder, e.member)])
    man = tmp / "manifests"
    man.mkdir()
    for folder, rows in subset.items():
        write_manifest(man, folder, rows)
    counts = {f: Counter(e.label for e in rows) for f, rows in subset.items()}
    for s in SPLITS:
        counts[f"pbc:{s}"] = Counter(e.label for e in subset["pbc"] if split_of[Path(e.path).name] == s)
    return {"archives": archives, "manifests": man, "subset": subset, "counts": counts}


@pytest.fixture
def subset_registry(upstream, monkeypatch):
    """The registry's expected counts, restricted to the served subset (verify compares against them)."""
    for name, c in upstream["counts"].items():
        if name in DATASETS:
            counts = {k: c.get(k, 0) for k in CLASSES}
            monkeypatch.setitem(DATASETS, name, dataclasses.replace(
                DATASETS[name], expected_counts=counts, expected_total=sum(counts.values())))


class Server:
    """Serves the archives with HTTP Range support; `drop_once` cuts the first response of a file halfway."""

    def __init__(self, httpserver, archives):
        self.httpserver, self.archives = httpserver, dict(archives)
        self.drop_once: set[str] = set()
        self.dropped: set[str] = set()
        self.status: dict[str, int] = {}  # file name -> HTTP status to answer with instead
        self.range_mode = "honour"  # or "ignore" (200, the whole file), or "wrong" (206, 7 bytes further on)
        httpserver.expect_request(re.compile("/.*")).respond_with_handler(self.handler)

    def handler(self, request: Request) -> Response:
        name = request.path.lstrip("/")
        if name in self.status:
            return Response("no", status=self.status[name])
        if name not in self.archives:
            return Response("not found", status=404)
        data = self.archives[name]
        start, status, headers = 0, 200, {}
        rng = request.headers.get("Range") if self.range_mode != "ignore" else None
        if rng:
            start = int(rng.split("=")[1].split("-")[0]) + (7 if self.range_mode == "wrong" else 0)
            status, headers = 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        if name in self.drop_once and name not in self.dropped:
            self.dropped.add(name)

            def cut():
                yield body[: len(body) // 2]
                raise ConnectionAbortedError("the test server drops the connection")
            return Response(cut(), status=status, headers=headers, content_type="application/zip")
        return Response(body, status=status, headers=headers, content_type="application/zip")

    def requests(self, name: str) -> list:
        return [req for req, _ in self.httpserver.log if req.path == "/" + name]


@pytest.fixture
def server(httpserver, upstream, subset_registry):
    return Server(httpserver, upstream["archives"])


def fetch(names, root, server, upstream, **kw):
    kw.setdefault("retries", 0)
    return DL.download(names, root, progress=False, base_url=server.httpserver.url_for("/"),
                       manifest_dir=upstream["manifests"], **kw)


def assert_nothing_built(root: Path) -> None:
    """After a failure: no dataset folder, no build folder, no complete-looking archive; only resume state."""
    if not root.exists():
        return
    assert sorted(p.name for p in root.iterdir()) in ([], [DL.CACHE]), sorted(root.iterdir())
    if (root / DL.CACHE).exists():
        left = sorted(p.name for p in (root / DL.CACHE).iterdir())
        assert all(n == ".lock" or n.endswith(".part") for n in left), left


def test_clean_download_verifies(tmp_path, server, upstream):
    root = tmp_path / "data"
    report = fetch("all", root, server, upstream)
    assert [r["folder"] for r in report] == ["pbc", "splits", "lisc", "bccd", "jtsc", "cellavision"]
    assert {r["status"] for r in report} == {"downloaded"}
    for name in ("pbc", "pbc:train", "pbc:val", "pbc:test", "lisc", "bccd", "jtsc", "cellavision"):
        rep = verify(name, root)
        assert rep["ok"], rep
        assert rep["checked_md5"] == rep["n"] == sum(upstream["counts"][name].values())
    for folder in ("pbc", "lisc", "bccd", "jtsc", "cellavision"):
        rows = list(csv.DictReader(open(root / folder / D.MANIFEST)))
        assert [(r["path"], r["label"], r["md5"]) for r in rows] == \
            [(e.path, e.label, e.md5) for e in upstream["subset"][folder]]  # same order: same manifest hash
        assert all(r["source"] for r in rows)
    assert not any(p.name.endswith(".zip") for p in (root / DL.CACHE).iterdir())  # archives removed
    assert not list(root.glob(f".*{DL.PARTIAL}*"))
    # the two Zheng datasets share one archive: fetched once; a second run fetches nothing
    assert len(server.requests(DL.ARCHIVES["zheng"].fname)) == 1
    n = len(server.httpserver.log)
    assert {r["status"] for r in fetch(["lisc", "pbc:train"], root, server, upstream)} == {"present"}
    assert len(server.httpserver.log) == n


def test_interrupted_download_resumes_with_range(tmp_path, server, upstream):
    root, name = tmp_path / "data", DL.ARCHIVES["lisc"].fname
    server.drop_once.add(name)
    with pytest.raises(WbcError, match="run the same command again to resume") as e:
        fetch("lisc", root, server, upstream)
    assert name in str(e.value)
    assert_nothing_built(root)
    part = root / DL.CACHE / f"{name}.part"
    kept = part.stat().st_size
    assert 0 < kept < len(server.archives[name])
    assert upstream["archives"][name].startswith(part.read_bytes())
    fetch("lisc", root, server, upstream)
    second = server.requests(name)[-1]
    assert second.headers["Range"] == f"bytes={kept}-"
    assert verify("lisc", root)["ok"]
    assert not part.exists()


def test_an_interrupted_build_leaves_no_dataset_and_keeps_the_archive(tmp_path, server, upstream, monkeypatch):
    root, calls, real = tmp_path / "data", [], DL.extract_member

    def extract(zf, info, dest):
        assert not (root / "lisc").exists()  # never visible while partial
        calls.append(dest)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C mid-extraction
        return real(zf, info, dest)
    monkeypatch.setattr(DL, "extract_member", extract)
    with pytest.raises(KeyboardInterrupt):
        fetch("lisc", root, server, upstream)
    assert sorted(p.name for p in root.iterdir()) == [DL.CACHE]
    assert (root / DL.CACHE / DL.ARCHIVES["lisc"].fname).is_file()  # complete: it is not fetched again
    monkeypatch.setattr(DL, "extract_member", real)
    n = len(server.httpserver.log)
    fetch("lisc", root, server, upstream)
    assert len(server.httpserver.log) == n and verify("lisc", root)["ok"]


@pytest.mark.parametrize("mode, ranges", [("honour", [False, True]), ("ignore", [False, True]),
                                          ("wrong", [False, True, False])])
def test_dropped_connection_is_retried_within_one_run(tmp_path, server, upstream, mode, ranges):
    """Resumed with a Range request; a server that ignores it (200) or answers another range restarts cleanly."""
    root, name = tmp_path / "data", DL.ARCHIVES["lisc"].fname  # large enough to keep a block when cut halfway
    server.drop_once.add(name)
    server.range_mode = mode
    fetch("lisc", root, server, upstream, retries=2)
    assert [r.headers.get("Range") is not None for r in server.requests(name)] == ranges
    assert verify("lisc", root)["ok"]


@pytest.mark.parametrize("status, attempts", [(404, 1), (500, 2)])
def test_http_error_names_the_url_and_builds_nothing(tmp_path, server, upstream, status, attempts):
    root, name = tmp_path / "data", DL.ARCHIVES["zheng"].fname
    server.status[name] = status
    with pytest.raises(WbcError, match=str(status)) as e:
        fetch("jtsc", root, server, upstream, retries=1)  # a 5xx is retried, a 4xx is not
    assert server.httpserver.url_for("/" + name) in str(e.value)
    assert len(server.requests(name)) == attempts
    assert_nothing_built(root)


def _flip_byte_inside(data: bytes, member_suffix: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
    head = data[info.header_offset: info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    pos = start + info.compress_size // 2
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


def test_flipped_byte_names_the_file(tmp_path, server, upstream):
    root, name = tmp_path / "data", DL.ARCHIVES["bccd"].fname
    victim = upstream["subset"]["bccd"][3].member
    server.archives[name] = _flip_byte_inside(server.archives[name], victim)
    with pytest.raises(WbcError, match="damaged") as e:
        fetch("bccd", root, server, upstream)
    assert victim in str(e.value)
    assert_nothing_built(root)


def test_truncated_archive_is_refused(tmp_path, server, upstream):
    root, name = tmp_path / "data", DL.ARCHIVES["pbc"].fname
    server.archives[name] = server.archives[name][: len(server.archives[name]) * 2 // 3]
    with pytest.raises(WbcError, match="damaged or incomplete") as e:
        fetch("pbc", root, server, upstream)
    assert name in str(e.value)
    assert_nothing_built(root)


def test_wrong_md5_names_the_file(tmp_path, server, upstream):
    root = tmp_path / "data"
    rows = list(upstream["subset"]["cellavision"])
    rows[1] = dataclasses.replace(rows[1], md5="0" * 32)
    man = tmp_path / "manifests"
    man.mkdir()
    write_manifest(man, "cellavision", rows)
    with pytest.raises(WbcError, match="md5 mismatch") as e:
        DL.download("cellavision", root, progress=False, base_url=server.httpserver.url_for("/"),
                    manifest_dir=man, retries=0)
    assert f"cellavision/{rows[1].path}" in str(e.value) and rows[1].member in str(e.value)
    assert_nothing_built(root)


def test_a_killed_build_is_cleaned_and_an_unfinished_folder_refused(tmp_path, server, upstream):
    root = tmp_path / "data"
    (root / f".jtsc{DL.PARTIAL}dead" / "Lymphocyte").mkdir(parents=True)  # a killed writer's build folder
    fetch("jtsc", root, server, upstream)
    assert sorted(p.name for p in root.iterdir()) == [DL.CACHE, "jtsc"]
    (root / "bccd" / "Basophil").mkdir(parents=True)  # not made by a download: no manifest
    n = len(server.httpserver.log)
    with pytest.raises(WbcError, match="not a finished download"):
        fetch("bccd", root, server, upstream)
    assert len(server.httpserver.log) == n


def test_names_are_checked_before_anything_happens(tmp_path):
    root = tmp_path / "data"
    assert DL.resolve(["pbc:test", "lisc,bccd", "pbc"]) == ["pbc", "splits", "lisc", "bccd"]
    assert DL.resolve("all") == ["pbc", "splits", "lisc", "bccd", "jtsc", "cellavision"]
    with pytest.raises(WbcError, match="import-raabin"):
        DL.download(["lisc", "raabin:train"], root)
    with pytest.raises(WbcError, match="did you mean 'bccd'"):
        DL.download("bccdd", root)
    with pytest.raises(WbcError, match="lisc-paper"):
        DL.download("lisc-paper", root)
    with pytest.raises(WbcError, match="name the datasets"):
        DL.download([], root)
    assert not root.exists()


def test_a_complete_read_only_bundle_needs_nothing(data_root, capsys):
    report = DL.download("all", data_root, progress=False, base_url="http://127.0.0.1:9/")
    assert {r["status"] for r in report} == {"present"}
    assert DL.main_download(["pbc", "jtsc"], data_root) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{f}: already present at {data_root / f} (check it with wbcbench data verify)"
        for f in ("pbc", "splits", "jtsc")]


def test_shipped_manifests_match_the_bundle_and_registry(data_root):
    """The shipped md5 manifests list exactly the bundle's files, in its order (so a downloaded dataset has the
    same manifest hash as the bundle and committed runs stay comparable), with the registry's class counts;
    PBC's members are the paths the WBCAtt split CSVs give for the original archive."""
    for folder in IMAGE_FOLDERS:
        shipped = DL.load_manifest(folder)
        bundle = list(csv.DictReader(open(data_root / folder / D.MANIFEST)))
        assert [(e.path, e.label, e.md5) for e in shipped] == [(r["path"], r["label"], r["md5"]) for r in bundle]
        assert dict(Counter(e.label for e in shipped)) == \
            {c: n for c, n in DATASETS[folder].expected_counts.items() if n}
        assert len({e.member for e in shipped}) == len(shipped)
    split_paths = {r["img_name"]: r["path"] for s in SPLITS
                   for r in csv.DictReader(open(data_root / "splits" / f"pbc_wbcatt_{s}.csv"))}
    assert {e.member for e in DL.load_manifest("pbc")} == set(split_paths.values())
    for e in DL.load_manifest("splits"):
        assert md5((data_root / "splits" / e.path).read_bytes()) == e.md5
    assert set(DL.FOLDERS.values()) == set(DL.ARCHIVES)
    assert {f for fs in DL.DOWNLOADS.values() for f in fs} == set(DL.FOLDERS)


# ---------------------------------------------------------------------------------------------------------
# Raabin-WBC import


RAABIN_LAYOUT = {"Train": {"Basophil": 2, "Lymphocyte": 3, "neutrophils": 2},  # any case, singular or plural
                 "TestA": {"Eosinophil": 1, "Monocyte": 2}, "TestB": {"Neutrophil": 2}}


def raabin_folder(top: Path, data_root: Path) -> Path:
    images = iter(sorted((data_root / "pbc" / "Neutrophil").iterdir()))
    for split, classes in RAABIN_LAYOUT.items():
        for cls, k in classes.items():
            (top / split / cls).mkdir(parents=True)
            for _ in range(k):
                src = next(images)
                (top / split / cls / src.name).write_bytes(src.read_bytes())
    return top


@pytest.fixture
def raabin_registry(monkeypatch):
    """Counts of the small Raabin-shaped folders in place of the published ones (TestB: total only)."""
    for split, name in (("Train", "raabin:train"), ("TestA", "raabin:testA"), ("TestB", "raabin:testB")):
        counts = {c: 0 for c in CLASSES}
        for cls, k in RAABIN_LAYOUT[split].items():
            counts[cls.rstrip("s").capitalize()] += k
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(
            DATASETS[name], expected_counts=None if split == "TestB" else counts,
            expected_total=sum(counts.values())))


def _zip_folder(folder: Path, dest: Path, extra: dict[str, bytes] = {}) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
        for name, data in extra.items():
            zf.writestr(name, data)
    return dest


@pytest.mark.parametrize("as_zip", [False, True])
def test_import_raabin(tmp_path, data_root, raabin_registry, as_zip):
    src = raabin_folder(tmp_path / "download" / "RaabinWBC", data_root)
    if as_zip:
        src = _zip_folder(src, tmp_path / "raabin.zip", {"__MACOSX/RaabinWBC/Train/._x.jpg": b"junk"})
    root = tmp_path / "data"
    report = import_raabin(src, root)
    assert [(r["dataset"], r["status"], r["files"]) for r in report] == \
        [("raabin:train", "imported", 7), ("raabin:testA", "imported", 3), ("raabin:testB", "imported", 2)]
    assert sorted(p.name for p in (root / "raabin" / "Train").iterdir()) == ["Basophil", "Lymphocyte", "Neutrophil"]
    for name in ("raabin:train", "raabin:testA", "raabin:testB"):
        assert verify(name, root)["ok"]
    assert not list(root.glob(f".*{DL.PARTIAL}*"))
    assert {r["status"] for r in import_raabin(src, root)} == {"present"}


def test_import_raabin_refuses_wrong_counts_whole(tmp_path, data_root, raabin_registry, monkeypatch):
    src = raabin_folder(tmp_path / "RaabinWBC", data_root)
    spec = DATASETS["raabin:testA"]
    monkeypatch.setitem(DATASETS, "raabin:testA", dataclasses.replace(
        spec, expected_counts=dict(spec.expected_counts, Monocyte=3), expected_total=4))
    root = tmp_path / "data"
    with pytest.raises(WbcError, match=r"TestA.*Monocyte 2 \(expected 3\)"):
        import_raabin(src, root)
    assert sorted(p.name for p in root.iterdir()) == [DL.CACHE]  # Train was fine, but nothing was imported


def test_import_raabin_names_bad_input(tmp_path, data_root, raabin_registry):
    root = tmp_path / "data"
    src = raabin_folder(tmp_path / "RaabinWBC", data_root)
    (src / "Train" / "Platelet").mkdir()
    with pytest.raises(WbcError, match="Platelet"):
        import_raabin(src, root)
    evil = _zip_folder(raabin_folder(tmp_path / "b" / "R", data_root), tmp_path / "evil.zip", {"../evil.jpg": b"x"})
    with pytest.raises(WbcError, match="unsafe path"):
        import_raabin(evil, root)
    with pytest.raises(WbcError, match="no Raabin-WBC split folder"):
        import_raabin(tmp_path / "b" / "R" / "Train" / "Basophil", root)
    with pytest.raises(WbcError, match="neither a zip archive nor a folder"):
        import_raabin(tmp_path / "missing.zip", root)
    assert not (root / "raabin").exists() and not list(root.glob(f".*{DL.PARTIAL}*"))
