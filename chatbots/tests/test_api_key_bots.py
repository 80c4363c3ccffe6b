"""Which bots an API key may use: chatbots owns the limit (``ApiKeyBotLimit``) and the one rule that reads
it (``bots_for_api_key``), behind the API (``bot_ids``), the admin's API key form and every bot surface."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey
from accounts.services import api_key_create
from accounts.tests.factories import make_organization, owner_of
from chatbots.models import ApiKeyBotLimit, Bot
from chatbots.selectors import api_key_may_use_bot, bots_for_api_key
from chatbots.services import api_key_set_bots, bot_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return make_organization(name="Acme")


def _key(organization, bots=None, **options) -> ApiKey:
    api_key = api_key_create(organization=organization, name="test", **options).api_key
    api_key_set_bots(api_key=api_key, bots=bots)
    return api_key


def test_a_limited_key_may_use_only_its_bots(org):
    mine, other = (
        Bot.objects.create(organization=org, name="a"),
        Bot.objects.create(organization=org, name="b"),
    )
    foreign = Bot.objects.create(organization=make_organization(), name="c")
    limited, unlimited = _key(org, bots=[mine]), _key(org)
    assert list(bots_for_api_key(api_key=limited)) == [mine]
    assert set(bots_for_api_key(api_key=unlimited)) == {mine, other}
    assert api_key_may_use_bot(api_key=limited, bot=mine) and not api_key_may_use_bot(
        api_key=limited, bot=other
    )
    assert not api_key_may_use_bot(api_key=unlimited, bot=foreign)


def test_deleting_the_bots_of_a_limited_key_does_not_widen_it(org):
    only = Bot.objects.create(organization=org, name="only")
    later = Bot.objects.create(organization=org, name="later")
    limited = _key(org, bots=[only])
    bot_delete(bot=only)
    assert not bots_for_api_key(api_key=limited).exists()
    assert not api_key_may_use_bot(api_key=limited, bot=later)


def test_a_key_cannot_be_limited_to_another_organizations_bot(org):
    from accounts.exceptions import ApplicationError

    foreign = Bot.objects.create(organization=make_organization(), name="c")
    with pytest.raises(ApplicationError):
        _key(org, bots=[foreign])


def test_owner_creates_a_limited_key_through_the_api(client, org):
    bot = Bot.objects.create(organization=org, name="a")
    client.force_login(owner_of(org))
    response = client.post(
        "/api/v1/api-keys/", {"name": "deploy", "bot_ids": [bot.pk]}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["bot_ids"] == [bot.pk] and response.json()["all_bots"] is False
    api_key = ApiKey.objects.get(name="deploy")
    assert list(bots_for_api_key(api_key=api_key)) == [bot]
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert [(k["bot_ids"], k["all_bots"]) for k in listed] == [([bot.pk], False)]
    own = client.get("/api/v1/organization/", HTTP_AUTHORIZATION=f"Bearer {response.json()['key']}").json()
    assert own["api_key"]["bot_ids"] == [bot.pk]


def test_a_key_without_bot_ids_may_use_every_bot(client, org):
    client.force_login(owner_of(org))
    response = client.post("/api/v1/api-keys/", {"name": "all"}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["bot_ids"] == [] and response.json()["all_bots"] is True
    assert not ApiKeyBotLimit.objects.exists()


def test_a_foreign_bot_id_is_refused_and_no_key_is_made(client, org):
    foreign = Bot.objects.create(organization=make_organization(), name="b")
    client.force_login(owner_of(org))
    response = client.post(
        "/api/v1/api-keys/", {"name": "x", "bot_ids": [foreign.pk]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_a_misspelt_bots_field_is_refused_instead_of_making_a_key_for_every_bot(client, org):
    bot = Bot.objects.create(organization=org, name="a")
    client.force_login(owner_of(org))
    response = client.post(
        "/api/v1/api-keys/", {"name": "x", "bots": [bot.pk]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"bots": ["Unknown field."]}
    assert not ApiKey.objects.exists()


def test_key_list_with_limits_keeps_its_query_count(client, org):
    bots = [Bot.objects.create(organization=org, name=f"b{i}") for i in range(3)]
    client.force_login(owner_of(org))
    client.get("/api/v1/api-keys/")
    counts = []
    for total in (1, 6):
        while ApiKey.objects.count() < total:
            _key(org, bots=bots[: ApiKey.objects.count() % 3 + 1])
        with CaptureQueriesContext(connection) as queries:
            assert len(client.get("/api/v1/api-keys/").json()["results"]) == total
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_owner_limits_a_key_to_bots_in_the_admin_and_a_resave_keeps_the_limit(client, org):
    bot, other = (
        Bot.objects.create(organization=org, name="a"),
        Bot.objects.create(organization=org, name="b"),
    )
    client.force_login(owner_of(org))
    response = client.post("/admin/accounts/apikey/add/", {"name": "Website", "bots": [bot.pk]})
    assert response.status_code == 200, response.content[:2000]
    api_key = ApiKey.objects.get(name="Website")
    assert list(bots_for_api_key(api_key=api_key)) == [bot]
    change = f"/admin/accounts/apikey/{api_key.pk}/change/"
    form = client.get(change).context["adminform"].form
    assert list(form["bots"].initial) == [bot]
    assert set(form.fields["bots"].queryset) == {bot, other}
    bot_delete(bot=bot)  # the key is now limited to no bot at all
    assert client.post(change, {"name": "Website renamed"}).status_code == 302
    assert not bots_for_api_key(api_key=api_key).exists()  # saving did not widen it to every bot
    assert client.post(change, {"name": "Website", "bots": [other.pk]}).status_code == 302
    assert list(bots_for_api_key(api_key=api_key)) == [other]


def test_admin_offers_only_the_organizations_bots(client, org):
    Bot.objects.create(organization=org, name="mine")
    foreign = Bot.objects.create(organization=make_organization(), name="theirs")
    client.force_login(owner_of(org))
    form = client.get("/admin/accounts/apikey/add/").context["adminform"].form
    assert [b.name for b in form.fields["bots"].queryset] == ["mine"]
    response = client.post("/admin/accounts/apikey/add/", {"name": "x", "bots": [foreign.pk]})
    assert response.status_code == 200 and not ApiKey.objects.exists()
