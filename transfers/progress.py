"""Where a transfer (and the request behind it) stands, in words a clinician uses, and who acts next.

The statuses in transfers.models are the engine's; these are what the pages, the home page and the
progress script show. One place, so a list, a detail page and the home page never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Status, Transfer


@dataclass(frozen=True)
class Stage:
    key: str  # stable, for tests and CSS: waiting_approval, declined, queued, moving, matching, arrived, ...
    label: str  # a few words, shown as a tag
    colour: str  # an NHS.UK tag colour: blue, green, yellow, orange, red, grey, white, purple
    next_step: str  # who acts next, or that nobody needs to

    @property
    def finished(self) -> bool:
        return self.key in ("arrived", "arrived_with_gaps", "failed", "cancelled", "declined")

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "next_step": self.next_step}


def transfer_stage(transfer: Transfer) -> Stage:
    source, destination = transfer.source, transfer.destination
    status = transfer.status
    if status == Status.QUEUED:
        return Stage(
            "queued",
            "Waiting to start",
            "blue",
            f"Nobody: the portal starts as soon as {source.ods_code}'s and {destination.ods_code}'s PACS have room.",
        )
    if status in (Status.RETRIEVING, Status.SENDING, Status.VERIFYING):
        return Stage("moving", "On its way", "blue", "Nobody: the portal is copying the images and checking them.")
    if status == Status.AWAITING_RECONCILIATION:
        return Stage(
            "matching",
            "Arrived, being matched to a patient",
            "yellow",
            f"An imaging manager at {destination.name} matches the images to a local patient; "
            "they are then filed in its PACS.",
        )
    if status == Status.COMPLETED:
        return Stage("arrived", "Arrived", "green", f"Nobody: the images are in {destination.name}'s PACS.")
    if status == Status.COMPLETED_WITH_ERRORS:
        return Stage(
            "arrived_with_gaps",
            "Arrived with gaps",
            "orange",
            "Some images did not arrive (listed below): whoever asked, or an imaging manager, can retry them.",
        )
    if status == Status.FAILED:
        return Stage(
            "failed",
            "Failed",
            "red",
            "Nothing arrived: whoever asked, or an imaging manager, can retry once the reason below is dealt with.",
        )
    return Stage("cancelled", "Cancelled", "grey", "Nobody: the transfer was stopped.")
