"""Issue #21 acceptance: dicomweb-client (PyPI, a client nobody here wrote) reads a staged study through a
share link's bearer token: searches, metadata, frames and whole instances, byte for byte the staged files;
nothing outside the link answers; after revocation the next call gets 410 and no data."""

from __future__ import annotations

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from sharing import services, staging

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(live_server, token: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {token}"})


def status_of(call) -> int:
    with pytest.raises(HTTPError) as raised:
        call()
    return raised.value.response.status_code


def test_dicomweb_client_reads_the_staged_study_byte_for_byte(live_server, ready_link, bearer, ct_files):
    client = client_for(live_server, bearer)
    folder = staging.share_dir(ready_link.link.pk)
    study_uid = ready_link.link.study_instance_uids[0]

    (study,) = client.search_for_studies()
    assert study["0020000D"]["Value"] == [study_uid]
    assert study["00201208"]["Value"] == [len(ct_files)]
    (series,) = client.search_for_series(study_uid)
    series_uid = series["0020000E"]["Value"][0]
    instances = client.search_for_instances(study_uid, series_uid, fields=["ImagePositionPatient"])
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(p.stem for p in ct_files)
    assert all("00200032" in i for i in instances)  # includefield

    metadata = client.retrieve_study_metadata(study_uid)
    assert len(metadata) == len(ct_files)
    for item in metadata:
        staged = pydicom.dcmread(folder / f"{item['00080018']['Value'][0]}.dcm")
        assert item["00100020"]["Value"] == [staged.PatientID]
        assert item["00280010"]["Value"] == [staged.Rows]
        assert "BulkDataURI" in item["7FE00010"]

    for path in ct_files[:3]:
        staged = pydicom.dcmread(folder / path.name)
        (frame,) = client.retrieve_instance_frames(study_uid, series_uid, path.stem, frame_numbers=[1])
        assert frame == staged.PixelData
        instance = client.retrieve_instance(study_uid, series_uid, path.stem)
        assert instance.SOPInstanceUID == path.stem and instance.PixelData == staged.PixelData
        # The whole instance as sent, part for part, through the client's own multipart reading.
        url = f"{live_server.url}/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{path.stem}"
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        response = client._http_get(url, headers={"Accept": accept})
        (sent,) = client._decode_multipart_message(response, stream=False)
        assert sent == (folder / path.name).read_bytes()


def test_nothing_outside_the_link_answers(live_server, ready_link, bearer, ct_files):
    client = client_for(live_server, bearer)
    study_uid = ready_link.link.study_instance_uids[0]
    (series,) = client.search_for_series(study_uid)
    series_uid = series["0020000E"]["Value"][0]
    assert status_of(lambda: client.retrieve_study_metadata("1.2.3.4.5")) == 404
    assert status_of(lambda: client.search_for_series("1.2.3.4.5")) == 404
    assert status_of(lambda: client.retrieve_instance(study_uid, series_uid, "1.2.3.4.5")) == 404
    assert status_of(lambda: client.retrieve_instance(study_uid, "1.2.3.4.6", ct_files[0].stem)) == 404
    assert client.search_for_studies(search_filters={"StudyInstanceUID": "1.2.3.4.5"}) == []


def test_after_revocation_the_next_call_gets_410_and_no_data(live_server, ready_link, bearer, alice, ct_files):
    client = client_for(live_server, bearer)
    study_uid = ready_link.link.study_instance_uids[0]
    assert client.search_for_studies()
    services.share_link_revoke(link=ready_link.link, user=alice)

    with pytest.raises(HTTPError) as raised:
        client.retrieve_study_metadata(study_uid)
    assert raised.value.response.status_code == 410
    assert study_uid.encode() not in raised.value.response.content
    assert status_of(client.search_for_studies) == 410


def test_an_unknown_or_made_up_token_gets_401(live_server, ready_link):
    assert status_of(client_for(live_server, "A" * 43).search_for_studies) == 401
    assert status_of(DICOMwebClient(url=f"{live_server.url}/dicomweb").search_for_studies) == 404
