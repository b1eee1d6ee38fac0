"""The exception tree of DVT Edge.

Every error a user can cause is a :class:`DvtEdgeError` whose message names the input (a file, a frame
index, a DICOM tag) and says what to do. The CLI prints ``str(err)`` on one line and exits non-zero;
the traceback is shown only with ``--debug``. Raise with ``from exc`` so the cause is kept.

    DvtEdgeError
    ├── InputError        a file, folder, device or URL that cannot be opened or read
    │   └── SourceError   a frame source failed while streaming
    ├── ModelError        a model artifact or its spec is missing or inconsistent
    ├── BackendError      an inference runtime is missing, unavailable, or failed
    ├── ConfigError       a configuration value is invalid
    └── OutputError       an output file (video, report, plot) cannot be created or written
"""

from __future__ import annotations


class DvtEdgeError(Exception):
    """Base class: a failure the user can act on. ``str()`` is a one-line message."""

    exit_code = 2


class InputError(DvtEdgeError):
    """An input (file, folder, camera, stream URL, DICOM object) cannot be opened or read."""

    exit_code = 3


class SourceError(InputError):
    """A frame source failed after it was opened (device unplugged, stream cut, corrupt frame)."""


class ModelError(DvtEdgeError):
    """A model artifact or its sidecar spec is missing, malformed or inconsistent."""

    exit_code = 4


class BackendError(DvtEdgeError):
    """An inference runtime is not installed, cannot run here, or failed during inference."""

    exit_code = 5


class ConfigError(DvtEdgeError):
    """A configuration value is out of range or of the wrong type."""

    exit_code = 6


class OutputError(DvtEdgeError):
    """An output file (video, report, plot) cannot be created or written. The message names the path."""

    exit_code = 7


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler so a run stops as it does on Ctrl-C: sinks
    close, the report is written with ``complete: false``, the video is finished (playable) or absent."""

    def __init__(self, message: str = "terminated (SIGTERM)"):
        super().__init__(message)
