"""TensorStore: atomic, checked entries; bounded RAM; a disk budget that keeps pinned keys."""

import errno
import gc
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch

from sam2_core.cache.store import CacheError, TensorStore, encode_entry, flush_all


def entry(i: int, n: int = 1000) -> dict:
    return {"x": torch.full((n,), float(i)), "i": torch.tensor([i])}


def test_round_trip_and_reopen(tmp_path):
    store = TensorStore(tmp_path / "s")
    store.put("a", entry(1))
    assert torch.equal(store.get("a")["x"], entry(1)["x"])
    again = TensorStore(tmp_path / "s")  # another process would see the same
    assert "a" in again and torch.equal(again.get("a")["x"], entry(1)["x"])
    assert again.get("missing") is None


def test_ram_window_is_bounded(tmp_path):
    store = TensorStore(tmp_path / "s", ram_budget=10_000)
    for i in range(20):
        store.put(f"k{i}", entry(i))  # 4 KB each
    assert store._ram_bytes <= 10_000 and len(store._ram) <= 2
    assert all(torch.equal(store.get(f"k{i}")["x"], entry(i)["x"]) for i in range(20))  # from disk


def test_disk_budget_evicts_least_recent_but_never_pinned(tmp_path):
    probe = TensorStore(tmp_path / "probe")
    probe.put("x", entry(0))
    size = probe.path("x").stat().st_size  # every entry here has this size
    store = TensorStore(tmp_path / "s", ram_budget=0, disk_budget=3 * size)
    store.put("pinned", entry(0))
    store.pin("pinned")
    for i in range(1, 6):
        store.put(f"k{i}", entry(i))
    assert store.disk_bytes <= 3 * size
    assert "pinned" in store and "k5" in store and "k4" in store
    assert "k1" not in store and not store.path("k1").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_entry_reads_as_missing_and_is_removed(tmp_path, damage, caplog):
    store = TensorStore(tmp_path / "s", ram_budget=0)
    store.put("a", entry(7))
    path = store.path("a")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = b""
    path.write_bytes(bytes(data))
    fresh = TensorStore(tmp_path / "s")
    assert fresh.get("a") is None
    assert not path.exists() and "damaged" in caplog.text


