"""The ``dvt-edge`` command line: one place that composes each job from a validated config.

Bedside commands (``demo``, ``us``, ``ct``, ``doctor``) live in edge/. Commands that need torch or the
benchmark code (``export``, ``train``, ``bench``) live in their own packages and plug in through the
``dvt_edge.commands`` entry-point group, so the runtime never imports them.

Plug-ins are registered lazily: only the command being run calls its ``register`` (which may import
torch); every other plug-in gets a placeholder line in ``--help`` (its module's ``HELP`` string, else
:data:`_PLUGIN_HELP`) and is checked for its requirements (its module's ``REQUIRES``, else
:data:`_PLUGIN_REQUIRES`: top-level module names, looked up with ``find_spec``, never imported). So ``dvt-edge --help``
and ``dvt-edge us run`` never import torch, even with the training
extra installed (it cost ~3 s at every start).

Every user-caused failure is a DvtEdgeError: printed as one line ``dvt-edge: error: ...`` with a non-zero
exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from importlib.metadata import entry_points
from typing import Callable, Sequence

from edge.errors import DvtEdgeError, Terminated
from edge.notice import NOTICE

Registrar = Callable[[argparse._SubParsersAction], None]


def _builtin_registrars() -> list[Registrar]:
    from edge.commands import ct, demo, doctor, ui, us

    return [demo.register, us.register, doctor.register, ui.register, ct.register]


def _plugin_registrars() -> list[tuple[str, Registrar | Exception]]:
    found = []
    for ep in entry_points(group="dvt_edge.commands"):
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # a plugin whose dependencies (torch, matplotlib) are not installed
            found.append((ep.name, exc))
    return found


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The command word of ``argv`` (its first non-option token), None when there is none."""
    for a in argv or ():
        if not a.startswith("-"):
            return a
    return None


#: ``--help`` lines of the plug-ins that are not being run (a plug-in module's ``HELP`` takes precedence)
_PLUGIN_HELP = {"train": "train models (needs the [train] extra: torch)",
                "export": "export trained models to ONNX / TensorRT (needs the [train] extra)",
                "bench": "latency benchmarks: per backend, per stage, percentiles (needs the [bench] extra)"}
#: modules a plug-in cannot run without (a plug-in module's ``REQUIRES`` takes precedence)
_PLUGIN_REQUIRES = {"train": ("torch",)}


def _missing_requirement(name: str, register: Registrar) -> str | None:
    """Why a plug-in cannot run, from its requirements (found with find_spec, not imported)."""
    import importlib.util

    module = sys.modules.get(getattr(register, "__module__", ""), None)
    for req in getattr(module, "REQUIRES", _PLUGIN_REQUIRES.get(name, ())):
        try:
            found = importlib.util.find_spec(req) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{req} is not installed"
    return None


def _add_placeholder(sub: argparse._SubParsersAction, name: str, register: Registrar) -> None:
    """A ``--help`` line for a plug-in that is not being run; the real parser is built when it runs."""
    module = sys.modules.get(getattr(register, "__module__", ""), None)
    missing = _missing_requirement(name, register)
    if missing:
        help_ = f"(unavailable: {missing})"
    else:
        help_ = getattr(module, "HELP", None) or _PLUGIN_HELP.get(name) or f"'{name}' commands (plug-in)"
    p = sub.add_parser(name, help=help_, add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every built-in command, the plug-in that ``argv`` runs (registered for real,
    importing what it needs), and a placeholder for every other plug-in (nothing heavy imported)."""
    command = _command_of(argv)
    parser = argparse.ArgumentParser(
        prog="dvt-edge",
        description="Real-time DVT inference: compression ultrasound and CT venography. " + NOTICE,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _builtin_registrars():
        register(sub)
    for name, register in _plugin_registrars():
        if not isinstance(register, Exception) and name != command:
            _add_placeholder(sub, name, register)
            continue
        if not isinstance(register, Exception):
            try:
                register(sub)
                continue
            except ImportError as exc:  # a plugin whose extra (torch, matplotlib) is not installed
                register = exc
        # never let an optional command take the whole CLI down: show it, and say what to install
        p = sub.choices.get(name) or sub.add_parser(name, help=f"(unavailable: {register})")
        # take whatever follows (`dvt-edge train us --out x`), so the user gets the install line below
        # instead of argparse's "unrecognized arguments: us"
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_unavailable(name, register))
    return parser


#: the extra each plug-in command needs
_EXTRAS = {"train": "train", "export": "export,train", "bench": "bench,train"}


def _unavailable(name: str, exc: Exception) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise DvtEdgeError(
            f"'dvt-edge {name}' needs extra packages ({exc}); install them with: "
            f"pip install 'dvt-edge[{_EXTRAS.get(name, 'train,bench')}]'"
        )

    return run


def _quiet_native_logs() -> None:
    """OpenCV and its FFmpeg print their own warnings to stderr ("moov atom not found", V4L2 probing);
    our errors already say what failed, in one line. Must run before cv2 is first imported; --debug
    leaves them on."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _take_triton_url(argv: list[str]) -> list[str]:
    """``--triton-url HOST:PORT`` (for ``--backend triton``) is accepted anywhere on the line, like --debug;
    it goes to the backend through DVT_EDGE_TRITON_URL (edge/backends/triton.py)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--triton-url" and i + 1 < len(argv):
            os.environ["DVT_EDGE_TRITON_URL"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--triton-url="):
            os.environ["DVT_EDGE_TRITON_URL"] = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # --debug is accepted anywhere on the line (`dvt-edge us run x --debug`, `dvt-edge train us ... --debug`),
    # not only before the command, where argparse alone would take it
    argv = [a for a in argv if a != "--debug"]
    argv = _take_triton_url(argv)
    if not debug:
        _quiet_native_logs()
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.debug = debug
    # SIGTERM (a service manager, `kill`, a container stop) ends a run like Ctrl-C: outputs are closed and a
    # report marked incomplete is written, instead of the process vanishing with half-written files.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except DvtEdgeError as exc:
        if debug:
            raise
        print(f"dvt-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("dvt-edge: terminated (SIGTERM); outputs so far are closed and marked incomplete", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("dvt-edge: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen failure: one line here, the traceback with --debug
        if debug:
            raise
        msg = " ".join(str(exc).split())
        print(f"dvt-edge: error: unexpected {type(exc).__name__}: {msg} (run again with --debug for the "
              "traceback, and report it)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
