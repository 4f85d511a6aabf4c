"""Makes the sample footage the README's quick start uses (run once; the outputs are
committed so that the quick start needs nothing but this repository): a still,
shapes.png, and a 1-second clip, ball.mp4 (H.264, 24 fps), of the ball rolling across.

    python samples/make_samples.py
"""

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def shapes(width: int = 640, height: int = 360, ball_x: float = 250.0) -> np.ndarray:
    """A shaded red ball in front of a blue box on a graded backdrop (RGB, uint8)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 50 * yy / height  # warm-to-dark backdrop
    img[..., 1] = 70 + 40 * xx / width
    img[..., 2] = 90
    img[200:320, 330:560] = (40, 70, 190)  # the box
    cx, cy, r = ball_x, 190.0, 95.0
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    ball = d2 < r * r
    # lit from the top-left: brighter towards (cx - r/2, cy - r/2)
    light = 1.0 - np.sqrt((xx - cx + r / 2) ** 2 + (yy - cy + r / 2) ** 2) / (2 * r)
    img[ball] = np.stack([210 * light + 40, 40 * light + 10, 30 * light + 10], -1)[ball]
    return np.clip(img, 0, 255).astype(np.uint8)


def ball_clip(path: Path, frames: int = 24) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"crf": "23"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(shapes(ball_x=150.0 + 12.0 * i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


if __name__ == "__main__":
    out = HERE / "shapes.png"
    cv2.imwrite(str(out), shapes()[:, :, ::-1])
    ball_clip(HERE / "ball.mp4")
    print(out, HERE / "ball.mp4")
