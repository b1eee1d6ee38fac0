"""The ``dvt-edge`` command line: one place that composes each job from a validated config.

Bedside commands (``demo``, ``us``, ``ct``, ``doctor``) live in edge/. Commands that need torch or the
benchmark code (``export``, ``train``, ``bench``) live in their own packages and plug in through the
``dvt_edge.commands`` entry-point group, so the runtime never imports them.

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

Registrar = Callable[[argparse._SubParsersAction], None]


def _builtin_registrars() -> list[Registrar]:
    from edge.commands import demo, doctor, ui, us

    registrars: list[Registrar] = [demo.register, us.register, doctor.register, ui.register]
    try:
        from edge.ct import cli as ct_cli
    except ImportError:  # the CT job is optional until its module lands
        ct_cli = None
    if ct_cli is not None:
        registrars.append(ct_cli.register)
    return registrars


def _plugin_registrars() -> list[tuple[str, Registrar | Exception]]:
    found = []
    for ep in entry_points(group="dvt_edge.commands"):
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # a plugin whose dependencies (torch, matplotlib) are not installed
            found.append((ep.name, exc))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvt-edge",
        description="Real-time DVT inference: compression ultrasound and CT venography. "
        "Research software: not for diagnostic use.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _builtin_registrars():
        register(sub)
    for name, register in _plugin_registrars():
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


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # --debug is accepted anywhere on the line (`dvt-edge us run x --debug`, `dvt-edge train us ... --debug`),
    # not only before the command, where argparse alone would take it
    argv = [a for a in argv if a != "--debug"]
    if not debug:
        _quiet_native_logs()
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
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
