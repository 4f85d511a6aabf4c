# SPDX-License-Identifier: GPL-3.0-or-later
"""SAM 2 Roto: rotoscoping with SAM 2 in Blender's Movie Clip Editor.

The SAM 2 core runs in its own Python environment as a child process (`sam2roto serve --stdio`);
this add-on only speaks its protocol (plugin/PROTOCOL.md in the sam2roto project), so no torch is
ever loaded into Blender.
"""

import bpy

from . import blend_paths, operators, overlay, preferences, prompt_tool, properties, ui
from .session import SESSION

_modules = (preferences, properties, operators, prompt_tool, ui)


def register():
    for module in _modules:
        for cls in module.classes:
            bpy.utils.register_class(cls)
    properties.register()
    blend_paths.register()  # (first: its undo handler puts the paths right for the others)
    operators.register()
    overlay.register()


def unregister():
    overlay.unregister()
    operators.unregister()
    blend_paths.unregister()
    SESSION.stop()
    properties.unregister()
    for module in reversed(_modules):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
