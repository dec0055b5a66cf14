"""Where a request stands, through to the images' arrival, and who acts next (see transfers.progress)."""

from __future__ import annotations

from transfers.progress import Stage, transfer_stage

from .models import PullRequest, RequestStatus


def request_stage(request: PullRequest) -> Stage:
    source = request.source_trust
    if request.status == RequestStatus.PENDING:
        late = " It is overdue: its approvers have been reminded." if request.escalated_at else ""
        return Stage(
            "waiting_approval",
            "Waiting for approval",
            "yellow",
            f"{source.name}: an imaging manager or clinician there approves or declines it.{late}",
        )
    if request.status == RequestStatus.DECLINED:
        return Stage("declined", "Declined", "red", "Nobody: the reason is given on the request.")
    if request.transfer is None:  # approved before transfers were linked; nothing more is known
        return Stage("approved", "Approved", "blue", f"{source.name} approved it.")
    stage = transfer_stage(request.transfer)
    if stage.key in ("queued", "moving"):
        return Stage(stage.key, "Approved, images on their way", "blue", stage.next_step)
    return stage
