"""The bottom package: what every DriveEnv package may import and nothing else provides.

The exception root, atomic writes, the progress bar, the open3d import and the helpers that
turn typed configs into command-line parsers. It imports no other DriveEnv package, so the
five packages can share these without importing a sibling, and the ``driveenv`` package (the
CLI and the demo) stays the top of the import graph.
"""

from common.errors import DriveEnvError

__all__ = ["DriveEnvError"]