def test_kill_during_write_leaves_no_damaged_entry(tmp_path):
    """A process killed (SIGKILL) in the middle of writing an entry: what reads back is
    either a whole earlier entry or nothing."""
    folder = tmp_path / "s"
    child = textwrap.dedent(f"""
        import os, sys, time, torch
        from sam2_core.cache import store as st
        s = st.TensorStore({str(folder)!r})
        real_fsync = os.fsync
        def slow_fsync(fd):
            if s._disk:  # the first entry is whole; stall inside the second write
                print("writing", flush=True)
                time.sleep(60)
            real_fsync(fd)
        st.os.fsync = slow_fsync
        s.put("first", {{"x": torch.arange(500_000.0)}})
        s.put("second", {{"x": torch.arange(500_000.0) * 2}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    store = TensorStore(folder)
    assert torch.equal(store.get("first")["x"], torch.arange(500_000.0))
    assert store.get("second") is None
    store.put("second", {"x": torch.arange(3.0)})  # and the store goes on working
    assert torch.equal(TensorStore(folder).get("second")["x"], torch.arange(3.0))


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_full_or_read_only_disk_is_a_clear_error_and_keeps_what_was_there(tmp_path, monkeypatch, code, words):
    store = TensorStore(tmp_path / "s")
    store.put("kept", entry(1))

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("sam2_core.cache.store.os.fsync", failing_fsync)
    with pytest.raises(CacheError, match=words) as info:
        store.put("new", entry(2))
    assert str(tmp_path / "s") in str(info.value)
    assert torch.equal(TensorStore(tmp_path / "s").get("kept")["x"], entry(1)["x"])
    assert "new" not in store and not list((tmp_path / "s").glob(".tmp-*"))


def test_cache_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="Cannot create the cache folder"):
        TensorStore(blocker / "cache")


def test_every_kind_of_tensor_comes_back_exactly(tmp_path):
    tensors = {"bf16": torch.randn(3, 5).to(torch.bfloat16), "half": torch.randn(7).half(),
               "mask": torch.rand(4, 4) > 0.5, "ids": torch.arange(5), "scalar": torch.tensor(2.5),
               "empty": torch.zeros(0, 3), "strided": torch.randn(6, 4).t()}
    TensorStore(tmp_path / "s").put("a", tensors)
    back = TensorStore(tmp_path / "s", ram_budget=0).get("a")
    assert list(back) == list(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape and torch.equal(back[name], t), name


def test_entry_of_another_format_version_is_computed_again(tmp_path):
    store = TensorStore(tmp_path / "s")
    store.put("a", entry(1))
    path = store.path("a")
    data = bytearray(path.read_bytes())
    data[4] = 1  # the first format's version byte
    path.write_bytes(bytes(data))
    fresh = TensorStore(tmp_path / "s")
    assert fresh.get("a") is None and not path.exists()
    fresh.put("a", entry(2))
    assert torch.equal(TensorStore(tmp_path / "s").get("a")["x"], entry(2)["x"])


def test_write_behind_reads_at_once_and_writes_everything(tmp_path):
    store = TensorStore(tmp_path / "s", ram_budget=0, write_behind=True)
    for i in range(12):
        store.put(f"k{i}", entry(i))
        assert torch.equal(store.get(f"k{i}")["x"], entry(i)["x"])  # before it reaches the disk
    store.delete("k3")
    store.flush()
    again = TensorStore(tmp_path / "s")
    assert all(torch.equal(again.get(f"k{i}")["x"], entry(i)["x"]) for i in range(12) if i != 3)
    assert "k3" not in again and not store.path("k3").exists()


def test_write_behind_error_reaches_the_caller_and_keeps_what_was_there(tmp_path, monkeypatch):
    store = TensorStore(tmp_path / "s", write_behind=True)
    store.put("kept", entry(1))
    store.flush()
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk)
    store.put("new", entry(2))
    with pytest.raises(CacheError, match="disk is full"):
        store.flush()
    monkeypatch.setattr("sam2_core.cache.store.os.replace", real_replace)
    assert torch.equal(TensorStore(tmp_path / "s").get("kept")["x"], entry(1)["x"])
    assert not list((tmp_path / "s").glob(".tmp-*"))


def test_write_behind_keeps_the_order_of_puts_and_close_ends_the_writer(tmp_path, monkeypatch):
    from sam2_core.cache import store as st

    written = []
    real = st.TensorStore._write_atomically

    def slow_and_recorded(self, path, parts, durable):
        time.sleep(0.002 * (len(written) % 3))  # uneven write times must not reorder anything
        real(self, path, parts, durable)
        written.append(path.name)

    monkeypatch.setattr(st.TensorStore, "_write_atomically", slow_and_recorded)
    store = TensorStore(tmp_path / "ordered", write_behind=True)
    for i in range(8):
        store.put(f"k{i}", entry(i))
    store.delete("k7")  # taken back: never reaches the disk, or is removed from it
    store.close()
    assert [n for n in written if n != "k7.entry"] == [f"k{i}.entry" for i in range(7)]
    assert not store.path("k7").exists() and "k7" not in store
    assert not any(t.name == "sam2roto-cache-writer:ordered" for t in threading.enumerate())
    store.put("k8", entry(8))  # a closed store's writer starts again when needed
    store.flush()
    assert torch.equal(TensorStore(tmp_path / "ordered").get("k8")["x"], entry(8)["x"])
    store.close()


def test_a_close_while_another_thread_puts_still_writes_the_entry(tmp_path):
    store = TensorStore(tmp_path / "s", write_behind=True)
    store.put("warm", entry(0))  # the writer thread is running
    store.flush()
    queue = store._writer._queue
    real_put, handing_over = queue.put, threading.Event()

    def slow_put(item, *args, **kwargs):
        if item is not None:  # an entry: the close() below comes in while it is handed over
            handing_over.set()
            time.sleep(0.2)
        real_put(item, *args, **kwargs)

    queue.put = slow_put
    putter = threading.Thread(target=store.put, args=("late", entry(1)))
    putter.start()
    assert handing_over.wait(5)
    store._writer.close()
    putter.join()
    flusher = threading.Thread(target=store.flush, daemon=True)  # (hangs if the entry was orphaned)
    flusher.start()
    flusher.join(5)
    assert not flusher.is_alive()
    assert torch.equal(TensorStore(tmp_path / "s").get("late")["x"], entry(1)["x"])
    store.close()


def test_flush_all_waits_for_every_store_and_raises_the_first_error(tmp_path, monkeypatch, caplog):
    stores = [TensorStore(tmp_path / name, write_behind=True) for name in ("a", "b", "c")]
    real_replace = os.replace

    def full_disk_for_a_and_b(src, dst):
        if Path(dst).parent.name in ("a", "b"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk_for_a_and_b)
    for store in stores:
        store.put("k", entry(1))
    with pytest.raises(CacheError, match="disk is full") as info:
        flush_all(stores)
    assert str(tmp_path / "a") in str(info.value)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(tmp_path / "b") in m for m in warned)  # the second error is not lost
    assert torch.equal(TensorStore(tmp_path / "c").get("k")["x"], entry(1)["x"])  # c was still written


def full_disk_replace(monkeypatch):
    """Make every entry write fail as on a full disk; returns a function that ends it."""
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sam2_core.cache.store.os.replace", full_disk)
    return lambda: monkeypatch.setattr("sam2_core.cache.store.os.replace", real_replace)


def test_write_error_met_by_another_thread_still_reaches_flush(tmp_path, monkeypatch):
    store = TensorStore(tmp_path / "s", write_behind=True)
    room_again = full_disk_replace(monkeypatch)
    store.put("a", entry(1))
    store._writer.join()
    met = []

    def background_put():  # (a background encoder putting features, say)
        try:
            store.put("b", entry(2))
        except CacheError as e:
            met.append(e)

    worker = threading.Thread(target=background_put)
    worker.start()
    worker.join()
    assert met  # the thread that put next was told
    with pytest.raises(CacheError, match="disk is full"):
        store.flush()  # and so is the owner
    room_again()
    store.put("c", entry(3))  # reported once: the disk is tried again
    store.flush()
    assert torch.equal(TensorStore(tmp_path / "s").get("c")["x"], entry(3)["x"])


def test_failed_overwrite_never_reads_back_the_older_entry(tmp_path, monkeypatch):
    store = TensorStore(tmp_path / "s", write_behind=True)
    store.put("k", entry(1))
    store.flush()
    room_again = full_disk_replace(monkeypatch)
    store.put("k", entry(2))
    with pytest.raises(CacheError):
        store.flush()
    room_again()
    assert store.get("k") is None and TensorStore(tmp_path / "s").get("k") is None  # missing: computed again


def test_clear_after_a_write_error_deletes_everything_other_processes_wrote_too(tmp_path, monkeypatch):
    store = TensorStore(tmp_path / "s", write_behind=True)
    store.put("mine", entry(1))
    store.flush()
    TensorStore(tmp_path / "s").put("theirs", entry(2))  # another process, after this one opened
    room_again = full_disk_replace(monkeypatch)
    store.put("lost", entry(3))
    store._writer.join()
    room_again()
    store.clear()
    assert not list((tmp_path / "s").iterdir())
    store.put("new", entry(4))
    store.flush()  # the error that clear() made moot is not raised later
    assert TensorStore(tmp_path / "s").keys() == ["new"]


def test_entry_written_by_another_process_is_found_and_counted(tmp_path):
    store = TensorStore(tmp_path / "s", ram_budget=0)
    TensorStore(tmp_path / "s").put("theirs", entry(5))
    assert torch.equal(store.get("theirs")["x"], entry(5)["x"])
    assert store.disk_bytes == store.path("theirs").stat().st_size


def test_store_opens_while_another_process_evicts(tmp_path, monkeypatch):
    store = TensorStore(tmp_path / "s")
    store.put("a", entry(1))
    store.put("b", entry(2))
    real_glob = Path.glob

    def glob_then_evicted(self, pattern):
        found = list(real_glob(self, pattern))
        store.path("b").unlink(missing_ok=True)  # gone between the listing and its stat
        return iter(found)

    monkeypatch.setattr(Path, "glob", glob_then_evicted)
    reopened = TensorStore(tmp_path / "s")
    assert reopened.keys() == ["a"] and reopened.disk_bytes == store.path("a").stat().st_size


def test_damaged_entry_on_a_read_only_disk_reads_as_missing(tmp_path, monkeypatch, caplog):
    store = TensorStore(tmp_path / "s")
    store.put("k", entry(1))
    store.path("k").write_bytes(b"S2RC\x02 not an entry")

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "unlink", read_only)
    assert TensorStore(tmp_path / "s").get("k") is None
    assert "damaged" in caplog.text


def test_writing_an_entry_again_evicts_nothing_that_fits(tmp_path):
    size = len(b"".join(bytes(memoryview(p)) for p in encode_entry(entry(0))))
    store = TensorStore(tmp_path / "s", disk_budget=3 * size)
    for key in "abc":
        store.put(key, entry(1))
    store.put("c", entry(2))
    assert sorted(store.keys()) == ["a", "b", "c"] and store.disk_bytes == 3 * size


def test_temporaries_left_by_killed_writers_are_removed_when_old(tmp_path):
    folder = tmp_path / "s"
    TensorStore(folder).put("a", entry(1))
    old, fresh = folder / ".tmp-1-2-3", folder / ".tmp-4-5-6"  # fresh: another process's write under way
    for tmp in (old, fresh):
        tmp.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    TensorStore(folder)
    assert not old.exists() and fresh.exists()


def test_store_dropped_without_close_frees_its_writer_and_memory(tmp_path):
    store = TensorStore(tmp_path / "s", write_behind=True)
    store.put("a", entry(1, n=100_000))
    store.flush()
    gone = weakref.ref(store)
    writer = store._writer._thread
    del store
    gc.collect()
    assert gone() is None
    writer.join(timeout=10)
    assert not writer.is_alive()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("write_behind", [True, False])
def test_gpu_entries_are_copied_off_behind_the_gpu_work(tmp_path, write_behind):
    store = TensorStore(tmp_path, durable=False, write_behind=write_behind)
    x = torch.zeros(1 << 20, device="cuda")
    # once untimed: the first launch of a kernel loads it, and the first pinned buffer is
    # allocated, each of which can wait for the GPU
    torch.cuda._sleep(1000)
    x += 0
    store.put("warm-up", {"x": x})
    store.flush()
    torch.cuda._sleep(2_000_000_000)  # the GPU is busy for about a second...
    x += 7  # ...before this runs
    store.put("a", {"x": x, "on_host": torch.arange(3)})
    if write_behind:
        assert not store._pending["a"].copied.query()  # put did not wait for the GPU
        assert store.get("a")["x"].is_cuda  # reads meanwhile get the tensor as put
    store.flush()
    back = TensorStore(tmp_path).get("a")  # from the disk
    assert torch.equal(back["x"], torch.full((1 << 20,), 7.0))
    assert torch.equal(back["on_host"], torch.arange(3))


@pytest.mark.parametrize("write_behind", [False, True])
def test_a_store_whose_folder_was_removed_writes_again(tmp_path, write_behind):
    """Another tracker on the shot may remove a folder it thinks unused, to keep the disk budget."""
    store = TensorStore(tmp_path / "s", write_behind=write_behind)
    store.put("a", entry(1))
    store.flush()
    shutil.rmtree(tmp_path / "s")
    store.put("b", entry(2))
    store.flush()
    assert torch.equal(TensorStore(tmp_path / "s").get("b")["x"], entry(2)["x"])
