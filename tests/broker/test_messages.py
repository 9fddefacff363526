"""The broker's operations over its real socket: routing, asks and replies, delivery states, errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from podctl.broker import wire
from podctl.broker.records import HookAnswer, Message
from podctl.broker.wire import Client

from ..helpers import BrokerProcess, LocalBroker, podctl, wait_until, write_pod


def test_tell_is_queued_then_read_with_cursor(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        sent = alice.call("tell", to="bob", text="hello bob")
        assert sent["status"] == "queued"
        assert sent["recipients"] == [{"name": "bob", "state": "stopped"}]
        inbox = bob.call("read_messages")
        [msg] = inbox["messages"]
        assert (msg["from"], msg["to"], msg["kind"], msg["text"], msg["urgent"], msg["ask_id"]) == (
            "alice", ["bob"], "tell", "hello bob", False, None
        )
        assert msg["id"] == sent["message_id"] and inbox["next"] == msg["id"]
        assert bob.call("read_messages")["messages"] == [], "read messages are not returned twice"
        assert bob.call("read_messages", since=0)["messages"][0]["id"] == msg["id"], "an explicit cursor re-reads"


def test_broadcast_reaches_every_other_agent(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        sent = alice.call("tell", to="all", text="standup in 5")
    assert sorted(r["name"] for r in sent["recipients"]) == ["bob", "carol"]
    for name in ("bob", "carol"):
        with broker.client(name) as c:
            assert [m["text"] for m in c.call("read_messages")["messages"]] == ["standup in 5"]
    with broker.client("alice") as alice:
        assert alice.call("read_messages")["messages"] == []
        listed = alice.call("tell", to=["bob", "carol", "bob"], text="list form")
        assert [r["name"] for r in listed["recipients"]] == ["bob", "carol"]


def test_ask_reply_round_trip_with_delivery_states(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        asked = alice.call("ask", to="bob", text="review src/app.py")
        ask_id = asked["ask_id"]
        checked = alice.call("check_replies", ask_id=ask_id)
        assert checked["status"] == "waiting" and checked["waiting_on"] == ["bob"]
        assert [d["state"] for d in checked["delivery"]] == ["queued"]

        result: dict[str, Any] = {}
        waiter = threading.Thread(
            target=lambda: result.update(
                broker.client("alice", timeout=20).call("wait_for_reply", ask_id=ask_id, timeout_ms=15000)
            )
        )
        waiter.start()
        [msg] = bob.call("read_messages")["messages"]
        assert msg["kind"] == "ask" and msg["ask_id"] == ask_id
        assert alice.call("check_replies", ask_id=ask_id)["delivery"][0]["state"] == "read"
        reply = bob.call("post_reply", ask_id=ask_id, text="LGTM")
        assert reply["followup"] is False
        waiter.join(timeout=20)
        assert result["status"] == "replied"
        assert [(r["from"], r["text"]) for r in result["replies"]] == [("bob", "LGTM")]

        again = bob.call("post_reply", ask_id=ask_id, text="one more thing")
        assert again["followup"] is True
        final = alice.call("check_replies", ask_id=ask_id)
        assert [r["text"] for r in final["replies"]] == ["LGTM"], "a follow-up never changes the answer"
        kinds = [(m["kind"], m["followup"]) for m in alice.call("read_messages")["messages"]]
        assert kinds == [("reply", True)], "the answer wait_for_reply returned is read; only the follow-up is new"


def test_wait_for_reply_times_out_without_hanging(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        ask_id = alice.call("ask", to="bob", text="anyone?")["ask_id"]
        result = alice.call("wait_for_reply", ask_id=ask_id, timeout_ms=200)
    assert result["status"] == "timeout" and result["waiting_on"] == ["bob"] and result["replies"] == []


def test_ask_to_several_waits_for_all(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob, broker.client("carol") as carol:
        ask_id = alice.call("ask", to=["bob", "carol"], text="vote")["ask_id"]
        bob.call("post_reply", ask_id=ask_id, text="yes")
        partial = alice.call("wait_for_reply", ask_id=ask_id, timeout_ms=100)
        assert partial["status"] == "timeout" and partial["waiting_on"] == ["carol"]
        carol.call("post_reply", ask_id=ask_id, text="no")
        done = alice.call("wait_for_reply", ask_id=ask_id, timeout_ms=5000)
        assert done["status"] == "replied"
        assert sorted((r["from"], r["text"]) for r in done["replies"]) == [("bob", "yes"), ("carol", "no")]


@pytest.mark.parametrize(
    ("op", "args", "code"),
    [
        ("tell", {"to": "zed", "text": "hi"}, wire.UNKNOWN_AGENT),
        ("tell", {"to": "bob", "text": "   "}, wire.EMPTY_TEXT),
        ("tell", {"to": "bob", "text": "x" * 70_000}, wire.TOO_LARGE),
        ("tell", {"to": 42, "text": "hi"}, wire.BAD_REQUEST),
        ("ask", {"to": "alice", "text": "me?"}, wire.BAD_REQUEST),
        ("wait_for_reply", {"ask_id": 999, "timeout_ms": 10}, wire.UNKNOWN_ASK),
        ("check_replies", {"ask_id": 999}, wire.UNKNOWN_ASK),
        ("post_reply", {"ask_id": 999, "text": "x"}, wire.UNKNOWN_ASK),
        ("read_messages", {"since": -1}, wire.BAD_REQUEST),
        ("frobnicate", {}, wire.BAD_REQUEST),
        ("tell", {"text": "no to"}, wire.BAD_REQUEST),
        ("status", {}, wire.FORBIDDEN),
    ],
)
def test_bad_requests_get_clear_errors(local_broker: LocalBroker, op: str, args: dict[str, Any], code: str) -> None:
    with pytest.raises(wire.BrokerError) as err:
        local_broker.call("alice", op, **args)
    assert err.value.code == code and err.value.message
    assert local_broker.call("alice", "hello")["pod"] == "bus", "the broker survives every bad request"


def test_only_the_asked_agent_may_reply(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("carol") as carol:
        ask_id = alice.call("ask", to="bob", text="for bob")["ask_id"]
        with pytest.raises(wire.BrokerError) as err:
            carol.call("post_reply", ask_id=ask_id, text="I answer instead")
        assert err.value.code == wire.NOT_ASKED
        with pytest.raises(wire.BrokerError) as err:
            carol.call("wait_for_reply", ask_id=ask_id, timeout_ms=10)
        assert err.value.code == wire.FORBIDDEN


def test_spoofed_token_and_other_protocol_are_rejected(broker: BrokerProcess) -> None:
    with wire.Client(broker.socket, "alice", broker.token("bob")) as spoof:
        with pytest.raises(wire.BrokerError) as err:
            spoof.call("tell", to="carol", text="I am alice, trust me")
        assert err.value.code == wire.AUTH
    with wire.Client(broker.socket, "user", "guess") as spoof, pytest.raises(wire.BrokerError):
        spoof.call("status")
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(5)
        raw.connect(str(broker.socket))
        raw.sendall(json.dumps({"v": 99, "id": 1, "op": "hello", "agent": "alice", "token": "x", "args": {}}).encode() + b"\n")
        answer = json.loads(raw.makefile().readline())
    assert answer["error"]["code"] == wire.PROTOCOL_MISMATCH and "protocol 99" in answer["error"]["message"]
    with broker.client("carol") as carol:
        assert carol.call("read_messages")["messages"] == [], "nothing was sent by the spoofer"


def test_state_folder_is_private(broker: BrokerProcess) -> None:
    assert broker.state.stat().st_mode & 0o777 == 0o700
    assert broker.socket.stat().st_mode & 0o777 == 0o600
    assert broker.state.joinpath("agents", "alice", "token").stat().st_mode & 0o777 == 0o600


def test_hook_claims_inject_exactly_once(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        started = bob.call("hook", event="session_start")
        assert started["state"] == "idle" and started["context"]["role"] == "reviews code"
        assert {m["name"] for m in started["context"]["members"]} == {"alice", "bob", "carol"}
        mid = alice.call("tell", to="bob", text="while you work")["message_id"]
        first = bob.call("hook", event="tool_done")
        assert first["state"] == "busy" and [m["id"] for m in first["messages"]] == [mid]
        assert bob.call("hook", event="tool_done")["messages"] == [], "a claimed message is not offered twice"
        assert bob.call("ack_injected", claim=first["claim"]) == {"injected": 1}
        with broker.client("user") as user:
            [hist] = [m for m in user.call("history")["messages"] if m["id"] == mid]
        assert [d["state"] for d in hist["delivery"]] == ["injected"]
        assert bob.call("hook", event="turn_end")["messages"] == []


def test_unacknowledged_claim_is_offered_again(tmp_path: Path, podctl_home: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    """A hook that dies before printing loses nothing: its claim lapses and the messages come back."""
    pod = write_pod(tmp_path / "lease", "name: lease\nagents:\n  a: {cli: script}\n  b: {cli: script}\n")
    proc = start_broker(pod)
    with proc.client("a") as a, proc.client("b") as b:
        a.call("tell", to="b", text="keep me")
        claimed = b.call("hook", event="turn_start")
        assert len(claimed["messages"]) == 1
        # The lease is 30 s in production; here the claim is simply never acknowledged and
        # read_messages still returns the message: nothing was marked delivered.
        assert [m["text"] for m in b.call("read_messages")["messages"]] == ["keep me"]


def test_message_to_stopped_agent_is_queued_and_says_so(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        bob.call("hook", event="session_start")
        states = {r["name"]: r["state"] for r in alice.call("tell", to="all", text="hi")["recipients"]}
        assert states == {"bob": "idle", "carol": "stopped"}


def test_undelivered_message_produces_notice(tmp_path: Path, podctl_home: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    pod = write_pod(
        tmp_path / "nd",
        "name: nd\nlimits: {undelivered_notice_s: 0.5}\nagents:\n  a: {cli: script}\n  b: {cli: script}\n",
    )
    proc = start_broker(pod)
    with proc.client("a") as a:
        mid = a.call("tell", to="b", text="are you there?")["message_id"]

        def notice() -> list[Message]:
            return [m for m in a.call("read_messages", since=0)["messages"] if m["kind"] == "notice"]

        [msg] = wait_until(notice, timeout=20, message="a non-delivery notice")
        assert msg["from"] == "podctl" and f"#{mid}" in msg["text"] and "b is stopped" in msg["text"]
        assert len(notice()) == 1, "one notice per undelivered message"


def test_message_size_limit_comes_from_the_pod_file(tmp_path: Path, podctl_home: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    pod = write_pod(
        tmp_path / "lim", "name: lim\nlimits: {message_bytes: 100}\nagents:\n  a: {cli: script}\n  b: {cli: script}\n"
    )
    proc = start_broker(pod)
    with proc.client("a") as a:
        a.call("tell", to="b", text="x" * 100)
        with pytest.raises(wire.BrokerError) as err:
            a.call("tell", to="b", text="x" * 101)
        assert err.value.code == wire.TOO_LARGE and "limits.message_bytes" in err.value.message


def test_send_tail_and_prune_from_the_cli(broker: BrokerProcess) -> None:
    out = podctl("send", "bus", "--to", "bob", "--ask", "please review").stdout
    assert "ask #" in out and "bob (stopped)" in out
    podctl("send", "bus", "--to", "alice", "--urgent", "fire!")
    text = podctl("tail", "bus").stdout
    assert "user → bob ask #" in text and "please review" in text and "URGENT" in text
    lines = [json.loads(line) for line in podctl("tail", "bus", "--json").stdout.splitlines()]
    assert [m["kind"] for m in lines] == ["ask", "tell"] and lines[1]["urgent"] is True
    assert all({"id", "ts", "from", "to", "kind", "text", "ask_id", "urgent", "delivery"} <= set(m) for m in lines)
    bad = podctl("send", "bus", "--to", "nobody", "hi", check=False)
    assert bad.returncode == 1 and "no agent or route 'nobody'" in bad.stderr
    assert "deleted 2 messages" in podctl("prune", "bus", "--older-than", "0s").stdout
    assert podctl("tail", "bus").stdout == ""


def test_tail_follow_streams_new_messages(broker: BrokerProcess) -> None:
    import subprocess

    from ..helpers import PODCTL

    podctl("send", "bus", "--to", "bob", "before")
    follower = subprocess.Popen([*PODCTL, "tail", "bus", "--follow"], stdout=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    try:
        assert "before" in follower.stdout.readline()
        with broker.client("alice") as alice:
            alice.call("tell", to="bob", text="after")
        assert "alice → bob tell: after" in follower.stdout.readline()
    finally:
        follower.kill()
        follower.wait(timeout=10)


def test_hook_batch_is_bounded_in_count_and_points_once_to_what_can_never_fit(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        big = alice.call("ask", to="bob", text="B" * (wire.HOOK_BATCH_BYTES + 1))["ask_id"]
        small = [alice.call("tell", to="bob", text=f"s{n}")["message_id"] for n in range(wire.HOOK_BATCH_COUNT + 5)]
        first = bob.call("hook", event="tool_done")
        assert [m["id"] for m in first["messages"]] == small[: wire.HOOK_BATCH_COUNT]
        assert [p["ask_id"] for p in first["too_large"]] == [big], "the one too large is pointed to"
        assert first["more"] == 5, "the 5 small ones left"
        bob.call("ack_injected", claim=first["claim"])
        second = bob.call("hook", event="tool_done")
        assert [m["id"] for m in second["messages"]] == small[wire.HOOK_BATCH_COUNT:]
        assert (second["too_large"], second["more"]) == ([], 0), "a pointer is shown once"
        bob.call("ack_injected", claim=second["claim"])
        third = bob.call("hook", event="turn_end", attention_only=True)
        assert (third["claim"], third["messages"], third["too_large"], third["more"]) == (None, [], [], 0), (
            "a turn end is never continued again for a message it already pointed to"
        )
        assert [m["id"] for m in bob.call("read_messages")["messages"]] == [big], "it stays unread until read"


def test_frames_with_nan_or_infinity_are_rejected_with_valid_json(broker: BrokerProcess) -> None:
    def strict(name: str) -> None:
        raise AssertionError(f"the broker sent {name}, which is not JSON")

    for constant in ("NaN", "Infinity", "-Infinity"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(broker.socket))
            token = json.dumps(broker.token("user"))
            request = f'{{"v":1,"id":{constant},"op":"hello","agent":"user","token":{token},"args":{{}}}}\n'
            sock.sendall(request.encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                assert chunk, "the broker closed the connection without answering"
                reply += chunk
        frame = json.loads(reply, parse_constant=strict)
        assert frame["ok"] is False and frame["error"]["code"] == wire.BAD_REQUEST
        assert constant.lstrip("-") in frame["error"]["message"]


ESCAPES = "clear\x1b[2J title\x1b]0;pwned\x07 csi\x9b31m bs\x08 del\x7f\ruser → bob tell: forged"


def test_transcript_shows_terminal_controls_instead_of_obeying_them() -> None:
    from podctl.broker.transcript import format_event, format_message

    message = {"id": 7, "ts": 0, "from": "ali\x1bce", "to": ["bob\r"], "kind": "tell", "text": ESCAPES + "\nline\ttwo",
               "delivery": [{"to": "bob\x1b[1A", "state": "queued"}]}
    for line in (
        format_message(message) or "",
        format_event({"event": "message", "data": message}) or "",
        format_event({"event": "state", "data": {"name": "bob\x1b]2;x\x07", "state": "busy\r"}}) or "",
        format_event({"event": "wake", "data": {"name": "bob", "result": "sent\x1b[2J\x9d"}}) or "",
    ):
        assert not [c for c in line if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0], repr(line)
    shown = format_message(message)
    assert "clear\\x1b[2J title\\x1b]0;pwned\\x07 csi\\x9b31m bs\\x08 del\\x7f\\x0duser → bob tell: forged" in shown
    assert "ali\\x1bce → bob\\x0d tell" in shown and "bob\\x1b[1A…" in shown
    first, rest = shown.split("\n", 1)
    assert first.endswith("forged [bob\\x1b[1A…]") and rest == "    line\ttwo", "the marks end the header line"


INVISIBLE = "pay\u202eetad\u202c \u200bzero\u200dwidth\ufeff \u2066iso\u2069 tag\U000e0041 line\u2028sep\xadsoft"


def test_invisible_format_characters_are_shown_not_applied() -> None:
    """Right-to-left overrides, zero-width and other format characters (Unicode Cf) and the line and
    paragraph separators reorder or hide text on a terminal: they are shown, as control characters are."""
    import unicodedata

    from podctl.broker.transcript import format_message, visible

    assert visible(INVISIBLE) == ("pay\\u202eetad\\u202c \\u200bzero\\u200dwidth\\ufeff \\u2066iso\\u2069"
                                  " tag\\U000e0041 line\\u2028sep\\xadsoft")
    shown = format_message({"id": 1, "ts": 0, "from": "a\u202eb", "to": ["c"], "kind": "tell", "text": INVISIBLE})
    hidden = [c for c in shown if unicodedata.category(c) in ("Cf", "Zl", "Zp")]
    assert not hidden, hidden
    every = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf")
    assert not [c for c in visible(every) if unicodedata.category(c) == "Cf"], "every Cf of this Python's Unicode"


def test_tail_renders_escapes_visibly_and_json_keeps_them(broker: BrokerProcess) -> None:
    import subprocess

    from ..helpers import PODCTL

    with broker.client("alice") as alice:
        alice.call("tell", to="bob", text=ESCAPES)
    text = subprocess.run([*PODCTL, "tail", "bus"], capture_output=True, timeout=60, check=True).stdout.decode()
    assert "\x1b" not in text and "\r" not in text and "\x9b" not in text
    assert "title\\x1b]0;pwned\\x07" in text and "\\x0duser → bob tell: forged" in text
    [line] = podctl("tail", "bus", "--json").stdout.splitlines()
    assert json.loads(line)["text"] == ESCAPES


# -- answered asks, follow-ups, expiry ---------------------------------------------------------------


def test_read_messages_and_hooks_mark_the_asks_already_answered(local_broker: LocalBroker) -> None:
    from podctl.hooks.path.text import injection

    first = local_broker.call("alice", "ask", to="bob", text="old question")["ask_id"]
    local_broker.call("bob", "read_messages")
    local_broker.call("bob", "post_reply", ask_id=first, text="old answer")
    second = local_broker.call("alice", "ask", to="bob", text="new question")["ask_id"]
    inbox = local_broker.call("bob", "read_messages", since=0)["messages"]
    assert [(m["ask_id"], m["answered"]) for m in inbox if m["kind"] == "ask"] == [(first, True), (second, False)]
    third = local_broker.call("carol", "ask", to="bob", text="answered before it was shown")["ask_id"]
    local_broker.call("bob", "post_reply", ask_id=third, text="guessed it")
    shown = local_broker.call("bob", "hook", event="turn_start")
    assert [(m["ask_id"], m["answered"]) for m in shown["messages"]] == [(third, True)]
    assert f"ask #{third} from carol (you already answered this" in (injection(cast("HookAnswer", shown)) or "")


def test_a_reply_to_an_answered_ask_is_a_follow_up_that_names_the_ask_still_open(local_broker: LocalBroker) -> None:
    first = local_broker.call("alice", "ask", to="bob", text="old question")["ask_id"]
    local_broker.call("bob", "post_reply", ask_id=first, text="old answer")
    second = local_broker.call("carol", "ask", to="bob", text="the real question")["ask_id"]
    again = local_broker.call("bob", "post_reply", ask_id=first, text="meant for the new one")
    assert again["followup"] and again["to"] == ["alice"]
    assert again["open_asks"] == [{"ask_id": second, "from": "carol"}]
    assert f"already answered ask #{first}" in again["note"] and f"ask #{second} from carol" in again["note"]
    assert f"post_reply(ask_id={second}" in again["note"]
    [follow] = local_broker.call("alice", "read_messages")["messages"][-1:]
    assert (follow["from"], follow["text"], follow["followup"]) == ("bob", "meant for the new one", True)
    local_broker.call("bob", "post_reply", ask_id=second, text="the real answer")
    assert "open_asks" not in local_broker.call("bob", "post_reply", ask_id=second, text="one more thing")


ROUTED = """\
name: {name}
agents:
  lead: {{cli: script}}
  bob: {{cli: script}}
  carol: {{cli: script}}
