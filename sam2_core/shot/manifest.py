"""The shot manifest: what a shot is (its footage, colour, model, objects and prompts)
and what has been done with it, as versioned JSON written atomically.

Paths inside the shot folder are stored relative to it, so a shot folder can move."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text_atomically

MANIFEST_FILE = "shot.json"

SCHEMA = "sam2roto.shot"
VERSION = 1


class ManifestError(ValueError):
    pass


@dataclass
class PromptRecord:
    frame: int  # the source's frame number
    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: list[float] | None = None
    mask: str | None = None  # a mask prompt: its PNG, relative to the shot folder
    tracked: bool = False  # the tracker has tracked from it (its answer is in the memory bank)


@dataclass
class ObjectRecord:
    id: int
    name: str
    colour: list[float] = field(default_factory=lambda: [1.0, 0.3, 0.2])
    prompts: list[PromptRecord] = field(default_factory=list)
    cleanup: dict = field(default_factory=dict)

    def prompted_frames(self) -> list[int]:
        return sorted({p.frame for p in self.prompts})


@dataclass
class Manifest:
    source: str  # path, relative to the shot folder where it lies inside it
    # the same path seen from the shot folder (../plates/...) where it lies outside it: found
    # there when the project moved or was copied with its footage
    source_from_shot: str = ""
    source_fingerprint: str = ""  # what the footage is (sam2_core.media.open.fingerprint), "" unknown
    colour: dict = field(default_factory=dict)
    missing_frames: str = "error"  # a gap in a sequence: "error", or "hold" (the previous frame stands in)
    model: dict = field(default_factory=dict)
    objects: list[ObjectRecord] = field(default_factory=list)
    tracked: bool = False  # the whole requested span has been tracked
    exports: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, where: Path) -> Manifest:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ManifestError(f"{where} is not a sam2roto shot manifest (no schema {SCHEMA!r}).")
        if data.get("version") != VERSION:
            raise ManifestError(f"{where} has manifest version {data.get('version')!r}; this sam2roto reads "
                                f"version {VERSION}. Update sam2roto, or re-create the shot.")
        try:
            objects = [ObjectRecord(id=int(o["id"]), name=str(o["name"]), colour=list(o.get("colour", [1, 0.3, 0.2])),
                                    # (a manifest from before "tracked" was kept: as it was read then)
                                    prompts=[PromptRecord(**{"tracked": True, **p}) for p in o.get("prompts", [])],
                                    cleanup=dict(o.get("cleanup", {})))
                       for o in data.get("objects", [])]
            return cls(source=str(data["source"]), source_from_shot=str(data.get("source_from_shot", "")),
                       source_fingerprint=str(data.get("source_fingerprint", "")),
                       colour=dict(data.get("colour", {})), missing_frames=str(data.get("missing_frames", "error")),
                       model=dict(data.get("model", {})), objects=objects, tracked=bool(data.get("tracked", False)),
                       exports=list(data.get("exports", [])))
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"{where} is damaged or was edited into something sam2roto cannot read "
                                f"({type(e).__name__}: {e}). Restore it or re-create the shot.") from None


def relative_to(path: Path, folder: Path) -> str:
    path, folder = Path(path).resolve(), Path(folder).resolve()
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def seen_from(folder: Path, path: Path) -> str:
    """`path` relative to `folder`, through ".." where needed, as the artist's paths go (links
    not resolved); "" where there is no such path (another drive)."""
    try:  # (with "/": the same on every system, should the project move to another)
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()
    except ValueError:
        return ""


def write_manifest(folder: Path, manifest: Manifest) -> None:
    path = Path(folder) / MANIFEST_FILE
    try:
        write_text_atomically(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    except OSError as e:
        raise ManifestError(f"Cannot save the shot's manifest {path}: {e.strerror or e}. Free some space on that "
                            "disk or make the shot folder writable; shot.json there is as it was before.") from None


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"No shot in {folder} (no shot.json).") from None
    except ValueError as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); it was damaged or edited by hand. "
                            "Restore it or re-create the shot.") from None
    return Manifest.from_dict(data, path)
