"""Both sides read the same written terms on the agreement dashboard; missing ones are named."""

import pytest

pytestmark = pytest.mark.django_db


def test_partner_viewer_reads_the_terms_of_their_agreement(client, acme_viewer, acme_agreement):
    acme_agreement.exit_criteria = "Two quarters below 50 <overall>."
    acme_agreement.attribution_method = "First touch\nwithin 90 days"
    acme_agreement.save()
    client.force_login(acme_viewer)
    page = client.get(f"/agreements/{acme_agreement.code}/").text
    assert "Agreement terms" in page
    assert "Two quarters below 50 &lt;overall&gt;." in page
    assert "First touch<br>within 90 days" in page
    assert page.count("'muted'>not written yet<") == 12  # 14 written terms, 2 filled in


def test_the_print_view_opens_every_group_of_terms(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    page = client.get(f"/agreements/{acme_agreement.code}/print/").text
    assert page.count('<details class="terms-group" open>') == 5
