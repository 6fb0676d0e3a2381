"""The top of DriveEnv: the ``driveenv`` command and the end-to-end demo.

It imports every package; no package imports it. Shared helpers (the exception root, atomic
writes, the progress bar) live in the bottom package ``common``.
"""

from common.errors import DriveEnvError

__version__ = "0.1.0"
__all__ = ["DriveEnvError", "__version__"]
