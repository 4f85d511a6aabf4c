"""The shot folder: manifest, lock, tracking session and cache of one shot."""

from .lock import ShotInUseError, ShotLock
from .manifest import Manifest, ManifestError, ObjectRecord, PromptRecord, read_manifest, write_manifest

__all__ = ["Manifest", "ManifestError", "ObjectRecord", "PromptRecord", "ShotInUseError", "ShotLock",
           "read_manifest", "write_manifest"]
