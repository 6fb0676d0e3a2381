"""DriveEnv core: the project-wide exception root, the CLI entry point and small shared helpers.

The five packages (``scene_builder``, ``simulator``, ``agents``, ``generative``, ``eval``)
import from here, never the other way round, so every package can raise a ``DriveEnvError``
without importing a sibling.
"""

from driveenv.errors import DriveEnvError

__version__ = "0.1.0"
__all__ = ["DriveEnvError", "__version__"]
