"""What the portal's two DICOM listeners (receiver, simulated PACS) share: stopping and `with` blocks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Self

from pynetdicom.transport import ThreadedAssociationServer


class ListenerLifecycle(ABC):
    """Subclasses set `self._server` in `start()` and hold an `index` that must be closed on stop."""

    _server: ThreadedAssociationServer | None
    index: Any

    @abstractmethod
    def start(self) -> Self:
        """Build the AE with this listener's handlers and start serving."""

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.index.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
