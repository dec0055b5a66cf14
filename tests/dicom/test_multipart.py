from __future__ import annotations

import random
from pathlib import Path

import pytest

from dicomkit.errors import ProtocolError
from dicomkit.multipart import MultipartBody, boundary_of, iter_events


def _parts(chunks: list[bytes], boundary: str) -> list[tuple[dict[str, str], bytes]]:
    parts: list[tuple[dict[str, str], bytes]] = []
    for kind, value in iter_events(chunks, boundary):
        if kind == "headers":
            parts.append((value, b""))  # type: ignore[arg-type]
        elif kind == "data":
            parts[-1] = (parts[-1][0], parts[-1][1] + value)  # type: ignore[operator]
    return parts


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        step = rng.randint(1, 40)
        chunks.append(data[at : at + step])
        at += step
    return chunks


def test_parts_survive_any_chunking(tmp_path: Path) -> None:
    bodies = [b"DICM" + bytes(range(256)) * 3, b"\r\n--almost-a-boundary\r\n", b""]
    files = []
    for i, body in enumerate(bodies):
        files.append(tmp_path / f"{i}.dcm")
        files[-1].write_bytes(body)
    stream = MultipartBody(files)
    data = b"preamble to ignore\r\n" + b"".join(stream)
    for seed in range(20):
        parts = _parts(_split(data, random.Random(seed)), stream.boundary)
        assert [p[1] for p in parts] == bodies
        assert all(p[0]["content-type"] == "application/dicom" for p in parts)


def test_body_length_is_known_in_advance(tmp_path: Path) -> None:
    path = tmp_path / "a.dcm"
    path.write_bytes(b"x" * 2_500_000)  # more than one chunk
    body = MultipartBody([path, path])
    produced = b"".join(body)
    assert len(produced) == len(body)


def test_a_cut_off_answer_is_an_error() -> None:
    data = b"--b\r\nContent-Type: application/dicom\r\n\r\nhalf of a fi"
    with pytest.raises(ProtocolError, match="ended before its closing boundary"):
        list(iter_events([data], "b"))


def test_boundary_may_be_quoted() -> None:
    assert boundary_of('multipart/related; type="application/dicom"; boundary="a b"') == "a b"
    assert boundary_of("multipart/related; boundary=xyz; type=application/dicom") == "xyz"


def test_a_non_multipart_answer_is_refused() -> None:
    with pytest.raises(ProtocolError, match="expected a multipart answer"):
        boundary_of("application/json")


def test_qido_values_keep_wildcards_literal_and_loosen_the_rest() -> None:
    from dicomkit.dicomweb import qido_query_string

    query, loosened = qido_query_string([("00100010", "Ó S*"), ("00100020", "RXH?"), ("includefield", "00101000")])
    assert query == "00100010=*S*&00100020=RXH?&includefield=00101000"
    assert loosened == [("00100010", "Ó S*")]
