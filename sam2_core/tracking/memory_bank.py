"""One object's memory bank and the policy that picks, for a frame being tracked, which
memories it attends to (SAM 2's evaluation policy):

- every conditioning frame (frames the user prompted), at the "conditioning" time slot;
- the num_maskmem - 1 frames just before the current one in tracking order, each at its
  own time slot (t - 1 nearest);
- object pointers of the conditioning frames up to the current one (in tracking order)
  and of up to 15 frames before it, each tagged with its signed distance in frames.

Spatial memories are large (64x64x64 a frame, 0.5 MiB); they live in a TensorStore, rounded
to bfloat16 as the official predictor stores them, with a bounded window in RAM and a disk
budget. They are a cache: each can be computed again from its frame's features and result
(`recompute`), so one evicted, damaged or left by an older result costs a memory encoding,
and a long shot's session folder does not grow by half a MiB a frame and object. Pointers and
object scores are small and stay in RAM.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..cache.store import TensorStore
from ..model import SAM2
from ..model.loading import upload


def new_version() -> int:
    """A version no other result has had, in this process or any other that saved to the
    same session folder: random, because a counter resumed from the results on disk can
    give out again the version of a result since deleted."""
    return secrets.randbits(63)


class LostResult(RuntimeError):
    """A spatial memory the bank lists is gone from its store, and so is the result it
    would be computed again from (damaged on disk, or deleted)."""

    def __init__(self, obj_id: int, frame: int, folder):
        super().__init__(f"The result of object {obj_id} on frame index {frame} was lost from {folder} (damaged "
                         "or deleted): track again, and it is computed again (a prompted frame: prompt it again).")
        self.obj_id, self.frame = obj_id, frame


@dataclass
class FrameMemory:
    """What later frames need of one object's result on one frame."""

    obj_ptr: torch.Tensor  # (1, C) float32
    object_score: torch.Tensor  # (1, 1)
    has_spatial: bool = False  # a spatial memory is in the store
    # tells this result apart from any other result on the same frame, earlier or later
    version: int = field(default_factory=new_version)


@dataclass
class Selection:
    """Which memories a frame attends to: (time slot, frame, record) for spatial memories,
    (signed distance, record) for object pointers."""

    spatial: list[tuple[int, int, FrameMemory]]
    pointers: list[tuple[int, FrameMemory]]

    @property
    def signature(self) -> tuple:
        """Identifies the memory content exactly: equal signatures, equal conditioning."""
        return (tuple((t, f, fm.version) for t, f, fm in self.spatial),
                tuple((d, fm.version) for d, fm in self.pointers))


@dataclass
class ObjectMemory:
    obj_id: int
    cond: dict[int, FrameMemory] = field(default_factory=dict)  # frames the user prompted
    tracked: dict[int, FrameMemory] = field(default_factory=dict)  # frames tracked from memory
    # tracking direction of every frame with a result: True = backward
    reverse: dict[int, bool] = field(default_factory=dict)

    def get(self, frame: int) -> FrameMemory | None:
        return self.cond.get(frame) or self.tracked.get(frame)