routes:
  - name: review
    to: [bob, carol]
    timeout: {timeout}
"""


def expiry_notices(client: Client) -> list[Message]:
    return [m for m in client.call("read_messages")["messages"] if m["kind"] == "notice" and "expired" in m["text"]]


def test_an_expired_ask_tells_its_asker_what_arrived_and_who_did_not_answer(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    proc = start_broker(write_pod(tmp_path / "exp", ROUTED.format(name="exp", timeout="1s")))
    with proc.client("lead") as lead, proc.client("bob") as bob:
        ask_id = lead.call("ask", to="review", text="ship it?")["ask_id"]
        bob.call("post_reply", ask_id=ask_id, text="yes from bob")
        [notice] = wait_until(lambda: expiry_notices(lead), timeout=10, message="the expiry notice")
    assert notice["from"] == "podctl" and notice["urgent"] and notice["ask_id"] == ask_id
    assert f"Your ask #{ask_id} (route review) expired: no answer from carol" in notice["text"]
    assert "[bob]\nyes from bob" in notice["text"]
    with proc.client("user") as user:
        assert any(m["id"] == notice["id"] for m in user.call("history")["messages"]), "in the transcript"


def test_an_asker_told_expired_by_its_wait_gets_no_notice_and_an_expiry_survives_a_restart(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    proc = start_broker(write_pod(tmp_path / "exr", ROUTED.format(name="exr", timeout="2s")))
    with proc.client("lead") as lead:
        waited = lead.call("ask", to="review", text="seen by the wait")["ask_id"]
        assert lead.call("wait_for_reply", ask_id=waited, timeout_ms=20_000)["status"] == "expired"
        restarted = lead.call("ask", to="review", text="expires while the broker is down")["ask_id"]
    proc.stop()
    proc.start()
    with proc.client("lead") as lead:
        [notice] = wait_until(lambda: expiry_notices(lead), timeout=10, message="the expiry after the restart")
        assert notice["ask_id"] == restarted and "Nobody answered" in notice["text"]
        assert expiry_notices(lead) == []


def test_asks_that_expired_before_the_upgrade_give_no_notice(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    """A store of schema 4 holds route asks that expired long ago: opening it under schema 5 does not
    tell their askers now (only asks expiring from then on are told)."""
    import sqlite3
    import time

    from podctl.broker.paths import PodPaths
    from podctl.broker.store import MIGRATIONS

    db = PodPaths.of("upg").ensure().db
    conn = sqlite3.connect(db)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    old = time.time() - 3600
    conn.executescript(
        f"INSERT INTO messages(id, ts, sender, kind, recipients, target, text, ask_id) VALUES"
        f" (1, {old}, 'lead', 'ask', '[\"bob\",\"carol\"]', 'review', 'long ago', 1);"
        f"INSERT INTO asks(id, asker, mode, route, deadline) VALUES (1, 'lead', 'all', 'review', {old + 60});"
        "INSERT INTO ask_targets(ask_id, agent) VALUES (1, 'bob'), (1, 'carol');"
    )
    conn.close()
    proc = start_broker(write_pod(tmp_path / "upg", ROUTED.format(name="upg", timeout="1s")))
    with proc.client("lead") as lead:
        new = lead.call("ask", to="review", text="now")["ask_id"]
        notices = wait_until(lambda: expiry_notices(lead), timeout=10, message="the new ask's expiry notice")
    assert [n["ask_id"] for n in notices] == [new]
