"""The Immich client and the fake server against Immich's own OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbv.errors import ImmichUnavailable
from rbv.immich.client import ImmichAuthError, ImmichClient
from rbv.immich.listing import Listing
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
    assert "IMMICH_API_KEY" in str(caught.value)
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
