"""Image files through OpenCV by any path: Python opens them, OpenCV decodes and encodes."""

import cv2
import numpy as np
import pytest

from sam2_core.media.cv_files import read_image, write_image


def test_an_image_goes_to_a_path_with_any_letters_and_back(tmp_path):
    folder = tmp_path / "Über Plates ë 東京"
    folder.mkdir()
    image = (np.arange(12 * 16).reshape(12, 16) % 256).astype(np.uint8)
    for suffix in (".png", ".tif"):
        write_image(folder / f"matte{suffix}", image)
        assert np.array_equal(read_image(folder / f"matte{suffix}"), image)
    deep = np.full((4, 5, 3), 40000, np.uint16)  # (16 bits kept, as a 16-bit PNG plate has them)
    write_image(folder / "plate.png", deep)
    assert np.array_equal(read_image(folder / "plate.png", cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH), deep)


def test_what_cannot_be_read_or_written_says_so_and_leaves_no_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    assert read_image(tmp_path / "notes.png") is None and read_image(tmp_path / "empty.png") is None
    with pytest.raises(OSError):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="no .xyz"):
        write_image(tmp_path / "matte.xyz", np.zeros((4, 4), np.uint8))
    with pytest.raises(OSError):
        write_image(tmp_path / "no folder" / "matte.png", np.zeros((4, 4), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "notes.png"]


def test_mask_prompts_and_a_folders_frames_are_read_without_opencvs_own_file_opening(tmp_path, monkeypatch):
    """(cv2.imread/imwrite cannot open a non-ASCII path on Windows: the product reads and
    writes image files through Python.)"""
    from sam2_core.media.frame_source import FolderSource
    from sam2_core.shot.session import read_mask_file

    folder = tmp_path / "Über"
    folder.mkdir()
    frame = np.zeros((6, 8, 3), np.uint8)
    frame[2:4, 3:6] = 200
    for n in (1, 2):
        write_image(folder / f"{n:04d}.png", frame)
    write_image(tmp_path / "mask ë.png", frame[:, :, 0])

    def refused(*args, **kwargs):
        raise AssertionError("OpenCV opened the file itself")

    monkeypatch.setattr(cv2, "imread", refused)
    monkeypatch.setattr(cv2, "imwrite", refused)
    assert np.array_equal(FolderSource(folder).read(1), frame[:, :, ::-1])
    assert np.array_equal(read_mask_file(tmp_path / "mask ë.png", 1001), frame[:, :, 0] > 0)
