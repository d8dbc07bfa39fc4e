"""The one error of configuration: what is wrong, naming the file and key.

Owns: `ConfigError` (the command line exits 2 with its message). Must not: carry
anything but the setting's name and the problem.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is unknown, of the wrong type or impossible. The message names it."""
