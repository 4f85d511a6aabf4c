"""Tests for sam2_core.model.weights against a real HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sam2_core.model import weights
from sam2_core.model.weights import OfficialWeights, WeightsError

# A few hundred KB of non-repeating bytes, so a misplaced resume offset changes the sum.
DATA = random.Random(0).randbytes(300_000)
DATA_SHA = hashlib.sha256(DATA).hexdigest()


class FileServer:
    """Serves `files` with HTTP Range support; records every request; can hang up early."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_first_after: int | None = None  # bytes to send before hanging up, first request only
        self.delay_s = 0.0  # before each body: a slow connection
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                time.sleep(server.delay_s)
                cut, server.cut_first_after = server.cut_first_after, None
                if cut is not None:
                    # Promise the whole body, deliver part of it, then drop the connection.
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown (once per test) from costing half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("SAM2ROTO_WEIGHTS_BASE_URL", raising=False)
    # A developer's proxy settings must not route requests for 127.0.0.1 elsewhere.
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def server():
    srv = FileServer()
    srv.files["/files/model.pt"] = DATA
    yield srv
    srv.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/model.pt"


# --- weights_dir ------------------------------------------------------------------------------


def test_weights_dir_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_DIR", str(tmp_path / "mine"))
    assert weights.weights_dir() == tmp_path / "mine"


def test_weights_dir_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SAM2ROTO_WEIGHTS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.weights_dir() == tmp_path / "xdg" / "sam2roto" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.weights_dir() == tmp_path / "home" / ".cache" / "sam2roto" / "weights"


# --- the pinned table -------------------------------------------------------------------------


