"""The channels against real servers on loopback: an SMTP server (plain, and STARTTLS with login) and webhooks."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.notify.channels.chat import ChatSender
from services.notify.channels.email import EmailSender, SmtpConfig
from services.notify.channels.failures import DeliveryError
from services.notify.domain.rendering import Message, item, render
from tests.integration.notify.receivers import smtp_server, webhook_receiver
from tests.support.ports import free_port
from tests.unit.notify.builders import notice_of, reminder

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LINK = "https://lessons.example.org/review/r-1"


def message() -> Message:
    return render(
        [item(notice_of(reminder("alice")), "You are this action item's owner.", "https://lessons.example.org/review")]
    )


async def test_an_email_has_headers_both_parts_the_link_and_one_recipient() -> None:
    with smtp_server() as server:
        sender = EmailSender(SmtpConfig("127.0.0.1", server.port, "none", "lessons@example.org"))
        await sender.send("alice@example.org", message(), key="e-1/person:alice/email", now=NOW)
        (received,) = server.sink.messages()
    assert received.sender == "lessons@example.org"
    assert received.recipients == ("alice@example.org",)
    mail = received.message
    assert mail["To"] == "alice@example.org"
    assert mail["From"] == "lessons@example.org"
    assert mail["Subject"] == "Reminder: action item “Add a latency alert” is due 2026-12-02 09:00 UTC"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@example.org>")
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert LINK in plain.get_content()
    assert f'<a href="{LINK}">Open the review</a>' in html.get_content()
    assert "Why you receive this: You are this action item's owner." in plain.get_content()


async def test_starttls_with_login(tmp_path: Path) -> None:
    with smtp_server(tls_folder=tmp_path, login=("notify", "s3cret-for-test")) as server:
        config = SmtpConfig(
            "127.0.0.1",
            server.port,
            "starttls",
            "lessons@example.org",
            username="notify",
            password=SecretStr("s3cret-for-test"),
            ca_file=server.ca_file,
        )
        await EmailSender(config).send("bob@example.org", message(), key="k", now=NOW)
        assert [r.recipients for r in server.sink.messages()] == [("bob@example.org",)]
        assert server.sink.logins == ["notify"]
        # The same server refuses a client that does not trust its certificate: no clear-text fallback.
        untrusting = SmtpConfig("127.0.0.1", server.port, "starttls", "lessons@example.org", username="notify",
                                password=SecretStr("s3cret-for-test"))  # fmt: skip
        with pytest.raises(DeliveryError) as failed:
            await EmailSender(untrusting).send("bob@example.org", message(), key="k", now=NOW)
        assert not failed.value.permanent
        assert "s3cret" not in failed.value.reason


async def test_a_refused_address_is_permanent_and_a_server_down_is_not() -> None:
    with smtp_server() as server:
        server.sink.refuse.add("ghost@example.org")
        sender = EmailSender(SmtpConfig("127.0.0.1", server.port, "none", "lessons@example.org"))
        with pytest.raises(DeliveryError) as refused:
            await sender.send("ghost@example.org", message(), key="k", now=NOW)
    assert refused.value.permanent
    assert "550" in refused.value.reason
    down = EmailSender(SmtpConfig("127.0.0.1", free_port(), "none", "lessons@example.org", timeout_seconds=2))
    with pytest.raises(DeliveryError) as unreachable:
        await down.send("alice@example.org", message(), key="k", now=NOW)
    assert not unreachable.value.permanent


async def test_chat_payloads_reach_each_kind_of_webhook_in_its_format() -> None:
    with webhook_receiver() as receiver:
        receiver.answers["/teams"] = (202, "")
        sender = ChatSender(
            {name: SecretStr(receiver.url(f"/{name}")) for name in ("slack", "mattermost", "teams")},
            {"slack": "slack", "mattermost": "mattermost", "teams": "teams"},
            timeout_seconds=5,
        )
        for name in ("slack", "mattermost", "teams"):
            await sender.send(name, "@alice", message())
        (slack,) = receiver.at("/slack")
        (mattermost,) = receiver.at("/mattermost")
        (teams,) = receiver.at("/teams")
    assert slack.headers["Content-Type"] == "application/json"
    assert set(slack.body) == {"text", "blocks"}
    assert slack.body["blocks"][1]["text"]["type"] == "mrkdwn"
    assert f"<{LINK}|Open the review>" in slack.body["blocks"][1]["text"]["text"]
    assert set(mattermost.body) == {"text"}
    assert f"[Open the review]({LINK})" in mattermost.body["text"]
    assert teams.body["type"] == "message"
    card = teams.body["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert {"type": "Action.OpenUrl", "title": "Open the review", "url": LINK} in card["content"]["body"][-1]["actions"]


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (410, True), (400, True), (302, True), (429, False), (500, False)]
)
async def test_webhook_answers_decide_retry_and_redirects_are_not_followed(status: int, permanent: bool) -> None:
    with webhook_receiver() as receiver:
        receiver.answers["/hook/T000/SECRETPART"] = (status, "no_service")
        sender = ChatSender(
            {"team": SecretStr(receiver.url("/hook/T000/SECRETPART"))}, {"team": "slack"}, timeout_seconds=5
        )
        with pytest.raises(DeliveryError) as failed:
            await sender.send("team", None, message())
        assert receiver.at("/redirected") == []  # only the configured URL is ever contacted
    assert failed.value.permanent is permanent
    assert str(status) in failed.value.reason
    assert "SECRETPART" not in failed.value.reason


async def test_an_unreachable_webhook_is_retried_and_its_url_not_told() -> None:
    sender = ChatSender(
        {"team": SecretStr(f"http://127.0.0.1:{free_port()}/hook/SECRETPART")}, {"team": "teams"}, timeout_seconds=2
    )
    with pytest.raises(DeliveryError) as failed:
        await sender.send("team", None, message())
    assert not failed.value.permanent
    assert "SECRETPART" not in failed.value.reason
