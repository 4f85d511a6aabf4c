"""Export: stored tracking results -> soft, cleaned-up mattes -> files, frame by frame.
Runs from what is on disk, so a shot exports again without tracking again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .cleanup import Cleanup
from .soft import soft_matte

Frame = tuple[int, int, dict[str, np.ndarray], np.ndarray]


def mattes_of(tracker, objects: dict[int, str], *, guided: bool = True,
              cleanup: dict[int, Cleanup] | None = None) -> Iterator[Frame]:
    """(frame index, frame number, {object name: alpha}, plate) for every frame of the
    source; an object with no result on a frame gets an empty matte there."""
    source = tracker.source
    w, h = source.size
    cleanup = cleanup or {}
    per_object_streams = {}
    # decoding (and colour-converting) a frame is costly: each is read once, kept while the
    # per-object streams (which temporal smoothing runs ahead) may still ask for it
    keep = 2 * max((c.temporal for c in cleanup.values()), default=0) + 2
    plates: dict[int, np.ndarray] = {}

    def plate(i: int) -> np.ndarray:
        if i not in plates:
            plates[i] = source.read(i)
            for old in [k for k in plates if k < i - keep]:
                del plates[old]
        return plates[i]

    def raw(obj_id):
        for i in range(len(source)):
            logits = tracker.logits(i, obj_id)
            if logits is None:
                yield i, np.zeros((h, w), np.float32)
            else:
                yield i, soft_matte(logits, plate(i) if guided else None)

    for obj_id in objects:
        stream = raw(obj_id)
        if obj_id in cleanup:
            stream = cleanup[obj_id].run(stream)
        per_object_streams[obj_id] = stream
    for i in range(len(source)):
        mattes = {}
        for obj_id, name in objects.items():
            index, alpha = next(per_object_streams[obj_id])
            assert index == i
            mattes[name] = alpha
        yield i, source.frame_numbers[i], mattes, plate(i)


def export(tracker, objects: dict[int, str], writer, *, guided: bool = True,
           cleanup: dict[int, Cleanup] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Write every frame's mattes through `writer`; returns the number of frames written."""
    total = len(tracker.source)
    done = 0
    for _, number, mattes, plate in mattes_of(tracker, objects, guided=guided, cleanup=cleanup):
        writer.write(number, mattes, plate)
        done += 1
        if progress is not None:
            progress(done, total)
    writer.close()
    return done
