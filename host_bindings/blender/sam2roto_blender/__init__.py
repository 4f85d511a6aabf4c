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
# Blender's event handlers; blend_paths' first: its undo handler puts the paths right for the others
_HANDLERS = (*blend_paths.HANDLERS, *operators.HANDLERS)


def register():
    for module in _modules:
        for cls in module.classes:
            bpy.utils.register_class(cls)
    properties.register()
    blend_paths.note_where_opened()
    operators.register()
    for kind, handler in _HANDLERS:
        getattr(bpy.app.handlers, kind).append(handler)
    overlay.register()


def unregister():
    overlay.unregister()
    for kind, handler in _HANDLERS:
        if handler in getattr(bpy.app.handlers, kind):
            getattr(bpy.app.handlers, kind).remove(handler)
    operators.unregister()
    SESSION.stop()
    properties.unregister()
    for module in reversed(_modules):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
