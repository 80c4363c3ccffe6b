from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tests.factories import make_organization, make_user

pytestmark = pytest.mark.django_db


def test_front_page_says_what_parlor_is_and_offers_sign_in_and_sign_up(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Parlor" in html and "knowledge" in html
    assert f'href="{reverse("account_login")}"' in html
    assert f'href="{reverse("account_signup")}"' in html


def test_front_page_leads_a_signed_in_customer_to_the_dashboard(client):
    user = make_user()
    make_organization(owner=user)
    client.force_login(user)
    html = client.get("/").content.decode()
    assert f'href="{reverse("admin:index")}"' in html
    assert f'href="{reverse("account_signup")}"' not in html


def test_admin_view_site_link_leads_to_the_front_page(client):
    user = make_user()
    make_organization(owner=user)
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'href="/"' in html
