"""The journeys' own checks: a JavaScript error or a 5xx response seen by the browser fails the journey."""

import pytest

pytestmark = pytest.mark.e2e


def test_a_javascript_error_or_a_server_error_fails_the_journey(journey):
    j = journey("harness")
    j.goto("/accounts/login/")
    j.check()
    j.page.evaluate("window.setTimeout(() => { throw new Error('boom from the page'); })")
    j.page.wait_for_timeout(300)
    with pytest.raises(AssertionError, match="JavaScript error on .*boom from the page"):
        j.check()

    j.errors.clear()
    j.page.route("**/healthz", lambda route: route.fulfill(status=503, body="down"))
    j.page.evaluate("fetch('/healthz')")
    j.page.wait_for_timeout(300)
    with pytest.raises(AssertionError, match=r"HTTP 503 from GET .*/healthz"):
        j.check()
