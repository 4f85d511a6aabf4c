"""write_text_atomically: the new text or the old, never a half; files others can read."""

import os
import stat

import pytest

from sam2_core.atomic import write_text_atomically


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_file_gets_the_permissions_any_new_file_gets(tmp_path, umask, mode):
    # (a shot folder or exported shapes shared with another artist or a render farm)
    old = os.umask(umask)
    try:
        path = write_text_atomically(tmp_path / "shot.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_text() == "{}"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "shot.json"
    write_text_atomically(path, "old")

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sam2_core.atomic.os.replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_text_atomically(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["shot.json"]
