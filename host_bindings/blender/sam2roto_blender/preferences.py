"""The add-on's preferences: where the SAM 2 core environment is (the installer sets it) and the
model settings new shots start with."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

INPUT_SIZES = [("1024", "1024 (as trained)", "The size the SAM 2 models were trained at: the best mattes"),
               ("512", "512 (draft)", "Several times faster on a CPU, with coarser mattes")]
DEVICES = [("auto", "Auto", "CUDA, then Apple MPS, then the CPU"), ("cuda", "CUDA", "An NVIDIA GPU"),
           ("mps", "Apple MPS", "Apple silicon GPU"), ("cpu", "CPU", "The processor (slow)")]


class SAM2ROTO_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    core_env: StringProperty(
        name="Core environment", subtype="DIR_PATH",
        description="Folder of the Python environment the SAM 2 core runs in (made by the installer; "
                    "it holds bin/python, or Scripts\\python.exe on Windows)")
    model: StringProperty(name="Model", default="",
                          description="SAM 2 model for new shots, e.g. sam2.1_hiera_base_plus (empty: the core's "
                                      "default)")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH", default="",
                               description="A checkpoint file to use instead of the official download (optional)")
    device: EnumProperty(name="Device", items=DEVICES, default="auto")
    input_size: EnumProperty(name="Input size", items=INPUT_SIZES, default="1024",
                             description="The square picture the network sees, for new shots")
    open_with_blend: BoolProperty(
        name="Open shots with their .blend", default=True,
        description="When a .blend whose scene has a SAM 2 shot opens, start the core and open the shot in the "
                    "background: its masks show, and the first click is answered without waiting for the model")

    def draw(self, _context):
        layout = self.layout
        layout.prop(self, "core_env")
        layout.prop(self, "model")
        layout.prop(self, "checkpoint")
        layout.prop(self, "device")
        layout.prop(self, "input_size")
        layout.prop(self, "open_with_blend")


def get(context=None) -> SAM2ROTO_Preferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


classes = (SAM2ROTO_Preferences,)
