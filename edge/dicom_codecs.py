"""Which DICOM transfer syntaxes can be decoded here, and what to install when one cannot.

One decision for every DICOM input of DVT Edge: the C-STORE listener (:mod:`edge.ct.listen`, which syntaxes
to offer), the CT slice reader (:mod:`edge.ct.dicom_series`, before decoding a slice) and the ultrasound cine
source (:mod:`edge.sources.dicom_cine`, at open). Each caller words its own error message; this module only
answers the question, using pydicom's decoder registry (``pydicom.pixels.get_decoder``):

    ts = transfer_syntax(ds)          # the data set's TransferSyntaxUID, or None (no File Meta)
    is_compressed(ts)                 # encapsulated pixel data: a decoder plugin is needed
    d = decodability(ts)              # d.ok, d.known (pydicom has a decoder at all), d.options
    install_hint(ts)                  # the pip packages that decode it ("pylibjpeg pylibjpeg-openjpeg")
    supported_transfer_syntaxes()     # (offered, not offered with what to install): what a listener accepts

pydicom is imported when a function is called, never at import (start-up time of the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decodability:
    """Whether pixel data in transfer syntax ``uid`` can be decoded here."""

    uid: object  # pydicom.uid.UID (``.name`` is its readable name)
    ok: bool  # a decoder plugin is installed and usable
    known: bool  # pydicom has decoders for this syntax at all (False: e.g. MPEG/H.264 video)
    options: tuple[str, ...] = ()  # when not ok: pydicom's missing dependencies, one line per plugin


def transfer_syntax(ds):
    """The data set's TransferSyntaxUID (a pydicom UID), or None when it has no File Meta (pydicom then
    assumes implicit VR little endian, which is uncompressed)."""
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def is_compressed(ts) -> bool:
    """True when pixel data in ``ts`` is encapsulated (compressed): decoding it needs a plugin."""
    return ts is not None and ts.is_compressed


def decodability(ts) -> Decodability:
    """Can pixel data in transfer syntax ``ts`` (a pydicom UID) be decoded here?"""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return Decodability(ts, ok=False, known=False)
    if decoder.is_available:
        return Decodability(ts, ok=True, known=True)
    return Decodability(ts, ok=False, known=True, options=tuple(decoder.missing_dependencies))


def install_hint(ts) -> str:
    """The pip packages that add a decoder for ``ts``: pylibjpeg with its JPEG, JPEG 2000 or RLE plugin."""
    name = ts.name
    if "2000" in name or "HTJ2K" in name:
        return "pylibjpeg pylibjpeg-openjpeg"
    if "RLE" in name:
        return "pylibjpeg pylibjpeg-rle"
    return "pylibjpeg pylibjpeg-libjpeg"


def native_syntaxes() -> list:
    """The uncompressed transfer syntaxes: always decodable."""
    from pydicom import uid

    return [uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian,
            uid.ExplicitVRBigEndian]


def compressed_syntaxes() -> list:
    """The compressed transfer syntaxes a CT archive sends, offered by a listener when decodable here."""
    from pydicom import uid

    return [uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEGLosslessSV1, uid.JPEGLossless, uid.JPEGLSLossless,
            uid.JPEGLSNearLossless, uid.RLELossless, uid.JPEGExtended12Bit]


def supported_transfer_syntaxes() -> tuple[list, list[str]]:
    """(offered, not offered with the reason): uncompressed always; compressed when decodable here."""
    offered, missing = native_syntaxes(), []
    for ts in compressed_syntaxes():
        d = decodability(ts)
        if d.ok:
            offered.append(ts)
        else:
            why = "; ".join(d.options) if d.known else "not supported by pydicom"
            missing.append(f"{ts.name} (install one of: {why})")
    return offered, missing
