"""JPEG 2000 decoding for CT slices: a pydicom decoder plugin backed by ``imagecodecs`` (BSD-3, OpenJPEG inside).

Why: on the real 512x512 JPEG 2000 sample (``../shared/data/ct-dicom-sample``) decoding was the slowest stage of
``ct scan``. Measured on the 2-core development machine, quiet (load ~1), 20 slices (`benchmarks/results/ct-decode.md`):

=============================  ==================  ========================  ===================================
decoder (PyPI, licence)        ms/slice, 1 thread  ms/slice, 2 threads        GIL
=============================  ==================  ========================  ===================================
imagecodecs (BSD-3)            22-24               12.5-14 (scales)          released while decoding
pylibjpeg-openjpeg (MIT)       25-29               24-28 (does not scale)    held
python-gdcm (Apache-2/BSD-3)   21                  25 (does not scale)       held
pillow (MIT-CMU)               46                  45                        held
=============================  ==================  ========================  ===================================

All four give pixel-identical arrays on the sample (tested). ``imagecodecs`` is the only one whose decode runs
in parallel on threads, so the decode pool of :meth:`edge.ct.dicom_series.CTSeries.prefetch` can run beside
inference without processes. :func:`register` adds it to pydicom's JPEG 2000 Lossless decoders and puts it
first in their order (lossy JPEG 2000 keeps pydicom's order: its rounding may differ between OpenJPEG
builds); when ``imagecodecs`` is missing nothing changes (gdcm, pylibjpeg-openjpeg or pillow decode as
before). A codestream it fails on falls through to pydicom's other plugins, as pydicom's own plugins do.
"""

from __future__ import annotations

import threading

LABEL = "imagecodecs"
_lock = threading.Lock()
_done = False

DECODER_DEPENDENCIES: dict = {}


def _syntaxes():
    from pydicom import uid

    # Lossless only: there every correct decoder gives the same integers. Lossy JPEG 2000 (irreversible 9/7
    # wavelet) may round differently between OpenJPEG builds, so it keeps pydicom's order (gdcm first) as before.
    return [uid.JPEG2000Lossless]


def is_available(uid: str) -> bool:
    """pydicom plugin contract: True when imagecodecs with its JPEG 2000 codec is importable."""
    if uid not in _syntaxes():
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(getattr(imagecodecs, "JPEG2K", None), "available", False))


def _decode_frame(src: bytes, runner) -> bytes:
    """pydicom plugin contract: the decoded frame as bytes, container size set from the J2K precision."""
    import imagecodecs

    if runner.samples_per_pixel != 1:  # CT is monochrome; colour goes to pydicom's own plugins
        raise ValueError("the imagecodecs plugin of edge.ct decodes single-sample (monochrome) data only")
    arr = imagecodecs.jpeg2k_decode(src)
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    if arr.dtype.itemsize * 8 < precision or arr.ndim != 2:
        raise ValueError(f"imagecodecs returned {arr.dtype} {arr.shape} for {precision}-bit data")
    runner.set_option("bits_allocated", 8 * arr.dtype.itemsize)  # like the pylibjpeg plugin: size from precision
    return arr.tobytes()


def registered() -> bool:
    """True once :func:`register` has run (whatever it found)."""
    return _done


def register() -> bool:
    """Add the plugin to pydicom's JPEG 2000 decoders, first in order. Idempotent, thread-safe. True if active."""
    global _done
    with _lock:
        if _done:
            return LABEL in _active()
        try:
            import imagecodecs  # noqa: F401
        except ImportError:
            _done = True
            return False
        from pydicom.pixels.decoders import JPEG2000LosslessDecoder

        try:
            for dec in (JPEG2000LosslessDecoder,):
                if LABEL not in dec._available and LABEL not in dec._unavailable:
                    dec.add_plugin(LABEL, (__name__, "_decode_frame"))
                if LABEL in dec._available:  # pydicom tries plugins in insertion order: put this one first
                    first = {LABEL: dec._available.pop(LABEL)}
                    first.update(dec._available)
                    dec._available.clear()
                    dec._available.update(first)
        finally:
            _done = True  # set last: registered() callers skip the lock only once the table is final
        return LABEL in _active()


def _active() -> list[str]:
    from pydicom.pixels.decoders import JPEG2000LosslessDecoder

    return list(JPEG2000LosslessDecoder._available)
