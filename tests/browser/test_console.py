"""The web console in a real browser against the real pipeline: what a person does with it."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console, Traffic, sign_in
from tests.support import API_KEY, event, eventually, produce_events

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.integration]

# Long enough for a delivery's trip through Kafka, a worker and the recorder on a busy machine.
PIPELINE_TIMEOUT_MS = 45_000


def deliveries_row(page: Any, text: str) -> Any:
    return page.locator("#deliveries tbody tr", has_text=text)


async def test_sign_in_create_tail_retry_and_pause(
    console: Console, page: Any, traffic: Traffic
) -> None:
    # Signed out, a console page sends the person to sign in; a wrong key is refused there.
    await page.goto(console.base + "/console/webhooks")
    await expect(page).to_have_url(re.compile(r".*/console/signin\?next=%2Fconsole%2Fwebhooks"))
    await expect(page.get_by_label("API key")).to_be_focused()
    await page.get_by_label("API key").fill("not-a-key-at-all")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("The API refused this key.")
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_label("API key").press("Enter")
    await expect(page).to_have_url(console.base + "/console/webhooks")
    assert await page.evaluate("sessionStorage.getItem('hookstream.apiKey')") == API_KEY
    assert await page.context.cookies() == []

    # Create a webhook whose receiver answers 500 to both scheduled attempts, then 200.
    path = "/console-hook"
    console.receiver.script[path] = [500, 500, 200]
    await page.get_by_label("Endpoint URL").fill(console.receiver.url(path))
    await page.get_by_role("checkbox", name="user.created").check()
    await page.get_by_label("Description (optional)").fill("browser test")
    await page.get_by_role("button", name="Create webhook").click()
    await expect(page.locator("#created")).to_be_visible()
    await expect(page.locator("#created-secret")).to_have_text(re.compile(r"^whsec_"))
    webhook_id = (await page.locator("#created-link").inner_text()).strip()
    assert webhook_id.startswith("hook_")
    await expect(page.locator(f"#webhooks tr[data-id='{webhook_id}']")).to_contain_text("active")

    await page.locator("#created-link").click()
    await expect(page).to_have_url(f"{console.base}/console/webhooks/{webhook_id}")
    await expect(page.locator("#summary")).to_contain_text(console.receiver.url(path))
    await page.get_by_role("button", name="Reveal secret").click()
    secret = (await console.api.get(f"/v1/webhooks/{webhook_id}/secret")).json()["secret"]
    await expect(page.locator("#secret")).to_have_text(secret)
    await page.get_by_role("button", name="Hide secret").click()
    await expect(page.locator("#secret-box")).to_be_hidden()

    # Rotation (offered because the API's OpenAPI document has the route), after a confirm.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.locator("#flash")).to_contain_text("Secret rotated")
    await expect(page.locator("#flash")).to_contain_text("previous one keeps signing")
    await expect(page.locator("#secret")).not_to_have_text(secret)
    got = await console.api.get(f"/v1/webhooks/{webhook_id}/secret")
    await expect(page.locator("#secret")).to_have_text(got.json()["secret"])

    # Live tail on, then an event: the page shows its delivery without a reload or a click.
    await page.get_by_label("Live tail (every 2 s)").check()
    sent = event("user.created")
    await asyncio.to_thread(produce_events, console.settings, [sent])
    row = deliveries_row(page, sent["id"])
    await expect(row).to_have_count(1, timeout=PIPELINE_TIMEOUT_MS)
    await expect(row.locator(".badge")).to_have_text("failed", timeout=PIPELINE_TIMEOUT_MS)
    assert len(console.receiver.at(path)) == 2

    # Its attempts, then a manual retry that the receiver now accepts.
    await row.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r".*/console/deliveries/"))
    attempts = page.locator("#attempts tbody tr")
    await expect(attempts).to_have_count(2)
    for number in (0, 1):
        await expect(attempts.nth(number)).to_have_attribute("data-outcome", "failed")
        await expect(attempts.nth(number).locator("td").nth(4)).to_have_text("500")
    await expect(attempts.first).to_contain_text("nope")  # the response excerpt
    await attempts.first.locator("summary").click()  # its request headers
    await expect(attempts.first.locator("dl.headers")).to_contain_text("X-Webhook-Event")
    assert "signature" not in (await attempts.first.locator("dl.headers").inner_text()).lower()

    await page.get_by_role("button", name="Retry now").click()
    await expect(page.locator("#retry-result")).to_contain_text("Attempt 3 enqueued")
    await expect(attempts).to_have_count(3, timeout=PIPELINE_TIMEOUT_MS)
    await expect(attempts.nth(2)).to_have_attribute("data-outcome", "success")
    await expect(page.locator("#summary .badge")).to_have_text(
        "success", timeout=PIPELINE_TIMEOUT_MS
    )
    assert [r.headers["X-Webhook-Attempt"] for r in console.receiver.at(path)] == ["1", "2", "3"]

    # Back on the webhook: a test event, then pause.
    await page.locator("#back-to-webhook").click()
    await expect(page).to_have_url(f"{console.base}/console/webhooks/{webhook_id}")
    await expect(page.locator("#summary")).to_contain_text("Success rate")
    await expect(page.locator("#summary")).to_contain_text("Last failure")
    await page.get_by_role("button", name="Send a test event").click()

    await expect(page.locator("#flash")).to_contain_text("Test event evt_test_")
    await expect(deliveries_row(page, "webhook.test")).to_have_count(1)
    await page.get_by_label("Live tail (every 2 s)").check()  # follows the pending row
    await expect(deliveries_row(page, "webhook.test").locator(".badge")).to_have_text(
        "success", timeout=PIPELINE_TIMEOUT_MS
    )
    if shot := os.environ.get("HOOKSTREAM_CONSOLE_SCREENSHOT"):  # the README's picture
        await page.screenshot(path=str(Path(shot)), full_page=True)
    await page.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("button", name="Resume")).to_be_visible()
    await expect(page.locator("#summary .badge")).to_have_text("paused")
    assert (await console.api.get(f"/v1/webhooks/{webhook_id}")).json()["active"] is False

    # The key never left in a URL, every API call carried it, nothing went off the machine.
    assert traffic.urls
    assert not [u for u in traffic.urls if API_KEY in u]
    assert traffic.unauthenticated == []
    assert traffic.external == []


async def test_filters_event_lookup_and_the_catalogue(
    console: Console, page: Any, traffic: Traffic
) -> None:
    created = await console.api.post(
        "/v1/webhooks",
        json={"url": console.receiver.url("/filters"), "events": ["user.*", "project.created"]},
    )
    assert created.status_code == 201, created.text
    webhook_id = created.json()["id"]
    user, project = event("user.updated"), event("project.created")
    await asyncio.to_thread(produce_events, console.settings, [user, project])

    async def both_logged() -> bool:
        got = await console.api.get(f"/v1/webhooks/{webhook_id}/deliveries")
        return {d["status"] for d in got.json()["deliveries"]} == {"success"} and len(
            got.json()["deliveries"]
        ) == 2

    await eventually(both_logged, timeout=PIPELINE_TIMEOUT_MS / 1000, what="two deliveries")

    async def healthy() -> bool:  # the worker writes endpoint health once a second
        got = (await console.api.get(f"/v1/webhooks/{webhook_id}")).json()
        return bool(got["health"]["success_rate"] == 1)

    await eventually(healthy, timeout=20, what="the webhook's health")
    await sign_in(page, console)
    # The list reads each shown webhook's health after the list itself.
    await expect(page.locator(f"#webhooks tr[data-id='{webhook_id}'] td").nth(4)).to_contain_text(
        "100% success"
    )
    await page.get_by_role("link", name=webhook_id).click()
    await expect(page.locator("#summary")).to_contain_text("100% of 2 recent attempts (0 failed)")
    await expect(page.locator("#deliveries tbody tr")).to_have_count(2)
    await page.get_by_label("Event type", exact=True).fill("project.created")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.locator("#deliveries tbody tr")).to_have_count(1)
    await expect(deliveries_row(page, project["id"])).to_have_count(1)
    await page.get_by_label("Event type", exact=True).fill("")
    await page.get_by_label("Status", exact=True).select_option("failed")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.locator("#deliveries-empty")).to_be_visible()
    await expect(page.locator("#deliveries tbody tr")).to_have_count(0)

    # The edit form starts from the webhook's types; saving changes them.
    await expect(page.get_by_label("More types or wildcards (comma-separated)")).to_have_value(
        "user.*"
    )
    await (
        page.locator("fieldset[data-types=edit]")
        .get_by_role("checkbox", name="payment.failed")
        .check()
    )
    await page.get_by_role("button", name="Save event types").click()
    await expect(page.locator("#flash")).to_contain_text("Event types saved")
    got = (await console.api.get(f"/v1/webhooks/{webhook_id}")).json()
    assert sorted(got["events"]) == ["payment.failed", "project.created", "user.*"]

    # Recover: nothing of this webhook failed, and the page says so.
    await page.locator("#r-since").fill("2026-01-01T00:00:00")
    await page.get_by_role("button", name="Recover").click()
    await expect(page.locator("#recover-result")).to_have_text("0 failed deliveries re-enqueued.")

    # Event lookup by id, from the navigation bar.
    await page.get_by_role("navigation").get_by_role("link", name="Event lookup").click()
    await page.get_by_label("Event id").fill(user["id"])
    await page.get_by_label("Event id").press("Enter")
    await expect(page.locator("#event-deliveries tbody tr")).to_have_count(1)
    await expect(page.locator("#event-deliveries")).to_contain_text(webhook_id)
    await expect(page).to_have_url(re.compile(rf".*\?id={user['id']}$"))
    await page.get_by_label("Event id").fill("evt_never_sent")
    await page.get_by_label("Event id").press("Enter")
    await expect(page.locator("#event-error")).to_contain_text("no event")

    await page.get_by_role("link", name="Event types").click()
    await expect(page.locator("#event-types")).to_contain_text("payment.succeeded")
    await expect(page.locator("#event-types")).to_contain_text("webhook.test")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r".*/console/signin"))
    assert await page.evaluate("sessionStorage.getItem('hookstream.apiKey')") is None
    assert traffic.external == []


async def test_readable_on_a_phone_and_usable_by_keyboard(
    console: Console, phone: Any, traffic: Traffic
) -> None:
    created = await console.api.post(
        "/v1/webhooks", json={"url": console.receiver.url("/phone"), "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    await sign_in(phone, console)
    await expect(phone.locator("#webhooks tbody tr").first).to_be_visible()
    pages = ("/console/webhooks", f"/console/webhooks/{created.json()['id']}", "/console/events")
    for path in (*pages, "/console/event-types"):
        await phone.goto(console.base + path)
        await expect(phone.locator("body[data-ready=true]")).to_have_count(1)
        overflow = await phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        unlabelled = await phone.evaluate(
            """[...document.querySelectorAll('input, select, textarea')]
                 .filter(e => e.type !== 'hidden' && e.labels.length === 0
                              && !e.getAttribute('aria-label'))
                 .map(e => e.id || e.name)"""
        )
        assert unlabelled == [], f"{path}: inputs without a label: {unlabelled}"

    # The first Tab reaches the skip link, which moves focus to the content.
    await phone.goto(console.base + "/console/webhooks")
    await expect(phone.locator("body[data-ready=true]")).to_have_count(1)
    await phone.keyboard.press("Tab")
    await expect(phone.get_by_role("link", name="Skip to content")).to_be_focused()
    await phone.keyboard.press("Enter")
    await expect(phone.locator("main")).to_be_focused()
    # A stacked table cell names its column on a phone.
    label = await phone.locator("#webhooks tbody td").first.get_attribute("data-label")
    assert label == "Webhook"
    if shot := os.environ.get("HOOKSTREAM_CONSOLE_SCREENSHOT"):
        await phone.screenshot(path=str(Path(shot).with_suffix(".phone.png")), full_page=True)
    assert traffic.external == []


async def test_the_api_docs_render_with_no_request_off_the_machine(
    console: Console, page: Any, traffic: Traffic
) -> None:
    refused: list[str] = []  # what the pages' CSP kept from leaving (it never reaches a route)
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    await page.goto(console.base + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hookstream")
    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert refused == []  # Swagger UI needs nothing from elsewhere
    await page.goto(console.base + "/redoc")
    await expect(page.locator("h1", has_text="Hookstream")).to_be_visible(timeout=15_000)
    # ReDoc's bundle asks for its footer logo from its CDN: refused, and nothing else is.
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in r for r in refused), refused
    assert any(u.endswith("/openapi.json") for u in traffic.urls)
    assert traffic.external == []


async def test_sign_in_never_forwards_off_the_console(
    console: Console, page: Any, traffic: Traffic
) -> None:
    crafted_links = ("//evil.example/x", "https://evil.example/", "/console/../docs", "/x")
    for crafted in crafted_links:
        await page.goto(f"{console.base}/console/signin?next={quote(crafted, safe='')}")
        await page.get_by_label("API key").fill(API_KEY)
        await page.get_by_label("API key").press("Enter")
        await expect(page).to_have_url(console.base + "/console/webhooks")
        await expect(page.locator("body[data-ready=true]")).to_have_count(1)
        await page.evaluate("sessionStorage.clear()")
    assert traffic.external == []


async def test_the_scripts_pure_helpers(console: Console, page: Any) -> None:
    await page.goto(console.base + "/console/signin")
    got = await page.evaluate(
        """() => ({
            patterns: splitPatterns(" user.*, payment.failed  *,,"),
            percent: [percent(0.5), percent(1), percent(0), percent(0.1234)],
            roundTrip: localInput(isoFromLocal("2026-01-15T12:30:05")),
            noTime: isoFromLocal(""),
            list: healthParts({disabled_reason: "410 Gone", health: {success_rate: 0.25}}),
            pairs: healthPairs({health: {success_rate: null, recent_attempts: 0}})
                .map(([name]) => name),
            bare: healthParts({}),
            next: [afterSignIn("/console/events?id=evt_1"), afterSignIn("/console/%2e%2e/docs"),
                   afterSignIn(null), afterSignIn("/console/signin?next=x")],
        })"""
    )
    assert got == {
        "patterns": ["user.*", "payment.failed", "*"],
        "percent": ["50.0%", "100%", "0%", "12.3%"],
        "roundTrip": "2026-01-15T12:30:05",
        "noTime": None,
        "list": ["25.0% success", "disabled: 410 Gone"],
        "pairs": ["Success rate", "Last success"],
        "bare": [],
        "next": ["/console/events?id=evt_1", *["/console/webhooks"] * 3],
    }


async def test_an_account_key_sees_only_its_own_account(
    console: Console, page: Any, traffic: Traffic
) -> None:
    """The console shows what the key may see: scoping is the API's, for the console too."""
    keys, hooks = {}, {}
    for name in ("console-a", "console-b"):
        made = await console.api.post("/v1/accounts", json={"name": name})
        assert made.status_code == 201, made.text
        account = made.json()["id"]
        key = await console.api.post(
            "/v1/keys", json={"name": "console"}, headers={"Hookstream-Account": account}
        )
        assert key.status_code == 201, key.text
        keys[name] = key.json()["key"]
        hook = await console.api.post(
            "/v1/webhooks",
            json={"url": console.receiver.url(f"/{name}"), "events": ["user.created"]},
            headers={"Authorization": f"Bearer {keys[name]}"},
        )
        assert hook.status_code == 201, hook.text
        hooks[name] = hook.json()["id"]

    await page.goto(console.base + "/console/signin")
    await page.get_by_label("API key").fill(keys["console-a"])
    await page.get_by_label("API key").press("Enter")
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
    await expect(page.locator("#webhooks tbody tr")).to_have_count(1)
    await expect(page.locator(f"#webhooks tr[data-id='{hooks['console-a']}']")).to_have_count(1)

    # Another account's webhook, even by its exact address, is unknown to this key.
    await page.goto(f"{console.base}/console/webhooks/{hooks['console-b']}")
    await expect(page.locator("#flash")).to_contain_text("no webhook")
    await expect(page.locator("#summary dt")).to_have_count(0)
    assert keys["console-a"] not in " ".join(traffic.urls)
