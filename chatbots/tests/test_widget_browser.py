"""The embed widget in a real browser against a live Parlor (Daphne subprocess + Celery worker).

A customer's page is served from another loopback origin (http://localhost:<port>); Parlor runs on
http://127.0.0.1:<port>. Headless Chromium loads the page, the one script tag adds the launcher, and the
chat runs in Parlor's iframe over the WebSocket, answered by the real pipeline. Screenshots of the
desktop and phone states go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accounts.models import Organization
from chatbots import testing as fixtures
from chatbots.llm.testserver import FakeLLMServer
from chatbots.models import Bot, Conversation, Message
from chatbots.testing import HostPages, LiveParlor, host_page_html, screenshot
from chatbots.tests.factories import ANSWER_QUESTION, XSS_QUESTION, give_knowledge, teach_bot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The live Daphne, the host sites on other origins and Chromium are fixtures of chatbots/testing.py.


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    """The language model: a local OpenAI-compatible server, called by the live Parlor through the SDK."""
    server = FakeLLMServer().start()
    yield server
    server.stop()


def make_bot(*, allowed: list[str], **fields: Any) -> Bot:
    org, _ = Organization.objects.get_or_create(slug="acme-outdoor", defaults={"name": "Acme Outdoor"})
    defaults = {
        "name": "Acme helper",
        "greeting": "Hi! I'm the Acme assistant. Ask me about orders, shipping or returns.",
        "suggested_questions": ["How long does shipping take?", "Can I return boots?"],
        "allowed_origins": allowed,
        "widget_title": "Acme Outdoor",
        "widget_primary_color": "#2f6f4f",
        "widget_launcher_text": "Questions?",
    }
    defaults.update(fields)
    return Bot.objects.create(organization=org, **defaults)


def widget_frame(page: Any) -> Any:
    """The chat iframe (in the loader's shadow root), once the app inside it is running."""
    handle = page.locator("[data-parlor-widget] iframe").element_handle()
    for _ in range(100):
        frame = handle.content_frame()
        if frame is not None and "/widget/" in frame.url:
            frame.wait_for_selector(".pc-input")
            return frame
        page.wait_for_timeout(100)
    raise AssertionError("the widget frame did not load")


def launcher(page: Any) -> Any:
    return page.locator("[data-parlor-widget]").locator("button.l")


def open_widget(page: Any) -> Any:
    launcher(page).click()
    frame = widget_frame(page)
    frame.wait_for_selector(".pc-status[data-state='online']")
    return frame


def ask(frame: Any, text: str) -> Any:
    """Type a question, send it with Enter, and wait for the finished answer (feedback buttons appear)."""
    before = frame.locator(".pc-msg--assistant .pc-actions").count()
    frame.fill(".pc-input", text)
    frame.press(".pc-input", "Enter")
    frame.wait_for_function(
        f"() => document.querySelectorAll('.pc-msg--assistant .pc-actions').length > {before}", timeout=30000
    )
    return frame.locator(".pc-msg--assistant").last


def record_socket_frames(page: Any) -> list[dict]:
    """Every JSON frame the chat socket receives (the iframe's socket is reported on the page)."""
    frames: list[dict] = []

    def on_socket(ws: Any) -> None:
        if "/ws/chat/" in ws.url:
            ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", on_socket)
    return frames


def test_widget_answers_with_streaming_sources_feedback_and_history(
    live_parlor: LiveParlor,
    allowed_site: HostPages,
    new_page: Callable[..., Any],
    llm: FakeLLMServer,
    celery_worker: object,
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    teach_bot(bot, llm_base_url=llm.base_url)
    give_knowledge(bot)
    url = allowed_site.page("/", host_page_html(live_parlor.url, bot.public_id))
    page = new_page()
    received = record_socket_frames(page)
    page.goto(url)

    # Nothing but the loader and its config until the visitor asks for the chat.
    assert launcher(page).inner_text().strip() == "Questions?"
    assert page.get_by_role("button", name="Questions?").get_attribute("aria-expanded") == "false"
    assert not [f for f in page.frames if "/widget/" in f.url]

    frame = open_widget(page)
    assert page.get_by_role("button", name="Close chat").get_attribute("aria-expanded") == "true"
    assert frame.locator(".pc-title").inner_text() == "Acme Outdoor"
    assert "Acme assistant" in frame.locator(".pc-msg--greeting").inner_text()
    assert frame.locator(".pc-chip").count() == 2
    assert frame.evaluate("document.activeElement.classList.contains('pc-input')")

    page.evaluate("Parlor.identify({plan: 'pro', customer: 'C-1001'})")  # host page passes visitor attributes
    answer = ask(frame, ANSWER_QUESTION)
    deltas = [f for f in received if f["type"] == "delta"]
    assert len(deltas) >= 3, "the answer arrives as a stream of deltas"
    text = answer.locator(".pc-text").inner_text()
    assert "30 days" in text
    assert "".join(d["text"] for d in deltas).strip()[:20] in " ".join(text.split()) or len(text) > 20
    sources = answer.locator(".pc-sources li")
    assert sources.count() >= 1
    assert "Returns policy" in answer.locator(".pc-sources").inner_text()
    assert frame.locator(".pc-chip").count() == 0
    screenshot(page, "widget-desktop.png")

    # Thumbs up is stored on the assistant message.
    done = next(f for f in received if f["type"] == "done")
    answer.get_by_role("button", name="Helpful", exact=True).click()
    assert answer.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == "true"
    message = Message.objects.select_related("conversation").get(pk=done["message_id"])
    assert message.conversation.visitor_attributes == {"plan": "pro", "customer": "C-1001"}
    for _ in range(50):
        message.refresh_from_db()
        if message.feedback:
            break
        time.sleep(0.1)
    assert message.feedback == "up"

    # Reload: the chat reopens by itself and the conversation comes back from the server.
    page.reload()
    frame = widget_frame(page)
    frame.wait_for_selector(".pc-msg--user")
    assert ANSWER_QUESTION in frame.locator(".pc-msg--user").first.inner_text()
    restored = frame.locator(".pc-msg--assistant").last
    assert "30 days" in restored.locator(".pc-text").inner_text()
    assert restored.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == "true"
    assert restored.locator(".pc-sources li").count() >= 1

    # Another page of the same site continues the same conversation.
    other = allowed_site.page("/shipping", host_page_html(live_parlor.url, bot.public_id, title="Shipping"))
    page.goto(other)
    frame = widget_frame(page)
    frame.wait_for_selector(".pc-msg--user")
    assert frame.locator(".pc-msg--user").count() == 1

    # "New conversation" starts over with the greeting and suggestions.
    frame.get_by_role("button", name="New conversation").click()
    assert frame.locator(".pc-msg--user").count() == 0
    assert frame.locator(".pc-chip").count() == 2


def test_model_output_cannot_inject_html_or_script(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    teach_bot(bot, llm_base_url=llm.base_url, reply=None)  # the model echoes the question
    page = new_page()
    page.goto(allowed_site.page("/xss", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)
    answer = ask(frame, XSS_QUESTION)
    body = answer.locator(".pc-text")
    text = body.inner_text()
    assert "<script>" in text and "onerror" in text, text  # shown as text
    assert body.locator("script, img, iframe, svg, [onerror], [onclick]").count() == 0
    hrefs = body.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(re.match(r"^https?://", h) for h in hrefs), hrefs
    assert frame.evaluate("window.__pwned === undefined")
    assert page.evaluate("window.__pwned === undefined")
    # new_page fails the test on any JS dialog (alert) or page error.


def test_rate_limited_visitor_sees_when_to_retry(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    teach_bot(bot, llm_base_url=llm.base_url)
    page = new_page()
    page.goto(allowed_site.page("/limits", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)
    limit = 3  # VISITOR_RATE_LIMIT in chatbots/tests/browser.py
    for i in range(limit):
        ask(frame, f"{ANSWER_QUESTION} ({i})")
    frame.fill(".pc-input", "One more question")
    frame.press(".pc-input", "Enter")
    banner = frame.locator(".pc-banner")
    banner.wait_for(state="visible")
    assert re.search(r"too quickly.*try again in \d+ (s|min)", banner.inner_text()), banner.inner_text()
    assert frame.locator(".pc-send").is_disabled()
    screenshot(page, "widget-rate-limited.png")


def test_other_origin_is_refused(
    live_parlor: LiveParlor, allowed_site: HostPages, other_site: HostPages, new_page: Callable[..., Any]
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    page = new_page()
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text))
    frame_url = f"{live_parlor.url}/widget/{bot.public_id}/"
    html = host_page_html(
        live_parlor.url, bot.public_id, body=f'<iframe id="sneaky" src="{frame_url}"></iframe>'
    )
    page.goto(other_site.page("/", html.replace("iframe{display:none}", "")))

    # The loader refuses to draw a launcher on a site that is not allowed ...
    for _ in range(100):
        if any("not an allowed origin" in w for w in warnings):
            break
        page.wait_for_timeout(100)  # (not time.sleep: Playwright delivers console events while it waits)
    assert any("not an allowed origin" in w for w in warnings), warnings
    assert launcher(page).count() == 0
    # ... the browser refuses to render Parlor's iframe there (CSP frame-ancestors): an error page instead ...
    sneaky = page.locator("#sneaky").element_handle()
    for _ in range(100):
        frame = sneaky.content_frame()
        if frame is not None and frame.url.startswith("chrome-error://"):
            break
        page.wait_for_timeout(100)
    assert frame is not None and frame.url.startswith("chrome-error://"), frame and frame.url
    # ... and the socket refuses a connection made from that origin.
    result = page.evaluate(
        """url => new Promise(resolve => {
            const frames = []; const ws = new WebSocket(url);
            ws.onmessage = e => frames.push(JSON.parse(e.data));
            ws.onclose = e => resolve({code: e.code, frames});
        })""",
        live_parlor.url.replace("http", "ws") + f"/ws/chat/{bot.public_id}/?visitor=visitor_12345",
    )
    assert result["code"] == 4403
    assert [f.get("code") for f in result["frames"]] == ["origin_not_allowed"]


def test_phone_gets_a_full_screen_chat(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    teach_bot(bot, llm_base_url=llm.base_url)
    page = new_page(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page.goto(allowed_site.page("/phone", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)
    box = page.locator("[data-parlor-widget] iframe").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    assert launcher(page).is_hidden()  # the chat's own close button takes over
    frame.locator(".pc-chip").last.click()  # a suggested question
    frame.wait_for_selector(".pc-msg--assistant .pc-actions")
    assert "30 days" in frame.locator(".pc-msg--assistant").last.inner_text()
    screenshot(page, "widget-phone.png")
    frame.get_by_role("button", name="Close chat").click()
    page.wait_for_function("() => !window.Parlor.isOpen()")
    assert launcher(page).is_visible()


def test_keyboard_api_language_and_theme(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any]
) -> None:
    bot = make_bot(allowed=[allowed_site.origin], widget_theme="dark")
    page = new_page(locale="de-DE")
    events: list[str] = []
    page.expose_function("recordParlorEvent", lambda name: events.append(name))
    html = host_page_html(live_parlor.url, bot.public_id).replace(
        "</body>",
        "<script>addEventListener('load', () => { const on = () => window.Parlor ? ['open','close']"
        ".forEach(n => Parlor.on(n, () => recordParlorEvent(n))) : setTimeout(on, 50); on(); });</script></body>",
    )
    page.goto(allowed_site.page("/de", html))
    page.wait_for_function("() => window.Parlor")
    page.wait_for_timeout(300)
    page.evaluate("Parlor.open()")
    frame = widget_frame(page)
    assert frame.locator(".pc-input").get_attribute("placeholder") == "Nachricht eingeben…"
    assert frame.evaluate("document.documentElement.dataset.theme") == "dark"
    assert frame.locator(".pc-log").get_attribute("aria-live") == "polite"
    frame.wait_for_function("document.activeElement && document.activeElement.classList.contains('pc-input')")
    page.keyboard.press("Escape")  # closes and gives focus back to the launcher
    page.wait_for_function("() => !window.Parlor.isOpen()")
    assert page.evaluate("document.activeElement.dataset.parlorWidget") == bot.public_id
    assert events == ["open", "close"]


def test_standalone_chat_page_and_paused_bot(live_parlor: LiveParlor, new_page: Callable[..., Any]) -> None:
    bot = make_bot(allowed=["https://shop.example.com"])
    page = new_page()
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    page.wait_for_selector(".pc-status[data-state='online']")
    assert page.title() == "Acme Outdoor"
    assert page.locator(".pc-chip").count() == 2
    assert page.locator(".pc-input").get_attribute("placeholder") == "Type your message…"
    bot.language = "fr"  # the bot's language wins over the browser's
    bot.save(update_fields=["language"])
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    assert page.locator(".pc-input").get_attribute("placeholder") == "Écrivez votre message…"
    bot.status = "paused"
    bot.save(update_fields=["status"])
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    assert "en pause" in page.locator("main").inner_text()  # still in the bot's language


def test_bot_admin_shows_a_live_preview_to_try(
    live_parlor: LiveParlor, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    from django.test import Client

    from accounts.tests.factories import make_organization, owner_of

    org = make_organization(name="Preview Org")
    bot = Bot.objects.create(organization=org, name="Previewed", greeting="Hello from the preview!")
    teach_bot(bot, llm_base_url=llm.base_url)
    client = Client()
    client.force_login(owner_of(org))
    page = new_page(viewport={"width": 1400, "height": 1000})
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_parlor.url}]
    )
    page.goto(f"{live_parlor.url}/admin/chatbots/bot/{bot.pk}/change/")
    preview = page.frame_locator("[data-parlor-frame]")
    preview.locator(".pc-status[data-state='online']").wait_for()
    assert preview.locator(".pc-title").inner_text() == "Previewed"

    # Unsaved edits show up in the preview as they are typed.
    page.fill("textarea[name=greeting], input[name=greeting]", "Welcome to the new look!")
    fixtures.admin_tab(page, "Widget").click()
    page.fill("input[name=widget_title]", "Shiny new title")
    expect_text = preview.locator(".pc-title")
    for _ in range(50):
        if expect_text.inner_text() == "Shiny new title":
            break
        page.wait_for_timeout(100)
    assert expect_text.inner_text() == "Shiny new title"
    assert "Welcome to the new look!" in preview.locator(".pc-msg--greeting").inner_text()

    # ... and the bot can be tried right there.
    preview.locator(".pc-input").fill(ANSWER_QUESTION)
    preview.locator(".pc-input").press("Enter")
    preview.locator(".pc-msg--assistant .pc-actions").wait_for()
    assert "30 days" in preview.locator(".pc-msg--assistant").last.inner_text()
    page.locator("[data-parlor-preview]").scroll_into_view_if_needed()
    screenshot(page, "admin-preview.png")


def test_chat_reconnects_by_itself_after_the_server_restarts(
    allowed_site: HostPages, new_page: Callable[..., Any], llm: FakeLLMServer
) -> None:
    # A Parlor of its own, so this test can stop and restart it on the same port.
    proc, url, _log = fixtures.start_daphne()
    port = int(url.rsplit(":", 1)[1])
    try:
        bot = make_bot(allowed=[allowed_site.origin])
        teach_bot(bot, llm_base_url=llm.base_url)
        page = new_page()
        page.goto(allowed_site.page("/restart", host_page_html(url, bot.public_id)))
        frame = open_widget(page)
        ask(frame, ANSWER_QUESTION)

        proc.kill()  # a crash, not a graceful shutdown: the socket just drops
        proc.wait(timeout=10)
        frame.wait_for_selector(".pc-status[data-state='reconnecting']")
        frame.wait_for_selector(".pc-banner:not([hidden])")
        proc, url, _log = fixtures.start_daphne(port=port)

        # Backoff retries find the server again; the conversation is fetched back, and it answers.
        frame.wait_for_selector(".pc-status[data-state='online']", timeout=45000)
        assert frame.locator(".pc-banner").is_hidden()
        assert frame.locator(".pc-msg--user").count() == 1
        answer = ask(frame, "And tents?")
        assert "30 days" in answer.inner_text()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_connection_lost_during_the_first_answer_keeps_one_conversation(
    live_parlor: LiveParlor,
    allowed_site: HostPages,
    new_page: Callable[..., Any],
    llm: FakeLLMServer,
    redis_client: Any,
) -> None:
    bot = make_bot(allowed=[allowed_site.origin])
    teach_bot(bot, llm_base_url=llm.base_url)
    bot.model = "parlor-test?words=60&tps=10"  # a first answer slow enough to lose the connection during it
    bot.save(update_fields=["model"])
    page = new_page()
    # Every chat socket goes through the test, which can cut it like a lost network (both ends closed).
    sockets: list[tuple[Any, Any]] = []
    page.context.route_web_socket(
        re.compile(r".*/ws/chat/.*"), lambda ws: sockets.append((ws, ws.connect_to_server()))
    )
    page.goto(allowed_site.page("/drop", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)
    frame.fill(".pc-input", "My name is Ada. How do returns work?")
    frame.press(".pc-input", "Enter")
    # The server names the conversation before the first token; the widget keeps it at once.
    frame.wait_for_function(
        "() => window.ParlorChat.state().conversationId && window.ParlorChat.state().streaming"
    )
    conversation_id = frame.evaluate("() => window.ParlorChat.state().conversationId")
    assert llm.wait_for(lambda requests: requests and requests[-1].tokens_sent >= 3, 15)  # mid-answer
    first_socket, first_server = sockets[0]
    first_server.close()
    first_socket.close()

    frame.wait_for_function("() => !window.ParlorChat.state().streaming")  # the bubble ends as interrupted
    for _ in range(300):  # deadlines for a loaded machine, not timing assertions
        stored = Message.objects.filter(conversation_id=conversation_id, role="assistant").exists()
        # ... and the interrupted answer has given its conversation free for the next question
        if len(sockets) > 1 and stored and not redis_client.exists(f"parlor:busy:{conversation_id}"):
            break
        page.wait_for_timeout(100)
    assert f"conversation={conversation_id}" in sockets[-1][0].url  # it reconnected into its conversation
    frame.wait_for_selector(".pc-status[data-state='online']")
    frame.fill(".pc-input", "What is my name?")
    frame.press(".pc-input", "Enter")  # at once: a question sent before the history arrived waits for it
    for _ in range(600):
        if Message.objects.filter(conversation_id=conversation_id).exclude(status="incomplete").count() == 3:
            break
        page.wait_for_timeout(100)
    frame.wait_for_function(
        "() => !window.ParlorChat.state().streaming && document.querySelectorAll('.pc-msg--user').length === 2"
    )
    answer = frame.locator(".pc-msg--assistant").last
    assert answer.inner_text().strip() and answer.locator(".pc-actions").count() == 1

    assert Conversation.objects.filter(bot=bot).count() == 1
    messages = list(Message.objects.filter(conversation_id=conversation_id).order_by("id"))
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"), ("assistant", "incomplete"), ("user", "complete"), ("assistant", "complete")
    ]  # fmt: skip
    assert frame.evaluate("() => window.ParlorChat.state().conversationId") == conversation_id
    assert frame.locator(".pc-msg--assistant .pc-actions").count() == 2  # the interrupted one came back


MARKDOWN_ATTACKS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "**<svg onload=window.__pwned=1>**",
    "[a](javascript:window.__pwned=1) [b](JaVaScRiPt:window.__pwned=1) [c]( javascript:window.__pwned=1)",
    "[d](data:text/html,<script>window.__pwned=1</script>) [e](vbscript:x) [f](//evil.example/x)",
    "<javascript:window.__pwned=1> ![g](javascript:window.__pwned=1) ![h](https://tracker.example/p.gif)",
    '[i](https://ok.example/"onmouseover="window.__pwned=1)',
    "| <b>x</b> | y |\n| --- | --- |\n| <iframe src=javascript:1> | `<script>` |",
    "> <style>*{display:none}</style>\n\n- <a href=javascript:1>x</a>\n  1. <form action=//evil>",
    "```html\n<script>window.__pwned=1</script>\n```",
]
ALLOWED_TAGS = {
    "P", "BR", "STRONG", "EM", "DEL", "CODE", "PRE", "A", "UL", "OL", "LI", "BLOCKQUOTE",
    "H3", "H4", "H5", "H6", "HR", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD",
}  # fmt: skip


STATIC = fixtures.ROOT / "frontend" / "dist" / "parlor"


def module_page(browser: Any) -> Any:
    """A blank page on its own origin with the chat app's modules under /parlor/ and markdown.js loaded
    as window.ParlorMarkdown (the modules have no build step: the browser runs the files themselves)."""
    page = browser.new_page()

    def serve(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        if re.fullmatch(r"[a-z-]+\.js", name) and (STATIC / name).is_file():
            route.fulfill(path=str(STATIC / name), content_type="text/javascript")
        else:
            route.fulfill(body="<!doctype html><div id=out></div>", content_type="text/html")

    page.route("http://parlor.test/**", serve)
    page.goto("http://parlor.test/")
    page.evaluate("import('/parlor/markdown.js').then(m => { window.ParlorMarkdown = m; })")
    return page


def test_markdown_renderer_builds_only_safe_nodes(browser: Any) -> None:
    page = module_page(browser)
    try:
        for attack in MARKDOWN_ATTACKS:
            report = page.evaluate(
                """source => {
                    const out = document.getElementById('out');
                    out.replaceChildren(ParlorMarkdown.render(source));
                    const nodes = [...out.querySelectorAll('*')];
                    return {
                        tags: [...new Set(nodes.map(n => n.tagName))],
                        attributes: [...new Set(nodes.flatMap(n => [...n.attributes].map(a => a.name)))],
                        hrefs: [...out.querySelectorAll('a')].map(a => a.getAttribute('href')),
                        text: out.textContent,
                    };
                }""",
                attack,
            )
            assert set(report["tags"]) <= ALLOWED_TAGS, (attack, report)
            assert set(report["attributes"]) <= {"href", "target", "rel", "start", "data-lang", "class"}, (
                report
            )
            assert all(re.match(r"^https?://", href) for href in report["hrefs"]), (attack, report)
        assert page.evaluate("window.__pwned") is None
        rendered = page.evaluate(
            """() => { const out = document.getElementById('out');
                out.replaceChildren(ParlorMarkdown.render(
                    '## Title\\n\\n**bold**, *em*, `code`, ~~old~~ and https://example.com/a.\\n\\n1. one\\n2. two\\n   - nested'));
                return out.innerHTML; }"""
        )
        assert "<h4>Title</h4>" in rendered
        assert "<strong>bold</strong>" in rendered and "<em>em</em>" in rendered
        assert '<a href="https://example.com/a"' in rendered  # the trailing dot stays outside
        assert "<ol><li>one</li><li>two<ul><li>nested</li></ul></li></ol>" in rendered
    finally:
        page.close()


STREAMED_ANSWERS = [
    "Boots: **30 days**.\n\nRefunds take a week, see https://acme.example/returns.\n\n## Tents\n\nUsed ones *cannot*.",
    "Steps:\n\n1. Pack\n2. Print the label\n\n3. Ship it\n   - by post\n\n10 days later: done.\n\n- a\n- b",
    "Code:\n\n```py\nprint('<b>')\n\nx = 1\n```\nAfter.\n\n```\nunclosed",
    "| size | EU |\n| --- | --- |\n| 8 | 42 |\n\n> quoted\n> more\n\n***\n\n***not a rule***\n\n# Head",
    "Windows\r\nline ends\r\n\r\n- one\r\n- two\r\n\r\nEnd",
    "<script>window.__pwned=1</script>\n\n[x](javascript:window.__pwned=1)\n\n<img src=x onerror=window.__pwned=1>",
    "Intro\na | b\n| --- | --- |\n\n| 1 | 2 |\n| --- | --- |\n| 3 | 4 |\n\n- x\n\n  more of x\n- y\n\n1\n\n1. z\n"
    "# H\ntext right after\n> q\n> - in a quote\n\n~~~\ntilde fence\n~~~\nend *of* it_self_ __x__",
]


def test_streamed_markdown_equals_a_whole_render_at_every_step(browser: Any) -> None:
    """createStream draws block by block; after every piece of text the result is what render() makes."""
    page = module_page(browser)
    try:
        mismatches = page.evaluate(
            """answers => {
                const bad = [];
                const whole = source => {
                    const box = document.createElement('div');
                    box.append(ParlorMarkdown.render(source));
                    return box.innerHTML;
                };
                for (const answer of answers) {
                    const out = document.createElement('div');
                    const stream = ParlorMarkdown.createStream(out);
                    for (let n = 1; n <= answer.length; n++) {  // one character per delta
                        stream.update(answer.slice(0, n));
                        if (out.innerHTML !== whole(answer.slice(0, n))) {
                            bad.push([answer.slice(0, n), out.innerHTML]);
                            break;
                        }
                    }
                    stream.finish(answer);
                    if (out.innerHTML !== whole(answer)) bad.push([answer, out.innerHTML]);
                }
                return bad;
            }""",
            STREAMED_ANSWERS,
        )
        assert mismatches == []
        assert page.evaluate("window.__pwned") is None
    finally:
        page.close()


def test_streamed_markdown_redraws_only_the_block_being_written(browser: Any) -> None:
    page = module_page(browser)
    try:
        report = page.evaluate(
            """() => {
                const out = document.getElementById('out');
                const stream = ParlorMarkdown.createStream(out);
                let text = 'First paragraph, **finished**.\\n\\nSecond';
                stream.update(text);
                text += ' paragraph.\\n\\nThird';  // a blank line ended the first paragraph
                stream.update(text);
                const first = out.firstElementChild;
                const observer = new MutationObserver(() => {});
                observer.observe(out, {childList: true, subtree: true});
                const updates = 400;
                for (let i = 0; i < updates; i++) {
                    text += i % 20 === 19 ? '.\\n\\nMore' : ' word';
                    stream.update(text);
                }
                stream.finish(text);
                const added = observer.takeRecords().flatMap(r => [...r.addedNodes]);
                return {
                    same: out.firstElementChild === first && first.isConnected,
                    firstAddedAgain: added.filter(n => n.textContent.startsWith('First')).length,
                    added: added.length,
                    updates,
                    paragraphs: out.querySelectorAll('p').length,
                };
            }"""
        )
        assert report["same"], report  # the finished paragraph is still the node drawn back then
        assert report["firstAddedAgain"] == 0, report
        assert report["paragraphs"] == 23, report
        # Per update one node (the paragraph being written), plus one when a paragraph is finished; a whole
        # redraw would add every paragraph of the answer again on every update (some 4,800 nodes here).
        assert report["added"] <= report["updates"] + report["paragraphs"], report
    finally:
        page.close()


class ScriptedSocket:
    """Stands in for the chat socket of one page (Playwright routes it): the test sends the server's
    frames itself, one at a time, and reads what the chat sent."""

    def __init__(self, page: Any) -> None:
        self.routes: list[Any] = []
        self.received: list[dict] = []
        page.route_web_socket(re.compile(r".*/ws/chat/.*"), self._accept)

    def _accept(self, ws: Any) -> None:
        ws.on_message(lambda message: self.received.append(json.loads(message)))
        self.routes.append(ws)

    def send(self, **frame: Any) -> None:
        self.routes[-1].send(json.dumps(frame))


def test_chat_draws_a_streaming_answer_block_by_block(
    live_parlor: LiveParlor, new_page: Callable[..., Any]
) -> None:
    bot = make_bot(allowed=[])
    page = new_page()
    socket = ScriptedSocket(page)
    page.goto(f"{live_parlor.url}/chat/{bot.public_id}/")
    for _ in range(100):
        if socket.routes:
            break
        page.wait_for_timeout(50)
    socket.send(type="ready", conversation_id=None, bot={"title": "Scripted", "greeting": "Hello there."})
    page.wait_for_selector(".pc-status[data-state='online']")
    assert page.locator(".pc-title").inner_text() == "Scripted"
    assert page.locator(".pc-msg--greeting").inner_text().endswith("Hello there.")

    page.fill(".pc-input", "Returns?")
    page.press(".pc-input", "Enter")
    page.wait_for_function("() => document.querySelector('.pc-msg--typing')")
    assert socket.received[-1] == {"type": "message", "text": "Returns?"}  # no dead fields

    answer = page.locator(".pc-msg--assistant").last.locator(".pc-text")
    text = ""

    def delta(piece: str) -> None:
        """Send the next piece of the answer and wait until it is drawn (compared without Markdown)."""
        nonlocal text
        text += piece
        socket.send(type="delta", text=piece)
        page.wait_for_function(
            """want => document.querySelector('.pc-msg--assistant:last-child .pc-text')
                .textContent.replace(/\\s+/g, '') === want""",
            arg=re.sub(r"\s+|\*", "", text),
        )

    delta("Boots: **30 days**.")
    delta("\n\nRefunds take")
    # The first paragraph is finished: remember its node, and count the paragraphs drawn from now on.
    page.evaluate(
        """() => {
            const body = document.querySelector('.pc-msg--assistant:last-child .pc-text');
            window.firstParagraph = body.firstElementChild;
            window.drawn = [];
            new MutationObserver(records => records.forEach(r => window.drawn.push(...r.addedNodes)))
                .observe(body, {childList: true});
        }"""
    )
    for i in range(12):
        delta(f" a week{'.' if i % 4 == 3 else ''}" + ("\n\nAnd" if i % 4 == 3 else ""))
    socket.send(type="sources", sources=[{"title": "Returns policy", "url": "https://acme.example/r"}])
    socket.send(type="done", message_id=41, conversation_id="c0ffee00-0000-4000-8000-000000000001",
                incomplete=False, offline=False)  # fmt: skip
    page.wait_for_selector(".pc-msg--assistant .pc-actions")

    assert page.evaluate("() => window.firstParagraph.isConnected")
    assert page.evaluate(
        "() => document.querySelector('.pc-msg--assistant:last-child .pc-text p') === window.firstParagraph"
    )
    assert page.evaluate("() => window.drawn.filter(n => n.textContent.startsWith('Boots')).length") == 0
    assert answer.locator("p").count() == 5
    assert answer.locator("strong").inner_text() == "30 days"
    # What was drawn piece by piece is exactly what the whole answer renders to.
    assert page.evaluate(
        """async text => {
            const md = await import('/static/parlor/markdown.js');
            const box = document.createElement('div');
            box.append(md.render(text));
            return box.innerHTML === document.querySelector('.pc-msg--assistant:last-child .pc-text').innerHTML;
        }""",
        text,
    )
    assert "Returns policy" in page.locator(".pc-sources").inner_text()
    page.get_by_role("button", name="Helpful", exact=True).click()
    assert socket.received[-1] == {"type": "feedback", "message_id": 41, "value": "up"}
    assert page.evaluate("() => ParlorChat.state().conversationId") == "c0ffee00-0000-4000-8000-000000000001"


def test_chat_follows_a_dark_host_page_when_the_bot_says_page(
    live_parlor: LiveParlor, allowed_site: HostPages, new_page: Callable[..., Any]
) -> None:
    bot = make_bot(allowed=[allowed_site.origin], widget_theme="page", widget_position="bottom-left")
    html = host_page_html(live_parlor.url, bot.public_id).replace("background:#f6f1e7", "background:#121417")
    page = new_page()
    page.goto(allowed_site.page("/dark", html))
    frame = open_widget(page)
    assert frame.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.locator("[data-parlor-widget] iframe").bounding_box()["x"] == 20  # bottom-left


SHIPPING_POLICY = """Shipping

We ship boots, tents and jackets to Germany, Austria and Switzerland. Standard delivery takes two to three
working days and costs 5 euros; it is free from 80 euros. Express delivery arrives the next working day.
"""


def test_a_follow_up_shows_the_sources_that_answer_it_and_an_unknown_question_gets_the_fallback(
    live_parlor: LiveParlor,
    allowed_site: HostPages,
    new_page: Callable[..., Any],
    celery_worker: object,
) -> None:
    """Offline and strict, as a fresh install answers: the elliptical follow-up is searched with its
    conversation, so its sources are the article that answers it; an out-of-scope question gets the bot's
    fallback reply, with no sources, instead of quotes from unrelated passages."""
    from knowledge.models import SourceKind, SourceStatus
    from knowledge.services import source_create

    bot = make_bot(allowed=[allowed_site.origin], provider="offline", answer_style="strict")
    give_knowledge(bot)  # "Returns policy", through the real worker
    shipping = source_create(
        organization=bot.organization, kind=SourceKind.TEXT, title="Shipping", text=SHIPPING_POLICY
    )
    for _ in range(600):
        shipping.refresh_from_db()
        if shipping.status in (SourceStatus.READY, SourceStatus.FAILED):
            break
        time.sleep(0.2)
    assert shipping.status == SourceStatus.READY, shipping.status_reason
    bot.sources.add(shipping)
    page = new_page()
    page.goto(allowed_site.page("/", host_page_html(live_parlor.url, bot.public_id)))
    frame = open_widget(page)

    first = ask(frame, "How long do I have to return boots?")
    assert "30 days" in first.locator(".pc-text").inner_text()
    assert "Returns policy" in first.locator(".pc-sources").inner_text()

    follow_up = ask(frame, "and when do I get the money back?")
    assert "week" in follow_up.locator(".pc-text").inner_text()
    titles = follow_up.locator(".pc-sources").inner_text()
    assert "Returns policy" in titles and "Shipping" not in titles

    unknown = ask(frame, "What is the capital of Australia?")
    assert unknown.locator(".pc-text").inner_text().strip() == bot.fallback_reply
    assert unknown.locator(".pc-sources li").count() == 0
    screenshot(page, "widget-follow-up-and-fallback.png")
    stored = Message.objects.filter(conversation__bot=bot, role="assistant").order_by("created_at", "id")
    assert [m.provider == "fallback_reply" for m in stored] == [False, False, True]
    assert stored[1].search_query == "How long do I have to return boots? and when do I get the money back?"
