"""Import open3d on machines that lack the system libusb.

The ``open3d-cpu`` wheel links against ``libusb-1.0.so.0`` (for RealSense cameras we never use),
which minimal Linux images do not have, so ``import open3d`` fails there. The ``libusb-package``
wheel ships that library; loading it first with RTLD_GLOBAL lets the dynamic linker resolve
open3d's dependency by its soname, with no system package and no LD_LIBRARY_PATH.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
from types import ModuleType


def import_open3d() -> ModuleType:
    """Return the ``open3d`` module, preloading the bundled libusb when the system has none."""
    if ctypes.util.find_library("usb-1.0") is None:
        import libusb_package

        ctypes.CDLL(str(libusb_package.get_library_path()), mode=ctypes.RTLD_GLOBAL)
    return importlib.import_module("open3d")
