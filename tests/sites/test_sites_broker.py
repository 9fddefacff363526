"""The broker's side of a pod across machines, three sites in this process (twosites.py carries what the
bridge would): exactly once, receipts, asks and replies across sites, refusals, membership."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from podctl.broker import wire
from podctl.broker.paths import BRIDGE

from ..helpers import wait_until
from .twosites import Site, Sites


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    handle = Sites(tmp_path)
    yield handle
    handle.close()


def texts(site: Site, agent: str) -> list[str]:
    return [m["text"] for m in site.call("user", "history", limit=1000)["messages"] if m["kind"] != "log"]


def test_an_ask_to_another_site_is_answered_and_settles_the_ask(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    asked = a.call("writer", "ask", to="reviewer", text="review please")
    assert asked["recipients"] == [{"name": "reviewer", "state": "unknown", "site": "b"}]
    sites.carry()
    inbox = b.call("reviewer", "read_messages")["messages"]
    assert [(m["from"], m["kind"], m["text"]) for m in inbox] == [("writer", "ask", "review please")]
    b.call("reviewer", "post_reply", ask_id=inbox[0]["ask_id"], text="LGTM")
    sites.carry()
    waited = a.call("writer", "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=0)
    assert waited["status"] == "replied"
    assert [(r["from"], r["text"]) for r in waited["replies"]] == [("reviewer", "LGTM")]
    assert sites.lost == []


def test_receipts_come_back_queued_injected_read(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    sent = a.call("writer", "tell", to="reviewer", text="one")
    sites.carry()
    delivery = a.call("writer", "check_replies", ask_id=a.call("writer", "ask", to="reviewer", text="q")["ask_id"])
    assert delivery["delivery"][0]["state"] == "queued"
    hook = b.call("reviewer", "hook", event="turn_start")
    b.call("reviewer", "ack_injected", claim=hook["claim"])
    sites.carry()
    history = a.call("user", "history")["messages"]
    states = {m["id"]: m["delivery"] for m in history}
    assert states[sent["message_id"]][0]["state"] == "injected"
    b.call("reviewer", "read_messages", since=0)
    sites.carry()
    states = {m["id"]: m["delivery"] for m in a.call("user", "history")["messages"]}
    assert states[sent["message_id"]][0]["state"] == "read"
    outbox = a.run(a.store.rconn.execute_fetchall("SELECT arrived_at FROM site_outbox"))
    assert outbox and all(row[0] is not None for row in outbox), "site b's queued receipt marks each message arrived"


def test_a_publish_repeated_after_a_crash_is_stored_once(sites: Sites) -> None:
    """The bridge died after JetStream acknowledged its publish and before it marked it sent: the broker
    hands it over again, it is published again, and site b stores it once."""
    a, b = sites["a"], sites["b"]
    for n in range(5):
        a.call("writer", "tell", to="reviewer", text=f"m{n}")
    first = a.pull()["messages"]
    for item in first:
        assert sites.deliver("a", "b", item["envelope"])[0]["result"] == "stored"
    again = a.pull()["messages"]
    assert [i["msg_id"] for i in again] == [i["msg_id"] for i in first], "unsent items are handed over again"
    assert [sites.deliver("a", "b", i["envelope"])[0]["result"] for i in again] == ["duplicate"] * 5
    sites.carry()
    assert texts(b, "reviewer") == [f"m{n}" for n in range(5)]
    assert a.pull()["messages"] == []


def test_only_the_bridge_calls_bridge_operations_and_the_bridge_calls_nothing_else(sites: Sites) -> None:
    a = sites["a"]
    refused = a.answer("writer", "bridge_pull", timeout_ms=0)
    assert refused["error"]["code"] == wire.FORBIDDEN
    assert a.answer("user", "bridge_receive", site="b", envelopes=[])["error"]["code"] == wire.FORBIDDEN
    told = a.answer(BRIDGE, "tell", to="writer", text="as nobody")
    assert told["error"]["code"] == wire.FORBIDDEN and "bridge may use only" in told["error"]["message"]
    assert (a.paths.root / "bridge.token").stat().st_mode & 0o777 == 0o600
    assert not (a.paths.agents / "reviewer").exists(), "no token for an agent of another site"


def test_a_site_speaks_only_for_itself(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    a.call("writer", "tell", to="reviewer", text="hi")
    envelope = a.pull()["messages"][0]["envelope"]
    claims_a_on_c = sites.deliver("c", "b", envelope)[0]
    assert claims_a_on_c["result"] == "refused" and "came on the subjects of site 'c'" in claims_a_on_c["why"]
    forged = {**envelope, "site": "c", "message": {**envelope["message"], "from": "writer"}}
    assert "not an agent of site c" in sites.deliver("c", "b", forged)[0]["why"]
    own = {**envelope, "site": "b"}
    assert "not another site" in sites.deliver("b", "b", own)[0]["why"]
    assert sites.deliver("a", "b", {"v": 1, "kind": "msg"})[0]["result"] == "refused"
    asked = a.call("writer", "ask", to="reviewer", text="q")
    sites.carry()
    reply = {"v": 1, "kind": "msg", "site": "c", "ask_ref": ["a", asked["ask_id"]],
             "message": {"id": 99, "ts": 1.0, "from": "checker", "kind": "reply", "to": ["writer"], "text": "me too"}}
    got = sites.deliver("c", "a", reply)[0]
    assert got["result"] == "refused" and "was not sent to it" in got["why"]
    refused = {s["name"]: s.get("refused") for s in b.call("user", "status")["sites"]["sites"]}
    assert refused == {"a": 1, "b": None, "c": 2}


def test_a_reply_that_arrives_before_its_ask_waits_for_it(sites: Sites) -> None:
    """An ask from a to reviewer (b) and checker (c); reviewer's reply reaches c before a's ask does."""
    a, b, c = sites["a"], sites["b"], sites["c"]
    asked = a.call("writer", "ask", to=["reviewer", "checker"], text="both of you")
    due = a.pull()["messages"]
    to_b = next(i for i in due if i["site"] == "b")
    to_c = next(i for i in due if i["site"] == "c")
    sites.deliver("a", "b", to_b["envelope"])
    ask_at_b = b.call("reviewer", "read_messages")["messages"][0]
    b.call("reviewer", "post_reply", ask_id=ask_at_b["ask_id"], text="from b")
    replies = {i["site"]: i for i in b.pull()["messages"]}
    assert set(replies) == {"a", "c"}, "a reply goes to the asker's site and to the sites of the ask's other targets"
    assert sites.deliver("b", "c", replies["c"]["envelope"])[0]["result"] == "later"
    sites.deliver("a", "c", to_c["envelope"])
    assert sites.deliver("b", "c", replies["c"]["envelope"])[0]["result"] == "stored"
    sites.deliver("b", "a", replies["a"]["envelope"])
    status = a.call("writer", "check_replies", ask_id=asked["ask_id"])
    assert status["waiting_on"] == ["checker"] and [r["from"] for r in status["replies"]] == ["reviewer"]
    open_at_c = c.call("user", "asks")["asks"][0]
    assert open_at_c["waiting_on"] == ["checker"], "site c knows reviewer answered"


def test_every_member_of_every_site_is_listed_with_its_reported_state(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    listed = {m["name"]: m for m in a.call("writer", "list_agents")["agents"]}
    assert listed["reviewer"]["site"] == "b" and listed["reviewer"]["remote"] is True
    assert listed["reviewer"]["state"] == "unknown" and listed["reviewer"]["reported_at"] is None
    assert "workdir" not in listed["reviewer"] and listed["writer"]["site"] == "a"
    b.call("reviewer", "hook", event="turn_start")
    sites.carry()
    status = {m["name"]: m for m in a.call("user", "status")["agents"]}
    assert status["reviewer"]["state"] == "busy" and status["reviewer"]["reported_at"] is not None
    assert status["checker"]["state"] == "stopped", "site c reported its agent"
    assert {s["name"] for s in a.call("user", "status")["sites"]["sites"]} == {"a", "b", "c"}
    b_status = {m["name"]: m for m in b.call("user", "status")["agents"]}
    assert set(b_status) == {"writer", "tester", "reviewer", "checker"}
    assert b_status["writer"]["site"] == "a" and b_status["reviewer"].get("remote") is None


def test_a_message_to_all_crosses_to_every_site_once(sites: Sites) -> None:
    a, b, c = sites["a"], sites["b"], sites["c"]
    sent = a.call("writer", "tell", to="all", text="standup")
    assert {r["name"] for r in sent["recipients"]} == {"tester", "reviewer", "checker"}
    sites.carry()
    assert [m["text"] for m in b.call("reviewer", "read_messages")["messages"]] == ["standup"]
    assert [m["text"] for m in c.call("checker", "read_messages")["messages"]] == ["standup"]
    assert b.call("user", "status")["pending_deliveries"] == {}, "site b holds deliveries only for its own agents"
    pull = b.pull()
    assert pull["messages"] == [], "a message from another site is never sent on again"


def test_a_remote_agent_is_never_woken_here_and_not_noticed_twice(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    a.call("writer", "ask", to="reviewer", text="q")
    sites.carry()
    overdue_at_b = b.run(b.store.overdue(10**11))
    assert overdue_at_b == [], "the non-delivery notice of a message from another site is its own site's"
    assert a.broker.wakeable("reviewer") is False


def test_a_rule_at_one_site_asks_a_reviewer_at_another_with_the_diff(tmp_path: Path) -> None:
    from ..helpers import git_repo

    repo = git_repo(tmp_path / "repo")
    extra = (f"workdir: {repo}\n"
             "rules:\n  - {name: review, on: turn_end, agent: writer, ask: reviewer, text: 'review:\\n{diff}'}\n")
    sites = Sites(tmp_path / "pods", extra=extra)
    try:
        a, b = sites["a"], sites["b"]
        (repo / "app.py").write_text("print('hello across sites')\n")
        a.call("writer", "hook", event="turn_end")
        a.run(wait_until_async(lambda: a.broker.rules.firings))
        sites.carry()
        asked = b.call("reviewer", "read_messages")["messages"]
        assert len(asked) == 1 and asked[0]["from"] == "podctl" and asked[0]["origin"] == "rule:review"
        assert "print('hello across sites')" in asked[0]["text"]
        b.call("reviewer", "post_reply", ask_id=asked[0]["ask_id"], text="ship it")
        assert b.pull()["messages"][0]["envelope"]["message"]["to"] == [], "the rule's site gathers the answers"
        sites.carry()
        got = a.call("writer", "read_messages")["messages"]
        gathered = [m for m in got if m["origin"] == "rule:review" and m["kind"] == "tell"]
        assert gathered and "ship it" in gathered[0]["text"], got
        assert not a.broker.rules.firings
        assert b.broker.rules.firings == {}
    finally:
        sites.close()


async def wait_until_async(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    import asyncio
    import time

    from ..helpers import scaled

    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_hand_off_to_an_agent_of_another_site_reaches_it(sites: Sites) -> None:
    a, b = sites["a"], sites["b"]
    a.call("user", "tell", to="writer", text="build the parser")
    handed = a.call("user", "handoff", **{"from": "writer"}, to="reviewer", reason="writer is rate limited")
    assert handed["to"] == "reviewer"
    sites.carry()
    got = b.call("reviewer", "read_messages")["messages"]
    assert len(got) == 1 and got[0]["origin"] == "handoff" and got[0]["urgent"] is True
    assert "HAND-OFF: you take over the work of writer" in got[0]["text"] and "build the parser" in got[0]["text"]


def test_the_pods_budget_counts_what_every_site_spent(tmp_path: Path) -> None:
    extra = "limits: {budget_usd: 1.0}\npricing: {m1: {input: 1.0, cached_input: 0.0, output: 0.0}}\n"
    sites = Sites(tmp_path, extra=extra)
    try:
        a, b = sites["a"], sites["b"]
        record = {"key": "r1", "model": "m1", "ts": 1.0, "input": 2_000_000, "cached": 0, "output": 0, "reasoning": 0}
        b.call("user", "usage_report", of="reviewer", path="/nowhere", inode=1, offset=1, state={}, records=[record])
        assert next(x for x in b.call("user", "status")["agents"] if x["name"] == "reviewer")["over_budget"]
        sites.carry()
        status = a.call("user", "status")
        assert status["usage"]["cost_usd"] == 2.0, "site a counts site b's spending in the pod's budget"
        over = {x["name"]: x["over_budget"] for x in status["agents"]}
        assert over["writer"] and over["reviewer"], over
        assert a.broker.wakeable("writer") is False
    finally:
        sites.close()


def test_the_sender_hears_of_a_message_no_model_at_another_site_has_seen(tmp_path: Path) -> None:
    """The non-delivery notice is the sending site's, from the receipts it got: reviewer (site b) took its
    tell, checker (site c) never did; only checker's is noticed, once."""
    sites = Sites(tmp_path, extra="limits: {undelivered_notice_s: 0.2}\n")
    try:
        a, b = sites["a"], sites["b"]
        a.call("writer", "tell", to="reviewer", text="taken")
        lost = a.call("writer", "tell", to="checker", text="never seen")
        sites.carry()
        hook = b.call("reviewer", "hook", event="turn_start")
        b.call("reviewer", "ack_injected", claim=hook["claim"])
        sites.carry()
        assert wait_until(lambda: a.run(a.broker.send_overdue_notices()), timeout=10) == 1
        notices = [m["text"] for m in a.call("writer", "read_messages")["messages"] if m["kind"] == "notice"]
        assert len(notices) == 1 and f"your tell #{lost['message_id']} to checker" in notices[0], notices
        assert "reviewer" not in notices[0]
        assert a.run(a.broker.send_overdue_notices()) == 0, "noticed once"
    finally:
        sites.close()