# Copied from the published table, independently of the module, to catch typos in either.
PINNED = {
    "sam2_hiera_tiny": (155906050, "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125"),
    "sam2_hiera_small": (184309650, "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3"),
    "sam2_hiera_base_plus": (323493298, "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071"),
    "sam2_hiera_large": (897952466, "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b"),
    "sam2.1_hiera_tiny": (156008466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
    "sam2.1_hiera_small": (184416285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
    "sam2.1_hiera_base_plus": (323606802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
    "sam2.1_hiera_large": (898083611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
}


def test_official_table():
    table = weights.OFFICIAL_WEIGHTS
    assert set(table) == set(PINNED)
    for name, (size, sha) in PINNED.items():
        w = table[name]
        folder = "092824" if name.startswith("sam2.1_") else "072824"
        assert (w.name, w.filename, w.size, w.sha256) == (name, name + ".pt", size, sha)
        assert w.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{folder}/{name}.pt"
    with pytest.raises(AttributeError):
        table["sam2_hiera_tiny"].size = 1  # frozen


def test_sha256_of(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    assert weights.sha256_of(path) == DATA_SHA


# --- download ---------------------------------------------------------------------------------


def test_download_http(server, tmp_path):
    dest = tmp_path / "sub" / "model.pt"
    out = weights.download(
        server.url + "/files/model.pt", dest, sha256=DATA_SHA, size=len(DATA), progress=False
    )
    assert out == dest
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "sub" / "model.pt.part").exists()
    assert server.requests == [("/files/model.pt", None)]


def test_download_progress_bar(server, tmp_path, capsys):
    weights.download(server.url + "/files/model.pt", tmp_path / "m.pt", sha256=DATA_SHA, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\r") and err.endswith("\n")
    last = err.rstrip().split("\r")[-1]
    assert "100%" in last and "MiB/s" in last and "/0.3 MiB" in last


def test_download_resumes_after_dropped_connection(server, tmp_path):
    cut = 100_000
    server.cut_first_after = cut
    dest = tmp_path / "model.pt"
    part = tmp_path / "model.pt.part"
    url = server.url + "/files/model.pt"
    with pytest.raises(WeightsError) as info:
        weights.download(url, dest, sha256=DATA_SHA, size=len(DATA), progress=False)
    message = str(info.value)
    assert url in message and str(part) in message and "resumed next time" in message
    assert part.read_bytes() == DATA[:cut]
    assert not dest.exists()

    weights.download(url, dest, sha256=DATA_SHA, size=len(DATA), progress=False)
    assert dest.read_bytes() == DATA
    assert not part.exists()
    assert server.requests == [("/files/model.pt", None), ("/files/model.pt", f"bytes={cut}-")]


class Stop(Exception):
    pass


def test_download_tells_its_progress_and_can_be_stopped_and_resumed(server, tmp_path, capsys):
    url, dest, part = server.url + "/files/model.pt", tmp_path / "model.pt", tmp_path / "model.pt.part"
    told = []

    def stop_past_100k(name, done, total):
        told.append((name, done, total))
        if done > 100_000:
            raise Stop

    with pytest.raises(Stop):
        weights.download(url, dest, sha256=DATA_SHA, size=len(DATA), progress=False, on_progress=stop_past_100k)
    assert told[0] == ("model.pt", 0, len(DATA))  # before any data arrives
    stopped_at = told[-1][1]
    assert [t[1] for t in told] == sorted(t[1] for t in told) and 100_000 < stopped_at < len(DATA)
    assert part.read_bytes() == DATA[:stopped_at] and not dest.exists()  # what arrived is kept

    told.clear()
    weights.download(url, dest, sha256=DATA_SHA, size=len(DATA), progress=False,
                     on_progress=lambda *a: told.append(a))
    assert dest.read_bytes() == DATA
    assert server.requests[-1] == ("/files/model.pt", f"bytes={stopped_at}-")
    assert told[0] == ("model.pt", stopped_at, len(DATA)) and told[-1] == ("model.pt", len(DATA), len(DATA))
    assert capsys.readouterr().err == ""  # (no bar asked for)


def test_download_complete_part_gets_416_and_is_verified(server, tmp_path):
    (tmp_path / "model.pt.part").write_bytes(DATA)
    # No size given, so the request goes out and the server answers 416.
    weights.download(server.url + "/files/model.pt", tmp_path / "model.pt", sha256=DATA_SHA, progress=False)
    assert (tmp_path / "model.pt").read_bytes() == DATA
    assert server.requests == [("/files/model.pt", f"bytes={len(DATA)}-")]


def test_download_file_url(tmp_path):
    src = tmp_path / "src" / "model.pt"
    src.parent.mkdir()
    src.write_bytes(DATA)
    dest = tmp_path / "out" / "model.pt"
    # A stale part must not be glued onto the full file: file:// ignores Range, so start over.
    dest.parent.mkdir()
    (tmp_path / "out" / "model.pt.part").write_bytes(b"x" * 1000)
    weights.download(src.as_uri(), dest, sha256=DATA_SHA, size=len(DATA), progress=False)
    assert dest.read_bytes() == DATA


def test_download_checksum_mismatch(server, tmp_path):
    dest = tmp_path / "model.pt"
    wrong = "0" * 64
    with pytest.raises(WeightsError) as info:
        weights.download(server.url + "/files/model.pt", dest, sha256=wrong, size=len(DATA), progress=False)
    message = str(info.value)
    assert wrong in message and DATA_SHA in message and "nothing was loaded" in message
    assert server.url + "/files/model.pt" in message
    assert not dest.exists()
    assert not (tmp_path / "model.pt.part").exists()


def test_download_size_mismatch(server, tmp_path):
    with pytest.raises(WeightsError, match="bytes"):
        weights.download(
            server.url + "/files/model.pt",
            tmp_path / "m.pt",
            sha256=DATA_SHA,
            size=len(DATA) + 1,
            progress=False,
        )
    assert not (tmp_path / "m.pt.part").exists()


def test_download_offline(tmp_path):
    url = closed_port_url()
    dest = tmp_path / "model.pt"
    with pytest.raises(WeightsError) as info:
        weights.download(url, dest, sha256=DATA_SHA, progress=False)
    message = str(info.value)
    assert url in message and str(dest) in message and "by hand" in message
    assert not dest.exists()


def test_download_http_404(server, tmp_path):
    with pytest.raises(WeightsError, match="404"):
        weights.download(server.url + "/nope.pt", tmp_path / "m.pt", sha256=DATA_SHA, progress=False)


# --- official_checkpoint ----------------------------------------------------------------------


@pytest.fixture
def fake_model(server, monkeypatch):
    server.files["/segment_anything_2/072824/fake_model.pt"] = DATA
    entry = OfficialWeights(
        "fake_model",
        "fake_model.pt",
        server.url + "/segment_anything_2/072824/fake_model.pt",
        len(DATA),
        DATA_SHA,
    )
    monkeypatch.setitem(weights.OFFICIAL_WEIGHTS, "fake_model", entry)
    return entry


@pytest.fixture
def hash_calls(monkeypatch):
    calls = []
    real = weights.sha256_of

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(weights, "sha256_of", counting)
    return calls


def test_official_checkpoint_downloads_once_and_caches_verification(server, fake_model, hash_calls, tmp_path):
    path = weights.official_checkpoint("fake_model", progress=False)
    assert path == tmp_path / "weights" / "fake_model.pt"
    assert path.read_bytes() == DATA
    assert (tmp_path / "weights" / "fake_model.pt.verified").exists()
    assert len(server.requests) == 1 and len(hash_calls) == 1

    # Second start: no network, no re-hash.
    assert weights.official_checkpoint("fake_model", progress=False) == path
    assert len(server.requests) == 1 and len(hash_calls) == 1

    # A touched file is no longer vouched for by the sidecar: hashed again, then cached again.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert weights.official_checkpoint("fake_model", progress=False) == path
    assert len(hash_calls) == 2
    weights.official_checkpoint("fake_model", progress=False)
    assert len(hash_calls) == 2 and len(server.requests) == 1


def test_two_processes_fetching_the_same_weights_download_them_once(server, fake_model, tmp_path):
    """The service beside a command line, or two workstations on a shared weights folder: the
    second waits for the first's download instead of writing into the same partial file."""
    server.delay_s = 1.0
    results = []

    def fetch():
        try:
            results.append(weights.official_checkpoint("fake_model", progress=False))
        except Exception as e:  # noqa: BLE001 - reported below
            results.append(e)

    first, second = threading.Thread(target=fetch), threading.Thread(target=fetch)
    first.start()
    time.sleep(0.3)  # (the first is downloading)
    second.start()
    first.join(30)
    second.join(30)
    path = tmp_path / "weights" / "fake_model.pt"
    assert results == [path, path] and path.read_bytes() == DATA and len(server.requests) == 1
    assert not (tmp_path / "weights" / "fake_model.pt.part").exists()


def test_verify_hashes_again_even_a_file_verified_before(server, fake_model, tmp_path, capsys):
    from sam2roto.cli import main

    path = weights.official_checkpoint("fake_model", progress=False)
    st = path.stat()
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF  # (bit rot, or a copy that kept the file's time)
    path.write_bytes(bytes(damaged))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.official_checkpoint("fake_model", progress=False) == path  # (a start trusts the record)
    assert main(["weights", "verify", "fake_model"]) == 1
    assert "does not match the official SHA-256" in capsys.readouterr().err
    assert (tmp_path / "weights" / "fake_model.pt.bad").exists()


def test_official_checkpoint_present_file_verified_without_download(server, fake_model, hash_calls, tmp_path):
    path = tmp_path / "weights" / "fake_model.pt"
    path.parent.mkdir()
    path.write_bytes(DATA)  # placed by hand, no sidecar yet
    assert weights.official_checkpoint("fake_model", download_missing=False) == path
    assert len(hash_calls) == 1 and server.requests == []


def test_official_checkpoint_corrupted_file_moved_aside(server, fake_model, tmp_path):
    path = weights.official_checkpoint("fake_model", progress=False)
    corrupted = bytes([DATA[0] ^ 0xFF]) + DATA[1:]  # same size, so only the sum catches it
    path.write_bytes(corrupted)
    with pytest.raises(WeightsError) as info:
        weights.official_checkpoint("fake_model", progress=False)
    message = str(info.value)
    bad = tmp_path / "weights" / "fake_model.pt.bad"
    assert str(path) in message and str(bad) in message
    assert DATA_SHA in message and hashlib.sha256(corrupted).hexdigest() in message
    assert not path.exists()
    assert bad.read_bytes() == corrupted
    assert len(server.requests) == 1  # not re-downloaded behind the user's back

    # Following the advice (delete and run again) downloads a good copy.
    bad.unlink()
    assert weights.official_checkpoint("fake_model", progress=False).read_bytes() == DATA


def test_official_checkpoint_wrong_size_moved_aside(fake_model, tmp_path):
    path = tmp_path / "weights" / "fake_model.pt"
    path.parent.mkdir()
    path.write_bytes(DATA[:1000])
    with pytest.raises(WeightsError, match="1000 bytes"):
        weights.official_checkpoint("fake_model", progress=False)
    assert (tmp_path / "weights" / "fake_model.pt.bad").exists() and not path.exists()


def test_official_checkpoint_missing_without_download(server, fake_model, tmp_path):
    with pytest.raises(WeightsError) as info:
        weights.official_checkpoint("fake_model", download_missing=False)
    message = str(info.value)
    assert str(tmp_path / "weights" / "fake_model.pt") in message and fake_model.url in message
    assert server.requests == []


def test_official_checkpoint_unknown_name():
    with pytest.raises(WeightsError) as info:
        weights.official_checkpoint("sam2_hiera_larg")
    message = str(info.value)
    assert "Did you mean sam2_hiera_large" in message
    for name in weights.OFFICIAL_WEIGHTS:
        assert name in message


def test_official_checkpoint_base_url_mirror(server, fake_model, monkeypatch, tmp_path):
    server.files["/mirror/fake_model.pt"] = DATA
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_BASE_URL", server.url + "/mirror/")
    path = weights.official_checkpoint("fake_model", progress=False)
    assert path.read_bytes() == DATA
    assert server.requests == [("/mirror/fake_model.pt", None)]


def test_official_checkpoint_mirror_on_a_share(fake_model, monkeypatch, tmp_path):
    """A studio mirror that is a folder (a network share), named as a path, not a URL."""
    share = tmp_path / "studio share" / "weights"
    share.mkdir(parents=True)
    (share / "fake_model.pt").write_bytes(DATA)
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_BASE_URL", str(share))
    assert weights.official_checkpoint("fake_model", progress=False).read_bytes() == DATA


def test_official_checkpoint_offline_names_url_and_path(fake_model, monkeypatch, tmp_path):
    monkeypatch.setenv("SAM2ROTO_WEIGHTS_BASE_URL", closed_port_url().rsplit("/", 1)[0])
    with pytest.raises(WeightsError) as info:
        weights.official_checkpoint("fake_model", progress=False)
    message = str(info.value)
    assert "/fake_model.pt" in message and str(tmp_path / "weights" / "fake_model.pt") in message
