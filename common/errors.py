"""The root of DriveEnv's exceptions.

Every package defines its own subclasses (``scene_builder.errors``, ``simulator.errors``, ...).
The CLI catches ``DriveEnvError`` and prints ``error: <message>`` on one line with exit code 1,
so a message must name the file or value at fault and say what is wrong with it.
"""


class DriveEnvError(Exception):
    """A problem the user can fix: bad input, a missing file, an impossible setting."""
