"""Inference backends behind one Protocol; see :mod:`edge.backends.base` and :mod:`edge.backends.select`."""

from edge.backends.base import Backend, check_feeds
from edge.backends.select import BACKEND_NAMES, Choice, choose_backend, open_backend

__all__ = ["Backend", "check_feeds", "BACKEND_NAMES", "Choice", "choose_backend", "open_backend"]
