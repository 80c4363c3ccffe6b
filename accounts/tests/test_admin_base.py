from __future__ import annotations

import pytest
from django.contrib import admin
from django.http import Http404

from accounts.admin_base import TenantScopedAdmin, scope_queryset
from accounts.models import Membership, User
from accounts.tests.factories import make_user
from chatbots.models import Bot
from chatbots.tests.factories import make_bot, make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot_admin():
    return TenantScopedAdmin(Bot, admin.site)


@pytest.fixture
def bots(org_a, org_b):
    return make_bot(organization=org_a, name="A bot"), make_bot(organization=org_b, name="B bot")


def test_member_sees_only_active_organization_rows(bot_admin, bots, member_a, make_request):
    assert list(bot_admin.get_queryset(make_request(member_a))) == [bots[0]]


def test_user_without_organization_sees_nothing(bot_admin, bots, make_request):
    assert not bot_admin.get_queryset(make_request(make_user())).exists()


def test_superuser_sees_every_organization(bot_admin, bots, make_request):
    operator = User.objects.create_superuser(email="op@example.com", password="x" * 12)
    assert set(bot_admin.get_queryset(make_request(operator))) == set(bots)


def test_other_organization_object_id_is_not_found(bot_admin, bots, owner_a, make_request):
    with pytest.raises(Http404):
        bot_admin.get_object(make_request(owner_a), str(bots[1].pk))
    assert bot_admin.get_object(make_request(owner_a), str(bots[0].pk)) == bots[0]


def test_active_organization_follows_the_session(bot_admin, bots, owner_a, org_b, make_request):
    Membership.objects.create(user=owner_a, organization=org_b, role="member")
    request = make_request(owner_a)
    request.session["parlor_active_organization_id"] = org_b.pk
    assert list(bot_admin.get_queryset(request)) == [bots[1]]


def test_forged_session_organization_is_ignored(bot_admin, bots, owner_a, org_b, make_request):
    request = make_request(owner_a)
    request.session["parlor_active_organization_id"] = org_b.pk  # not a member of B
    assert list(bot_admin.get_queryset(request)) == [bots[0]]


def test_roles_decide_write_permissions(bot_admin, owner_a, admin_a, member_a, make_request):
    for user, can_write in ((owner_a, True), (admin_a, True), (member_a, False)):
        request = make_request(user)
        assert bot_admin.has_view_permission(request)
        assert bot_admin.has_add_permission(request) is can_write
        assert bot_admin.has_change_permission(request) is can_write
        assert bot_admin.has_delete_permission(request) is can_write


def test_outsider_has_no_permissions(bot_admin, make_request):
    request = make_request(make_user())
    assert not bot_admin.has_view_permission(request)
    assert not bot_admin.has_module_permission(request)


def test_organization_field_is_hidden_and_set_on_save(owner_a, org_a, make_request):
    from accounts.models import ApiKey

    model_admin = TenantScopedAdmin(ApiKey, admin.site)
    request = make_request(owner_a, "post")
    form_class = model_admin.get_form(request)
    assert "organization" not in form_class.base_fields
    form = form_class(data={"name": "New"})
    assert form.is_valid(), form.errors
    obj = form.save(commit=False)
    model_admin.save_model(request, obj, form, change=False)
    assert ApiKey.objects.get(pk=obj.pk).organization == org_a


def test_superuser_chooses_the_organization(bot_admin, make_request):
    operator = User.objects.create_superuser(email="op@example.com", password="x" * 12)
    assert "organization" in bot_admin.get_form(make_request(operator)).base_fields


def test_user_choices_are_limited_to_members(org_a, org_b, owner_a, member_a):
    others = set(scope_queryset(User.objects.all(), org_a))
    assert others == {owner_a, member_a}
    assert not scope_queryset(User.objects.all(), org_a).filter(memberships__organization=org_b).exists()


class _ConversationAdmin(TenantScopedAdmin):
    list_filter = ["bot", "channel"]


def test_foreign_key_choices_are_limited_to_the_organization(bots, owner_a, make_request):
    from chatbots.models import Conversation

    model_admin = _ConversationAdmin(Conversation, admin.site)
    field = model_admin.formfield_for_foreignkey(Conversation._meta.get_field("bot"), make_request(owner_a))
    assert list(field.queryset) == [bots[0]]


def test_relation_list_filters_only_offer_values_of_the_organization(owner_a, make_request):
    from django.contrib.admin import RelatedOnlyFieldListFilter

    from chatbots.models import Conversation

    filters = _ConversationAdmin(Conversation, admin.site).get_list_filter(make_request(owner_a))
    assert filters == [("bot", RelatedOnlyFieldListFilter), "channel"]


def test_inline_choices_and_rights_follow_the_organization(bots, owner_a, member_a, make_request):
    from accounts.admin_base import TenantScopedTabularInline
    from chatbots.models import Conversation, Message

    class MessageInline(TenantScopedTabularInline):
        model = Message

    inline = MessageInline(Conversation, admin.site)
    field = inline.formfield_for_foreignkey(Message._meta.get_field("conversation"), make_request(owner_a))
    assert not field.queryset.filter(organization=bots[1].organization).exists()
    assert inline.has_add_permission(make_request(owner_a))
    assert not inline.has_add_permission(make_request(member_a))
    assert inline.has_view_permission(make_request(member_a))


def test_tenant_path_scopes_models_without_a_direct_organization(bots, owner_a, make_request):
    from chatbots.models import Conversation

    class ConversationByBotAdmin(TenantScopedAdmin):
        tenant_path = "bot__organization"

    mine = make_conversation(bot=bots[0])
    make_conversation(bot=bots[1])
    model_admin = ConversationByBotAdmin(Conversation, admin.site)
    assert list(model_admin.get_queryset(make_request(owner_a))) == [mine]
    assert not model_admin.sets_organization()
