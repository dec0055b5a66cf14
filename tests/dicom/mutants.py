"""Bad input for the receiver: pydicom's own test corpus as it is, and seeded mutations of its sound files.

Every file comes out sendable as raw bytes: a file pynetdicom can send as it stands is kept as it stands;
anything else (no File Meta Information, an empty file, a SOP class the receiver does not offer) is wrapped
in a File Meta Information of its own, so that its bytes, whatever they are, reach the receiver as the data
set of a C-STORE. Mutants get a fresh SOP Instance UID of the same length first, so each is judged on its
damage rather than refused as a second version of its original.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AllStoragePresentationContexts

from dicomkit.association import MAX_PDU, new_ae, settle
from dicomkit.structure import file_meta, read_meta

from . import badfiles

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"
# Sound files of the corpus the mutations start from: native, RLE, JPEG, JPEG-LS, JPEG 2000; explicit and
# implicit VR; one with sequences.
BASES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPGExtended.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "rtplan.dcm",
)
_STORAGE = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass(frozen=True)
class BadFile:
    path: Path  # what is sent
    kind: str  # "corpus", "truncated", "bit flip", ...
    origin: str  # the corpus file it came from


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.dcm"))


def sendable(raw: bytes, out: Path, source: Path | None = None) -> Path:
    """`raw` as a file pynetdicom sends as it is, or wrapped so that all of `raw` is the data set."""
    out.write_bytes(raw)
    try:
        meta = read_file_meta_info(out)
        ok = str(meta.MediaStorageSOPClassUID) in _STORAGE and meta.TransferSyntaxUID and read_meta(out) is not None
        ok = ok and bool(str(meta.MediaStorageSOPInstanceUID))
    except Exception:  # noqa: BLE001 - whatever is wrong with its meta, it travels wrapped
        ok = False
    if ok:
        return out
    wrapper = FileMetaDataset()
    wrapper.MediaStorageSOPClassUID = CTImageStorage
    wrapper.MediaStorageSOPInstanceUID = generate_uid()
    wrapper.TransferSyntaxUID = ExplicitVRLittleEndian
    with out.open("wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, wrapper, enforce_standard=True)
        fh.write(raw)
    return out


def _element_lengths(data: bytes, start: int, implicit: bool) -> list[tuple[int, int]]:
    """(offset of the length field, its size in bytes) of top-level elements, until an undefined length."""
    found: list[tuple[int, int]] = []
    at = start
    while at + 8 <= len(data):
        if implicit:
            (length,) = struct.unpack_from("<I", data, at + 4)
            found.append((at + 4, 4))
            head = 8
        elif data[at + 4 : at + 6] in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, at + 8)
            found.append((at + 8, 4))
            head = 12
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            found.append((at + 6, 2))
            head = 8
        if length == 0xFFFFFFFF:
            break
        at += head + length
    return found


def mutants(folder: Path, *, seed: int = 17) -> list[BadFile]:
    """Seeded damage to each base file: truncations, bit flips (anywhere, and in the first compressed
    frame's header), lengths of 0xFFFFFFFF and huge lengths; and empty or nearly empty files."""
    rng = random.Random(seed)
    made: list[BadFile] = []

    def add(raw: bytes, kind: str, origin: str) -> None:
        path = sendable(raw, folder / f"m{len(made):03d}.dcm")
        made.append(BadFile(path, kind, origin))

    for name in BASES:
        source = CORPUS / name
        raw = badfiles.renamed(source.read_bytes(), source)  # a fresh UID: judged on its damage alone
        meta = read_meta(source)
        assert meta is not None, name
        start = meta.dataset_offset
        for _ in range(3):
            add(raw[: rng.randrange(start, len(raw))], "truncated", name)
        for _ in range(4):
            data = bytearray(raw)
            data[rng.randrange(start, len(data))] ^= 1 << rng.randrange(8)
            add(bytes(data), "bit flip", name)
        if meta.transfer_syntax_uid not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
            frame = badfiles.first_frame_at(raw)
            for _ in range(3):
                data = bytearray(raw)
                data[frame + rng.randrange(0, 48)] ^= 1 << rng.randrange(8)
                add(bytes(data), "frame header bit flip", name)
        lengths = _element_lengths(raw, start, implicit=meta.transfer_syntax_uid == "1.2.840.10008.1.2")
        for at, size in rng.sample(lengths, 2):
            data = bytearray(raw)
            data[at : at + size] = b"\xff" * size  # 0xFFFF / 0xFFFFFFFF
            add(bytes(data), "length 0xFFFFFFFF", name)
        for at, size in rng.sample(lengths, 2):
            data = bytearray(raw)
            huge = rng.choice([len(raw) * 1000, 0x7FFFFFF0, 0x10000000]) if size == 4 else rng.choice([0x8000, 0xFFFE])
            data[at : at + size] = huge.to_bytes(size, "little")
            add(bytes(data), "huge length", name)
    for raw, kind in [(b"", "empty"), (b"\x00" * 128 + b"DICM", "preamble only"), (b"\x00" * 7, "seven bytes")]:
        add(raw, kind, "-")
    return made


def corpus(folder: Path) -> list[BadFile]:
    """The corpus as it is (wrapped only where it cannot be sent as it stands)."""
    return [BadFile(sendable(p.read_bytes(), folder / p.name), "corpus", p.name) for p in corpus_files()]


def send_raw(port: int, paths: list[Path], *, called_ae: str, calling_ae: str) -> list[int | None]:
    """C-STORE each file from disk, its data set exactly as it lies in the file: each (SOP class, transfer
    syntax) in a presentation context of its own, so that nothing is ever converted to another syntax.
    Returns the status answered for each file (None: no answer)."""
    metas = [file_meta(p) for p in paths]
    pairs = list(dict.fromkeys((m.sop_class_uid, m.transfer_syntax_uid) for m in metas))
    statuses: dict[Path, int | None] = {}
    for group in range(0, len(pairs), 100):  # at most 128 presentation contexts an association
        wanted = set(pairs[group : group + 100])
        ae = new_ae(calling_ae)
        ae.dimse_timeout = ae.acse_timeout = 120
        for sop_class, syntax in wanted:
            ae.add_requested_context(sop_class, syntax)
        assoc = ae.associate("127.0.0.1", port, ae_title=called_ae, max_pdu=MAX_PDU)
        assert assoc.is_established, "the receiver refused the association"
        try:
            for path, meta in zip(paths, metas, strict=True):
                if (meta.sop_class_uid, meta.transfer_syntax_uid) in wanted:
                    answer = assoc.send_c_store(path)
                    statuses[path] = int(answer.Status) if "Status" in answer else None
                    settle(assoc)
        finally:
            assoc.release()
    return [statuses.get(p) for p in paths]


def wire_sha256(path: Path) -> str:
    """sha256 of the bytes `send_raw` puts on the wire as the data set: everything after the File Meta
    Information as pynetdicom finds its end (a tail shorter than one element header it does not send)."""
    from pynetdicom.dsutils import split_dataset

    return hashlib.sha256(path.read_bytes()[split_dataset(path)[1] :]).hexdigest()
