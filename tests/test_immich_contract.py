"""The Immich client and the fake server against Immich's own OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbv.errors import ImmichError, ImmichUnavailable
from rbv.immich.client import MAX_ERROR_CHARS, ImmichAuthError, ImmichClient, error_line
from rbv.immich.listing import Listing
from rbv.immich.people import ImmichPeopleClient
from tests.conftest import IMMICH_KEY

OPERATIONS = {
    "getServerVersion": ("/server/version", "get"),
    "searchAssets": ("/search/metadata", "post"),
    "getFaces": ("/faces", "get"),
    "getMyUser": ("/users/me", "get"),
    "getAssetStatistics": ("/assets/statistics", "get"),
}


def test_requests_and_responses_match_the_openapi_document(fake_immich, immich_spec,
                                                           tmp_path: Path) -> None:
    with ImmichClient(fake_immich.url, IMMICH_KEY, retry_wait_s=0.01) as client:
        assert client.server_version() == "1.132.3"
        assert client.check_key() == "admin@example.org"
        assert client.image_count() == len(fake_immich.assets)
        listing = Listing(client, page_size=100)
        pages = list(listing.pages())
        first = pages[0][0]
        client.faces(first.id)
        got = client.download_original(first.id, tmp_path / "x.part")
    assert sum(len(p) for p in pages) == listing.count == len(fake_immich.assets)
    assert listing.exact
    assert got.path.read_bytes() == fake_immich.assets[first.id].data
    # What the client sent is a valid MetadataSearchDto...
    request = immich_spec.request_schema("/search/metadata", "post")
    assert fake_immich.search_bodies
    for body in fake_immich.search_bodies:
        assert immich_spec.errors(body, request) == []
    # ...and what the fake answered is what Immich documents.
    seen = set()
    for operation, body in fake_immich.responses:
        schema = immich_spec.response_schema(*OPERATIONS[operation])
        assert immich_spec.errors(body, schema) == [], operation
        seen.add(operation)
    assert seen == set(OPERATIONS)


def test_the_validator_catches_a_wrong_shape(immich_spec) -> None:
    schema = immich_spec.response_schema("/faces", "get")
    wrong = [{"boundingBoxX1": "12", "id": "not-a-uuid"}]
    problems = immich_spec.errors(wrong, schema)
    assert any("boundingBoxX1" in p for p in problems)
    assert any("missing imageWidth" in p for p in problems)
    assert any("not a uuid" in p for p in problems)


def test_server_rejects_what_immich_rejects(fake_immich) -> None:
    import httpx

    with httpx.Client(base_url=fake_immich.url + "/api",
                      headers={"x-api-key": IMMICH_KEY}) as http:
        assert http.post("/search/metadata", json={"size": 5000}).status_code == 400
        assert http.post("/search/metadata", json={"bogus": 1}).status_code == 400
        assert http.get("/faces", params={"id": "../etc"}).status_code == 400
        assert http.get("/faces", params={"id": next(iter(fake_immich.assets))},
                        headers={"x-api-key": "wrong"}).status_code == 401


def test_bad_key_is_an_auth_error_without_the_key(fake_immich) -> None:
    with ImmichClient(fake_immich.url, "wrong-" + IMMICH_KEY) as client,\
            pytest.raises(ImmichAuthError) as caught:
        client.check_key()
    assert str(caught.value) == (f"the Immich server at {fake_immich.url} refused the API "
                                 "key: HTTP 401: Invalid API key; check IMMICH_API_KEY")
    assert IMMICH_KEY not in str(caught.value)


def test_unreachable_server_is_unavailable(fake_immich) -> None:
    fake_immich.stop()
    with ImmichClient(fake_immich.url, IMMICH_KEY, retry_wait_s=0.01) as client,\
            pytest.raises(ImmichUnavailable) as caught:
        client.server_version()
    assert ImmichUnavailable.exit_code == 2
    assert fake_immich.url in str(caught.value)


def test_a_server_that_pages_in_a_loop_is_an_error_not_a_hang(fake_immich) -> None:
    from rbv.errors import ImmichError

    fake_immich.faults.stuck_paging = True
    with ImmichClient(fake_immich.url, IMMICH_KEY) as client,\
            pytest.raises(ImmichError, match="nextPage 1 after 1"):
        list(client.search_images(1, 50))
    assert len(fake_immich.search_bodies) == 1


def test_an_error_answer_says_what_the_server_said(fake_immich) -> None:
    with ImmichClient(fake_immich.url, IMMICH_KEY, retry_wait_s=0.01) as client, \
            pytest.raises(ImmichError) as caught:
        client.faces("not-a-uuid")
    assert str(caught.value) == "GET /faces: HTTP 400: id must be a UUID"


@pytest.mark.parametrize(("body", "correlation", "line"), [
    # v3: only "message", the correlation id in the X-Correlation-ID header
    ({"message": "Not found or no person.update access"}, "k2x9",
     "HTTP 400: Not found or no person.update access (correlation id k2x9)"),
    ({"message": "Validation failed", "errors": [
        {"origin": "string", "code": "invalid_format", "format": "uuid", "path": ["id"],
         "message": "Invalid UUID"},
        {"code": "too_big", "path": ["size"], "message": "Too big"}]}, "c1",
     "HTTP 400: Validation failed: id: Invalid UUID; size: Too big (correlation id c1)"),
    # v1/v2: a string or a list of them, "error", "statusCode", "correlationId" in the body
    ({"message": ["id must be a UUID", "size must not be greater than 1000"],
      "error": "Bad Request", "statusCode": 400, "correlationId": "ab12"}, None,
     "HTTP 400: id must be a UUID; size must not be greater than 1000 (correlation id ab12)"),
    (None, None, "HTTP 400"),  # no JSON body (a proxy's page)
    ({"message": "two\nlines"}, None, "HTTP 400: two\\nlines"),  # one line, always
])
def test_both_error_shapes_become_one_line(body, correlation, line) -> None:
    assert error_line(400, body, correlation) == line


def test_a_long_error_list_is_cut_short() -> None:
    body = {"message": "Validation failed",
            "errors": [{"path": [f"f{n}"], "message": "x" * 200} for n in range(50)]}
    line = error_line(400, body)
    assert "and 45 more" in line or line.endswith("…")
    assert len(line) <= MAX_ERROR_CHARS


@pytest.mark.parametrize(("version", "update", "jobs"), [
    ({"major": 3, "minor": 1, "patch": 0, "prerelease": None}, "PATCH", "GET /queues"),
    ({"major": 1, "minor": 135, "patch": 3}, "PUT", "GET /jobs"),
])
def test_updates_and_job_counts_use_what_the_servers_version_offers(
        fake_immich, version, update, jobs) -> None:
    fake_immich.version = version
    fake_immich.queued_jobs = 3
    person = fake_immich.add_person("")
    with ImmichPeopleClient(fake_immich.url, IMMICH_KEY, retry_wait_s=0.01) as client:
        client.server_version()
        client.name_person(person, "Ada")
        assert client.queued_detection_jobs() == 3
        with pytest.raises(ImmichError) as caught:
            client.name_person("7b0e7a4e-0000-4000-8000-000000000000", "Nobody")

    assert fake_immich.people[person]["name"] == "Ada"
    assert fake_immich.methods[f"{update} /people/{{id}}"] == 2
    assert fake_immich.methods[jobs] == 1
    assert set(fake_immich.methods) & {"GET /queues", "GET /jobs"} == {jobs}
    correlation = " (correlation id fake-correlation)" if update == "PATCH" else ""
    assert str(caught.value) == (f"{update} /people/7b0e7a4e-0000-4000-8000-000000000000: "
                                 f"HTTP 400: Not found or no person.read access{correlation}")
