"""sam2_core: the engine of sam2roto. Knows SAM 2, footage, caches and mattes; no host, no UI."""

from .image_predictor import ImagePredictor
from .model.loading import load_model
from .tracking.tracker import VideoTracker

__all__ = ["ImagePredictor", "VideoTracker", "load_model"]
