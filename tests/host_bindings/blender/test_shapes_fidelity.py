"""Shapes -> Blender Mask: a synthetic moving disc (with a frame where it is gone) becomes vector
shapes in the core, is imported by the extension, and Blender's own rasteriser (the compositor's
Mask node) gives back the disc on every frame."""

import json

import cv2
import numpy as np
import pytest

from sam2_core.mattes.shapes import shapes_from_mattes, write_shapes_json

W, H, FIRST, FRAMES, GONE = 320, 240, 1001, 6, 1004
CLIP_START = 11  # the clip starts on scene frame 11: footage frame 1001 shows there


def disc(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    return (xx - (90 + 22 * i)) ** 2 + (yy - (110 + 6 * i)) ** 2 < 55 ** 2


@pytest.fixture(scope="module")
def shot_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fidelity")
    mattes = {FIRST + i: (np.zeros((H, W), bool) if FIRST + i == GONE else disc(i)) for i in range(FRAMES)}
    for f, m in mattes.items():
        cv2.imwrite(str(folder / f"plate.{f}.png"), np.dstack([m * 200] * 3).astype(np.uint8))
    shapes = write_shapes_json(folder / "disc.shapes.json", shapes_from_mattes(mattes.items()), "disc")
    (folder / "other.json").write_text(json.dumps({"schema": "something.else", "version": 1}))
    return folder, mattes, shapes


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def test_blender_rasterises_the_imported_shapes_back_to_the_mattes(blender, shot_files, tmp_path):
    folder, mattes, shapes = shot_files
    found = blender.run("shapes_fidelity.py", tmp_path, clip=str(folder / f"plate.{FIRST}.png"),
                        clip_frame_start=CLIP_START, shapes=str(shapes), not_shapes=str(folder / "other.json"),
                        object="disc", frames=sorted(mattes), render_dir=str(tmp_path))
    assert "not a sam2roto shapes file" in found["errors"]["not_shapes"]
    assert "Cannot read the shapes file" in found["errors"]["missing"]
    assert found["layers"] == ["disc"] and found["splines"] == 1 and found["points"] >= 12
    # keyed on every frame of the shot (in scene frames), the gone frame keyed hidden and back
    assert found["co_key_frames"] == [float(CLIP_START + i) for i in range(FRAMES)]
    gone = CLIP_START + GONE - FIRST
    assert found["hide_render_keys"] == {str(CLIP_START): False, str(gone): True, str(gone + 1): False}
    for source, matte in mattes.items():
        rendered = cv2.imread(found["renders"][str(source)], cv2.IMREAD_UNCHANGED)
        assert rendered.shape == (H, W), (source, rendered.shape)
        assert iou(rendered > 127, matte) >= 0.95, (source, iou(rendered > 127, matte))
    prompt = found["prompt"]
    mine = cv2.imread(prompt["path"], cv2.IMREAD_UNCHANGED)
    assert mine.dtype == np.uint8 and mine.shape == (H, W) and prompt["area"] == int((mine == 255).sum())
    assert iou(mine == 255, mattes[int(prompt["frame"])]) >= 0.98