class MemoryBank:
    def __init__(self, model: SAM2, store: TensorStore, num_frames: int,
                 recompute: Callable[[ObjectMemory, int, FrameMemory], torch.Tensor]):
        """recompute(obj, frame, record): the frame's spatial memory computed again from
        its result, for one missing from the store (raises LostResult if it cannot be)."""
        self.model = model
        self.store = store
        self.num_frames = num_frames
        self.recompute = recompute
        self._memory_pos: torch.Tensor | None = None  # the same for every frame

    def memory_pos(self) -> torch.Tensor:
        """The spatial memories' position encoding (the same for every frame), rounded to
        the working precision as the memory encoder hands it out with each memory."""
        if self._memory_pos is None:
            cfg = self.model.cfg
            grid = torch.zeros(1, cfg.mem_dim, cfg.embedding_size, cfg.embedding_size, device=self.model.device)
            pos = self.model.memory_encoder.position_encoding(grid)
            self._memory_pos = pos.to(self.model.dtype).float()
        return self._memory_pos

    @staticmethod
    def key(obj_id: int, frame: int) -> str:
        return f"mem-{obj_id}-{frame:07d}"

    def put_spatial(self, obj: ObjectMemory, frame: int, memory: torch.Tensor, record: FrameMemory,
                    prompted: bool) -> None:
        """Keep `record`'s spatial memory (the version tells it from another result's). A
        prompted frame's is read by every frame tracked: it is never evicted for newer ones."""
        key = self.key(obj.obj_id, frame)
        (self.store.pin if prompted else self.store.unpin)(key)
        self.store.put(key, {
            "memory": memory.to(torch.bfloat16), "version": torch.tensor([record.version], dtype=torch.int64)})

    def drop_spatial(self, obj: ObjectMemory, frame: int) -> None:
        key = self.key(obj.obj_id, frame)
        self.store.unpin(key)
        self.store.delete(key)

    def spatial(self, obj: ObjectMemory, frame: int, record: FrameMemory) -> torch.Tensor:
        got = self.store.get(self.key(obj.obj_id, frame))
        # (a memory saved before versions were kept belongs to the result saved with it)
        if got is None or int(got.get("version", record.version)) != record.version:
            memory = self.recompute(obj, frame, record)
            self.put_spatial(obj, frame, memory, record, prompted=frame in obj.cond)
            return memory.to(torch.bfloat16)
        return got["memory"].to(self.model.device)

    def forget(self, obj: ObjectMemory) -> None:
        for frame in set(obj.cond) | set(obj.tracked):
            self.drop_spatial(obj, frame)

    def select(self, obj: ObjectMemory, frame: int, reverse: bool) -> Selection:
        """The memories `obj` attends to at `frame` (no tensors are read)."""
        cfg = self.model.cfg
        step = -1 if reverse else 1
        # conditioning frames at slot 0, then the previous frames, oldest slot first
        spatial = [(0, f, obj.cond[f]) for f in sorted(obj.cond)]
        for t_pos in range(1, cfg.num_maskmem):
            prev = frame - step * (cfg.num_maskmem - t_pos)
            if prev in obj.tracked:
                spatial.append((t_pos, prev, obj.tracked[prev]))
        spatial = [s for s in spatial if s[2].has_spatial]

        pointers = []
        # pointers of the conditioning frames up to this one, in tracking order
        for f in sorted(obj.cond):
            if (f >= frame) if reverse else (f <= frame):
                distance = (frame - f) * step if cfg.sam2_1 else abs(frame - f)
                pointers.append((distance, obj.cond[f]))
        for t_diff in range(1, min(self.num_frames, cfg.max_obj_ptrs)):
            f = frame - step * t_diff
            if f < 0 or f >= self.num_frames:
                break
            if f in obj.tracked:
                pointers.append((t_diff, obj.tracked[f]))
        return Selection(spatial, pointers)

    def assemble(self, obj: ObjectMemory, selection: Selection):
        """Memory tokens: (memory, memory_pos, num_pointer_tokens), memory and memory_pos
        (1, N, mem_dim), the spatial memories first."""
        cfg, dev = self.model.cfg, self.model.device
        memories, positions = [], []
        for t_pos, f, record in selection.spatial:
            memories.append(self.spatial(obj, f, record).float().flatten(2).transpose(1, 2))  # (1, HW, m)
            tpos = self.model.maskmem_tpos_enc[cfg.num_maskmem - t_pos - 1].reshape(1, 1, -1)
            positions.append(self.memory_pos().flatten(2).transpose(1, 2) + tpos)

        num_ptr_tokens = 0
        if selection.pointers:
            max_ptrs = min(self.num_frames, cfg.max_obj_ptrs)
            distances = upload(torch.tensor([d for d, _ in selection.pointers]), dev)
            ptr_pos = self.model.pointer_time_encoding(distances, max_ptrs - 1)  # (N, m)
            # each C-wide pointer becomes C / mem_dim tokens of mem_dim
            split = cfg.d_model // cfg.mem_dim
            ptrs = torch.cat([fm.obj_ptr for _, fm in selection.pointers], dim=0)
            tokens = ptrs.reshape(-1, split, cfg.mem_dim).reshape(1, -1, cfg.mem_dim)
            memories.append(tokens.float())
            positions.append(ptr_pos.float().repeat_interleave(split, dim=0)[None])
            num_ptr_tokens = tokens.shape[1]
        return torch.cat(memories, dim=1), torch.cat(positions, dim=1), num_ptr_tokens
