"""Transfer syntaxes we propose and accept, and decompression for peers that take no compression."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from .errors import InvalidInstance

UNCOMPRESSED: tuple[UID, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
COMPRESSED: tuple[UID, ...] = (
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
LOSSLESS_COMPRESSED: tuple[UID, ...] = (
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
)
LOSSY_COMPRESSED: tuple[UID, ...] = tuple(ts for ts in COMPRESSED if ts not in LOSSLESS_COMPRESSED)
# What a receiver takes, in the order it prefers when a sender offers several in one context
# (pynetdicom lets the acceptor's order win). It stores bytes as they come, so it need not decode
# them. Lossless compression first: the sender most likely holds it so and nothing can be lost;
# lossy only after uncompressed, so we never make a sender throw information away.
ACCEPTED: tuple[UID, ...] = (
    *LOSSLESS_COMPRESSED,
    *UNCOMPRESSED,
    *LOSSY_COMPRESSED,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)

# pynetdicom's status for a C-STORE we could not turn into something the peer accepts.
CANNOT_CONVERT = 0xA900


def is_uncompressed(transfer_syntax: str) -> bool:
    uid = UID(transfer_syntax)
    return uid.is_transfer_syntax and not uid.is_compressed


def decompressed(path: Path | str) -> Dataset:
    """The instance at `path` with its pixel data decoded to Explicit VR Little Endian.

    Holds one instance in memory. Raises InvalidInstance when no installed decoder can read it.
    """
    ds = dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    if not UID(ts).is_compressed:
        return ds
    try:
        # Decoding loses nothing, so the instance keeps its identity: pydicom would mint a new
        # SOP Instance UID by default, which would turn a transfer into a different image.
        ds.decompress(generate_instance_uid=False)
    except Exception as exc:  # decoders raise many types; all mean "cannot convert"
        raise InvalidInstance(
            f"cannot decompress {UID(ts).name} pixel data for a destination that does not accept it: {exc}",
            CANNOT_CONVERT,
        ) from exc
    return ds


def storage_proposal(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Presentation contexts to send instances of these (SOP class, transfer syntax) pairs.

    Per SOP class: one context per stored syntax other than plain little endian, plus one offering
    Explicit and Implicit VR Little Endian. Separate contexts let the peer accept the compressed
    syntax and still leave us the uncompressed fall-back; one context listing both would let the
    peer pick one and we could not prefer either.
    """
    contexts: dict[tuple[str, tuple[str, ...]], None] = {}
    for sop_class, syntax in pairs:
        if syntax not in UNCOMPRESSED:
            contexts[(sop_class, (syntax,))] = None
        contexts[(sop_class, (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)))] = None
    return [(abstract, list(syntaxes)) for abstract, syntaxes in contexts]


def transfer_syntax_name(uid: str) -> str:
    return UID(uid).name if uid else "unknown transfer syntax"
