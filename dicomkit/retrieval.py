"""The iterator every retrieve returns: instances as they land, then a summary of how it ended."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType

from pydicom import dcmread

from .models import RetrievedInstance, RetrieveSummary


class Retrieval(Iterator[RetrievedInstance]):
    """Iterate to receive instances one at a time; `summary` is complete once iteration ends.

    Closing it early (or leaving a `with` block) cancels the transfer and cleans up.
    """

    def __init__(self, factory: Callable[[RetrieveSummary], Generator[RetrievedInstance, None, None]]) -> None:
        self.summary = RetrieveSummary()
        self._gen = factory(self.summary)

    def __iter__(self) -> Retrieval:
        return self

    def __next__(self) -> RetrievedInstance:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> Retrieval:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def describe(path: Path) -> RetrievedInstance:
    """Identify a landed file from its header (pixel data is not read)."""
    ds = dcmread(
        path,
        stop_before_pixels=True,
        specific_tags=["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"],
    )
    return RetrievedInstance(
        path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "")),
        size=path.stat().st_size,
    )
