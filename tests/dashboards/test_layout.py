"""The page shell: login, navigation, CSP nonces, CSRF for htmx, and the home page's scoping."""

import json
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def csp_nonce(response) -> str:
    policy = response.headers["Content-Security-Policy"]
    match = re.search(r"script-src [^;]*'nonce-([^']+)'", policy)
    assert match, policy
    return match.group(1)


def stage_figure(response) -> dict:
    match = re.search(
        r'<script id="chart-stages-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.DOTALL,
    )
    assert match, "no chart data on the page"
    return json.loads(match.group(1))


def test_anonymous_user_is_redirected_to_login(client):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_login_page_has_labelled_inputs(client):
    response = client.get(reverse("login"))
    html = response.content.decode()

    assert response.status_code == 200
    for field_id in ("id_username", "id_password"):
        assert f'<label for="{field_id}">' in html
        assert f'id="{field_id}"' in html
    assert 'autocomplete="current-password"' in html


def test_login_failure_is_shown_as_an_alert(client, host_manager):
    response = client.post(reverse("login"), {"username": "manager", "password": "wrong"})
    html = response.content.decode()

    assert response.status_code == 200
    assert 'role="alert"' in html
    assert "correct username and password" in html


def test_login_with_the_form_lands_on_home(client, host_manager):
    response = client.post(
        reverse("login"), {"username": "manager", "password": "pw-manager"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("home")
    assert "You see all partners' agreements." in response.content.decode()


def test_home_shows_host_users_role(client, host_manager):
    client.force_login(host_manager)

    html = client.get(reverse("home")).content.decode()

    assert "<strong>manager</strong>" in html
    assert "Host manager" in html
    assert "You see all partners' agreements." in html


def test_home_shows_partner_users_role_and_partner(client, acme_viewer):
    client.force_login(acme_viewer)

    html = client.get(reverse("home")).content.decode()

    assert "Partner viewer, Acme Corp" in html
    assert "You see the agreements of Acme Corp." in html


def test_admin_link_only_for_staff(client, host_manager):
    client.force_login(host_manager)
    assert reverse("admin:index") not in client.get(reverse("home")).content.decode()

    host_manager.is_staff = True
    host_manager.save()
    assert reverse("admin:index") in client.get(reverse("home")).content.decode()


def test_every_script_carries_the_csp_nonce(client, host_manager, acme_agreement):
    client.force_login(host_manager)

    response = client.get(reverse("home"))
    nonce = csp_nonce(response)
    tags = SCRIPT_TAG.findall(response.content.decode())

    executable = [tag for tag in tags if 'type="application/json"' not in tag]
    # htmx (plus django-htmx's debug helper when DEBUG), plotly and charts.js.
    assert any("htmx-2.min.js" in tag for tag in executable)
    assert any("plotly-strict" in tag for tag in executable)
    assert any("js/charts.js" in tag for tag in executable)
    for tag in executable:
        assert f'nonce="{nonce}"' in tag, tag
        assert "src=" in tag and " defer" in tag, tag


def test_no_inline_script_without_a_nonce(client, acme_viewer, acme_agreement):
    client.force_login(acme_viewer)

    html = client.get(reverse("home")).content.decode()

    for tag in SCRIPT_TAG.findall(html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<[a-z]+\b[^>]*\son[a-z]+\s*=", html), "inline event handler"


def test_csp_forbids_eval_and_inline_scripts(client, host_manager):
    client.force_login(host_manager)

    policy = client.get(reverse("home")).headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)

    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src


def test_htmx_requests_carry_the_csrf_token(client, host_manager):
    client.force_login(host_manager)

    response = client.get(reverse("home"))
    match = re.search(r"<body hx-headers='([^']*)'>", response.content.decode())

    assert match
    token = json.loads(match.group(1))["x-csrftoken"]
    assert token and token == response.context["csrf_token"]


def test_htmx_is_configured_without_eval_or_history_cache(client, host_manager):
    client.force_login(host_manager)

    html = client.get(reverse("home")).content.decode()
    config = json.loads(re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', html)[1])

    assert config == {
        "allowEval": False,
        "includeIndicatorStyles": False,
        "historyCacheSize": 0,
        "selfRequestsOnly": True,
    }


def test_log_out_is_a_post_form_with_csrf(client, host_manager):
    client.force_login(host_manager)

    html = client.get(reverse("home")).content.decode()
    form = re.search(r'<form[^>]*action="' + reverse("logout") + r'"[^>]*>(.*?)</form>', html,
                     re.DOTALL)

    assert form
    assert 'method="post"' in form.group(0)
    assert 'name="csrfmiddlewaretoken"' in form.group(1)


def test_log_out_signs_the_user_out(client, host_manager):
    client.force_login(host_manager)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_host_chart_counts_all_agreements_by_stage(client, host_manager, acme_agreement,
                                                  globex_agreement):
    client.force_login(host_manager)

    figure = stage_figure(client.get(reverse("home")))
    bars = dict(zip(figure["data"][0]["y"], figure["data"][0]["x"], strict=True))

    assert bars["Active"] == 2
    assert sum(bars.values()) == 2
    assert figure["layout"]["title"]["text"] == "Agreements by stage, today"


def test_partner_viewer_sees_only_their_agreements(client, acme_viewer, acme_agreement,
                                                  globex_agreement):
    client.force_login(acme_viewer)

    response = client.get(reverse("home"))
    figure = stage_figure(response)

    assert dict(zip(figure["data"][0]["y"], figure["data"][0]["x"], strict=True))["Active"] == 1
    assert "GLOBEX" not in response.content.decode().upper()


def test_home_without_agreements_shows_an_empty_state_and_no_plotly(client, host_manager):
    client.force_login(host_manager)

    html = client.get(reverse("home")).content.decode()

    assert "No agreements yet." in html
    assert "data-plotly" not in html
    assert "plotly-strict" not in html


def test_user_without_membership_sees_nothing(client, django_user_model, acme_agreement):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))

    response = client.get(reverse("home"))

    assert response.status_code == 200
    assert "not linked to the host or to a partner" in response.content.decode()
    assert "ACME" not in response.content.decode().upper()
