from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from chatbots.tests.factories import make_bot

pytestmark = pytest.mark.django_db
URL = "/api/v1/organization/"


def _get(client, key: str | None = None, method: str = "get"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key is not None else {}
    return getattr(client, method)(URL, **headers)


def test_key_is_prefixed_and_only_its_hash_is_stored(org_a):
    issued = api_key_create(organization=org_a, name="CI")
    assert issued.key.startswith(issued.api_key.prefix + "_")
    assert issued.api_key.prefix.startswith("prl_")
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.key not in (stored.key_hash, stored.prefix)
    assert len(stored.key_hash) == 64


def test_valid_key_authenticates_as_its_organization(client, org_a):
    issued = api_key_create(organization=org_a, name="CI", read_only=True)
    response = _get(client, issued.key)
    assert response.status_code == 200
    assert response.json()["id"] == org_a.pk
    assert response.json()["api_key"]["prefix"] == issued.api_key.prefix


def test_use_is_recorded(client, org_a):
    issued = api_key_create(organization=org_a, name="CI")
    assert issued.api_key.last_used_at is None
    _get(client, issued.key)
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("prl_unknown1_" + "x" * 40, "invalid_api_key"),
        ("garbage", "invalid_api_key"),
    ],
)
def test_unknown_key_gets_401_json(client, org_a, key, code):
    response = _get(client, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_missing_credentials_get_401_json(client):
    response = _get(client)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_revoked_key_gets_401(client, org_a):
    issued = api_key_create(organization=org_a, name="CI")
    api_key_revoke(api_key=issued.api_key)
    response = _get(client, issued.key)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "api_key_revoked",
        "message": "This API key has been revoked.",
    }


def test_expired_key_gets_401(client, org_a):
    issued = api_key_create(organization=org_a, name="CI", expires_at=timezone.now() - timedelta(seconds=1))
    response = _get(client, issued.key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_expired"


def test_tampered_secret_with_a_real_prefix_is_rejected(client, org_a):
    issued = api_key_create(organization=org_a, name="CI")
    assert _get(client, issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")).status_code == 401


def test_read_only_key_cannot_write(client, org_a):
    issued = api_key_create(organization=org_a, name="CI", read_only=True)
    response = _get(client, issued.key, method="post")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This API key is read-only."


def test_bot_limited_key_allows_only_its_bots(org_a, org_b):
    mine, other = (
        make_bot(organization=org_a, name="a"),
        make_bot(organization=org_a, name="b"),
    )
    foreign = make_bot(organization=org_b, name="c")
    limited = api_key_create(organization=org_a, name="limited", bot_ids=[mine.pk]).api_key
    unlimited = api_key_create(organization=org_a, name="all").api_key
    assert limited.allows_bot(mine) and not limited.allows_bot(other)
    assert unlimited.allows_bot(mine) and unlimited.allows_bot(other)
    assert not unlimited.allows_bot(foreign)


def test_session_member_sees_active_organization_and_role(client, org_a, member_a):
    client.force_login(member_a)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == {**response.json(), "id": org_a.pk, "role": "member"}


def test_admin_shows_the_full_key_once(client, org_a, owner_a):
    client.force_login(owner_a)
    response = client.post("/admin/accounts/apikey/add/", {"name": "Website", "read_only": "on"})
    assert response.status_code == 200
    api_key = ApiKey.objects.get(organization=org_a, name="Website")
    key = response.context["plain_key"]
    assert key.startswith(api_key.prefix) and key.encode() in response.content
    assert api_key.read_only and api_key.created_by == owner_a
    # never again: neither the list nor the change page contains it
    assert key.encode() not in client.get("/admin/accounts/apikey/").content
    assert key.encode() not in client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_member_cannot_create_api_keys_in_the_admin(client, member_a):
    client.force_login(member_a)
    assert client.post("/admin/accounts/apikey/add/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_revoke_action_revokes_keys(client, org_a, owner_a):
    issued = api_key_create(organization=org_a, name="CI")
    client.force_login(owner_a)
    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [issued.api_key.pk]})
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None


def test_owner_creates_a_key_through_the_api_and_sees_it_once(client, org_a, owner_a):
    bot = make_bot(organization=org_a, name="a")
    client.force_login(owner_a)
    response = client.post(
        "/api/v1/api-keys/",
        {"name": "deploy", "read_only": True, "bot_ids": [bot.pk]},
        content_type="application/json",
    )
    assert response.status_code == 201
    key = response.json()["key"]
    assert response.json()["bot_ids"] == [bot.pk]
    listing = client.get("/api/v1/api-keys/")
    assert listing.status_code == 200
    assert key not in listing.content.decode()
    assert [k["name"] for k in listing.json()["results"]] == ["deploy"]
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_api_key_cannot_use_a_foreign_bot(client, org_a, org_b, owner_a):
    foreign = make_bot(organization=org_b, name="b")
    client.force_login(owner_a)
    response = client.post(
        "/api/v1/api-keys/", {"name": "x", "bot_ids": [foreign.pk]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_owner_revokes_a_key_through_the_api(client, org_a, owner_a):
    issued = api_key_create(organization=org_a, name="CI")
    client.force_login(owner_a)
    response = client.post(f"/api/v1/api-keys/{issued.api_key.prefix}/revoke/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert _get(client, issued.key).status_code == 401


def test_outsider_cannot_revoke_another_organizations_key(client, org_a, org_b):
    from accounts.tests.factories import owner_of

    issued = api_key_create(organization=org_a, name="CI")
    client.force_login(owner_of(org_b))
    assert client.post(f"/api/v1/api-keys/{issued.api_key.prefix}/revoke/").status_code == 404
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is None


def test_members_and_api_keys_cannot_manage_keys(client, org_a, member_a):
    key = api_key_create(organization=org_a, name="CI").key
    assert client.get("/api/v1/api-keys/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 403
    client.force_login(member_a)
    assert client.get("/api/v1/api-keys/").status_code == 403
    assert client.post("/api/v1/api-keys/", {"name": "x"}, content_type="application/json").status_code == 403


def test_api_key_list_query_count_does_not_grow(client, org_a, owner_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(owner_a)
    client.get("/api/v1/api-keys/")  # warm up: the first request also stores the active organization
    counts = []
    for total in (1, 6):
        while ApiKey.objects.count() < total:
            api_key_create(organization=org_a, name=f"k{ApiKey.objects.count()}")
        with CaptureQueriesContext(connection) as queries:
            assert len(client.get("/api/v1/api-keys/").json()["results"]) == total
        counts.append(len(queries))
    assert counts[0] == counts[1]
