"""The broker across restarts and pod file changes: cursors, registry sync, removed agents."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from podctl.broker import wire

from ..helpers import BrokerProcess, LocalBroker, git_repo, wait_until, write_pod


def test_read_cursor_and_history_survive_restart(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        alice.call("tell", to="bob", text="one")
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["one"]
        alice.call("tell", to="bob", text="two")
    broker.stop()
    broker.start()
    with broker.client("bob") as bob:
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["two"]
        assert bob.call("list_agents")["agents"][0]["name"] == "alice"


def test_sync_adds_removes_and_announces_role_changes(broker: BrokerProcess) -> None:
    broker.pod_file.write_text(
        "name: bus\nagents:\n  alice: {cli: script, role: now leads the team}\n  bob: {cli: script}\n"
        "  dave: {cli: script, role: new}\n"
    )
    diff = broker.sync()
    assert diff == {"added": ["dave"], "removed": ["carol"], "changed": ["alice", "bob"]}
    with broker.client("alice") as alice:
        [notice] = alice.call("read_messages")["messages"]
        assert notice["kind"] == "notice" and "now leads the team" in notice["text"]
        with pytest.raises(wire.BrokerError) as err:
            alice.call("tell", to="carol", text="hi")
        assert err.value.code == wire.UNKNOWN_AGENT and "removed" in err.value.message
        assert alice.call("tell", to="dave", text="welcome")["recipients"] == [{"name": "dave", "state": "stopped"}]
    with broker.client("dave") as dave:
        assert dave.call("read_messages")["messages"][0]["text"] == "welcome"
    with pytest.raises(wire.BrokerError), wire.Client(broker.socket, "carol", broker.token("carol")) as carol:
        carol.call("read_messages")


def test_the_broker_never_rereads_its_pod_file(broker: BrokerProcess) -> None:
    """The desired state comes from the applier only: a file edited behind its back changes nothing,
    and a spec of another pod or an invalid one is refused."""
    broker.pod_file.write_text("name: bus\nagents:\n  alice: {cli: script}\n")
    with broker.client("user") as user:
        assert sorted(a["name"] for a in user.call("list_agents")["agents"]) == ["alice", "bob", "carol"]
        with pytest.raises(wire.BrokerError) as err:
            user.call("sync", spec={"name": "other", "agents": {"x": {"cli": "script"}}}, source="/x/pod.yaml")
        assert "serves pod bus" in err.value.message
        with pytest.raises(wire.BrokerError) as err:
            user.call("sync", spec={"name": "bus", "agents": {}}, source="/x/pod.yaml")
        assert err.value.code == wire.BAD_REQUEST
        assert sorted(a["name"] for a in user.call("list_agents")["agents"]) == ["alice", "bob", "carol"]
    with broker.client("alice") as alice:
        with pytest.raises(wire.BrokerError) as err:
            alice.call("sync", spec={"name": "bus", "agents": {"alice": {"cli": "script"}}}, source="")
        assert err.value.code == wire.FORBIDDEN


def test_file_change_rule_asks_after_a_save(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    folder = tmp_path / "fc"
    repo = git_repo(folder / "repo")
    pod = write_pod(
        folder,
        "name: fc\nworkdir: repo\nagents:\n  writer: {cli: script}\n  rev: {cli: script}\n"
        "rules:\n  - name: watch-src\n    on: file_change\n    agent: writer\n"
        "    when: {changed: ['*.py']}\n    ask: rev\n    text: 'saved: {changed_files}'\n",
    )
    broker = start_broker(pod)
    with broker.client("rev") as rev:
        wait_until(lambda: broker.client("user").call("rules")["rules"], timeout=10)
        (repo / "ignored.txt").write_text("x\n")
        (repo / "mod.py").write_text("VALUE = 1\n")
        [ask] = wait_until(
            lambda: [m for m in rev.call("read_messages")["messages"] if m["kind"] == "ask"],
            timeout=20, message="an ask after the file change",
        )
        assert ask["text"].endswith("saved: mod.py")
    subprocess.run(["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True)
    assert "mod.py" not in subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout, "the user's index is untouched"


def test_a_role_changed_while_the_pod_was_down_is_told_to_the_agent(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        alice.call("hook", event="session_start")
    broker.stop()
    broker.pod_file.write_text(broker.pod_file.read_text().replace("role: writes code", "role: writes the docs"))
    broker.start()
    with broker.client("alice") as alice:
        started = alice.call("hook", event="session_start")
        assert started["context"]["role"] == "writes the docs"
        [notice] = [m for m in started["messages"] if m["kind"] == "notice"]
        assert "Your role in pod bus changed. Your role is now:\nwrites the docs" in notice["text"]
        alice.call("ack_injected", claim=started["claim"])
    broker.stop()
    broker.start()
    with broker.client("alice") as alice:
        assert alice.call("hook", event="session_start")["messages"] == [], "told once"


def test_a_cli_just_started_has_a_fresh_clock_and_is_starting_until_it_shows_it_is_up(local_broker: LocalBroker) -> None:
    """After `restart` or `resume`, agents showed `idle for 1m` (the state's time carried over) and
    `idle` before their CLI was even up."""

    def row(name: str) -> dict[str, Any]:
        return next(a for a in local_broker.call("user", "status")["agents"] if a["name"] == name)

    local_broker.call("alice", "hook", event="turn_end", inject=False)
    local_broker.broker.members["alice"].state_ts -= 60  # idle for a minute, then restarted:
    local_broker.call("user", "set_state", name="alice", state="idle")
    alice = row("alice")
    assert alice["state"] == "idle" and alice.get("starting") is True
    assert time.time() - alice["state_ts"] < 5, "the clock starts again with the fresh CLI"
    local_broker.call("alice", "hook", event="session_start", inject=False)
    assert "starting" not in row("alice"), "its first hook shows it is up"

    local_broker.call("user", "set_state", name="bob", state="idle")
    assert row("bob").get("starting") is True
    local_broker.call("bob", "hello", shim=True)
    assert "starting" not in row("bob") and row("bob")["tools_ready"], "so do its tools"


def test_a_removed_agent_is_dropped_from_the_asks_waiting_for_it_and_the_asker_is_told(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    """A removed member left open asks waiting on it until their timeout, holding up a `mode: all` route."""
    import threading

    text = ("name: asks\nagents:\n  alice: {cli: script}\n  bob: {cli: script}\n  carol: {cli: script}\n"
            "routes:\n  - {name: review, to: [bob, carol], mode: all, timeout: 1h}\n")
    broker = start_broker(write_pod(tmp_path / "asks", text))
    with broker.client("alice") as alice:
        ask_id = alice.call("ask", to="review", text="look at this")["ask_id"]
        alone = alice.call("ask", to="carol", text="only you")["ask_id"]
    with broker.client("bob") as bob:
        bob.call("post_reply", ask_id=ask_id, text="LGTM")
    waited: dict[str, Any] = {}

    def wait() -> None:
        with broker.client("alice", timeout=60) as alice:
            waited.update(alice.call("wait_for_reply", ask_id=ask_id, timeout_ms=40_000))

    waiter = threading.Thread(target=wait)
    waiter.start()
    with broker.client("alice") as alice:
        wait_until(lambda: alice.call("check_replies", ask_id=ask_id)["waiting_on"] == ["carol"], timeout=10)
    broker.pod_file.write_text(text.replace("  carol: {cli: script}\n", "").replace("[bob, carol]", "[bob]"))
    broker.sync()
    waiter.join(timeout=20)
    assert not waiter.is_alive(), "the waiting call returns once the ask is complete"
    assert waited["status"] == "replied" and waited["waiting_on"] == [], waited
    assert [r["text"] for r in waited["replies"]] == ["LGTM"]
    with broker.client("alice") as alice:
        notices = [m["text"] for m in alice.call("read_messages")["messages"] if m["kind"] == "notice"]
        assert f"carol was removed from pod asks and will not answer ask #{ask_id}: it is complete with the answers" \
               f" of the others." in notices, notices
        assert any(f"ask #{alone}" in n and "nobody else was asked" in n for n in notices), notices
        assert alice.call("check_replies", ask_id=alone)["status"] == "replied"
        open_asks = broker.client("user").call("asks")["asks"]
        assert [a["ask_id"] for a in open_asks] == [], open_asks
