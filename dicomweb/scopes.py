"""Who is asking the DICOMweb endpoint, and over what (docs/dicomweb.md).

A scope is the staged copies a caller may read, the URL root they see, and how their views go on the
audit trail. Two kinds:

* a consultant's: a share link's staged copy, by the link session's cookie or a bearer token minted by
  that session; every request re-reads the token, session and link (sharing.access, sharing.capabilities);
* a member of staff's: the copies of their own trust's studies made for viewing (dicomweb.staff), by the
  signed-in session, re-checking on every request that they may still search that trust's PACS.

Nothing outside the scope answers: a study, series or instance not in it is 404, the same as one that
does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.http import HttpRequest
from pydicom import Dataset

from accounts import permissions as perms
from audit import catalogue
from audit.context import actor_from_request
from dicomkit import webindex
from dicomkit.identity import nhs_number_of
from directory.models import Trust
from exchange import viewing
from sharing import access, capabilities
from sharing.access import Denied
from sharing.models import ShareLink, ShareSession
from sharing.staging import share_dir

SERIES_SEEN_KEY = "viewed_series"  # the staff viewer's key too: one 110103 per series per session for both


@dataclass
class Scope:
    root: str
    folders: list[Path]
    note_series: Callable[[webindex.Entry], None]
    studies: set[str] | None = None  # None: whatever the folders hold
    link: ShareLink | None = None
    session: ShareSession | None = None
    _indexes: list[webindex.Index] | None = field(default=None, repr=False)

    def indexes(self) -> list[webindex.Index]:
        if self._indexes is None:
            self._indexes = [webindex.load(f) for f in self.folders if f.is_dir()]
        return self._indexes

    def entries(self, study: str | None = None, series: str | None = None) -> list[webindex.Entry]:
        found = []
        for index in self.indexes():
            found += [e for e in index.instances(study, series) if self.studies is None or e.study in self.studies]
        return found

    def located(self, sop: str) -> tuple[webindex.Index, webindex.Entry] | None:
        for index in self.indexes():
            entry = index.entries.get(sop)
            if entry is not None and (self.studies is None or entry.study in self.studies):
                return index, entry
        return None

    @property
    def may_write(self) -> bool:
        return self.link is not None and self.link.allow_write_back


def link_scope(request: HttpRequest, root: str) -> Scope:
    """The share link's scope, by bearer token or the link session's cookie. Raises Denied."""
    key = capabilities.bearer_of(request)
    session = capabilities.session_for_bearer(request, key) if key is not None else access.require_session(request)
    link = session.link

    def note(entry: webindex.Entry) -> None:
        access.note_series(request, session, entry.study, entry.series)

    return Scope(
        root=root,
        folders=[share_dir(link.pk)],
        note_series=note,
        studies=set(link.study_instance_uids),
        link=link,
        session=session,
    )


def staff_scope(request: HttpRequest, root: str, ods_code: str) -> Scope:
    """A member of staff's scope at a trust whose PACS they may search. Raises Denied."""
    user = request.user
    if not user.is_authenticated:
        raise Denied(401, "Sign in", "Sign in to the portal to view these images.")
    trust = Trust.objects.filter(ods_code=ods_code, pk__in=perms.study_search_trust_ids(user)).first()
    if trust is None:
        raise Denied(404, "Not found", "No such trust, or you may not search its PACS.")

    def note(entry: webindex.Entry) -> None:
        _note_staff_series(request, trust, entry)

    return Scope(root=root, folders=viewing.ready_folders(trust), note_series=note)


def _note_staff_series(request: HttpRequest, trust: Trust, entry: webindex.Entry) -> None:
    key = f"{trust.ods_code}:{entry.series}"
    seen = request.session.get(SERIES_SEEN_KEY, [])
    if key in seen:
        return
    patient = Dataset.from_json(
        {t: entry.metadata[t] for t in ("00100020", "00100021", "00101002") if t in entry.metadata}
    )
    with transaction.atomic():
        catalogue.SERIES_VIEWED.record(
            actor=actor_from_request(request),
            trust=trust.ods_code,
            study_uids=[entry.study],
            nhs_number=nhs_number_of(patient),
            patient_id=str(patient.get("PatientID", "")),
            detail={"view": "dicomweb", "series_uid": entry.series},
        )
    request.session[SERIES_SEEN_KEY] = [*seen[-500:], key]
