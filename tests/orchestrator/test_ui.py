"""`podctl ui`: Textual's pilot drives the live view against a real broker. The test speaks for
the pod's agents with their own tokens (as their hooks and tools would), so every change the view
must show happens at a moment the test chooses."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from podctl.broker.paths import PodPaths
from podctl.orchestrator.ui.app import AgentsTable, Conversation, PodApp
from podctl.orchestrator.ui.text import AGENT_COLUMNS
from textual.pilot import Pilot
from textual.widgets import Static

from ..helpers import BrokerProcess, pod_folder, podctl, scaled, write_pod

POD = """\
name: live
agents:
  writer: {cli: script, role: writes the code}
  rev-a: {cli: script}
  rev-b: {cli: script}
routes:
  - {name: review, from: [writer], to: [rev-a, rev-b], mode: all, timeout: 10m}
"""


@pytest.fixture
def live(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker(write_pod(tmp_path / "live", POD))


async def until(pilot: Pilot[Any], predicate: Callable[[], object], message: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"the view never showed {message}")
        await pilot.pause(0.02)


def cell(app: PodApp, agent: str, column: str) -> str:
    table = app.query_one(AgentsTable)
    if agent not in [str(k.value) for k in table.rows]:
        return ""
    return table.get_row(agent)[AGENT_COLUMNS.index(column)].plain


def lines(app: PodApp) -> list[tuple[int, str]]:
    """The conversation as drawn: (depth, text) per node, in order."""
    out: list[tuple[int, str]] = []

    def walk(node: Any, depth: int) -> None:
        for child in node.children:
            out.append((depth, child.label.plain))
            walk(child, depth + 1)

    walk(app.query_one(Conversation).root, 0)
    return out


def shown(app: PodApp, needle: str) -> bool:
    return any(needle in text for _, text in lines(app))


def widget_text(app: PodApp, selector: str) -> str:
    return str(getattr(app.query_one(selector, Static).content, "plain", app.query_one(selector, Static).content))


def screen_lines(app: PodApp) -> list[str]:
    """The screen as a person sees it, line by line (from Textual's SVG screenshot: each run of text
    at its column; Rich draws a cell 12.2 units wide)."""
    import html
    import re

    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>',
                                 app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + text
        lines.append(line.rstrip())
    return lines


def drive(scenario: Callable[[PodApp, Pilot[Any]], Any], pod: str = "live", size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        app = PodApp(PodPaths.of(pod))
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(asyncio.wait_for(main(), 120))


def test_the_table_follows_agents_going_busy_and_idle(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live" and cell(app, "writer", "state"), "the agents")
        assert cell(app, "writer", "cli") == "script" and cell(app, "writer", "tools") == "down"
        with live.client("writer") as writer:
            writer.call("hook", event="turn_start", inject=False)
            await until(pilot, lambda: cell(app, "writer", "state").startswith("busy"), "writer busy")
            writer.call("hook", event="turn_end", inject=False)
            await until(pilot, lambda: cell(app, "writer", "state").startswith("idle"), "writer idle")
        assert "pod live  live  3 agents" in widget_text(app, "#top")

    drive(scenario)


def test_s_text_and_enter_send_a_message_from_the_user_to_the_selected_agent(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "rev-a", "state"), "the agents")
        await pilot.press("down")
        await pilot.press("s")
        await pilot.press(*"please look")
        await pilot.press("enter")
        await until(pilot, lambda: shown(app, "user → rev-a tell: please look"), "the sent message")

    drive(scenario)
    sent = [json.loads(line) for line in podctl("tail", "live", "--json").stdout.splitlines()]
    assert [(m["from"], m["to"], m["text"]) for m in sent if m["kind"] == "tell"] == [("user", ["rev-a"], "please look")]


def test_tab_changes_the_recipient_and_escape_cancels(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "writer", "state"), "the agents")
        await pilot.press("a", "tab", "tab", "tab")
        await pilot.press(*"is the route fine?", "enter")
        await until(pilot, lambda: shown(app, "user → review ask #"), "the ask to the route")
        await pilot.press("s", *"never sent", "escape")
        await pilot.pause(0.2)
        assert not shown(app, "never sent")

    drive(scenario)


def test_an_ask_and_its_replies_are_threaded_with_their_delivery_marks(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        with live.client("writer") as writer, live.client("rev-a") as rev_a:
            ask_id = writer.call("ask", to="review", text="review my diff")["ask_id"]
            await until(pilot, lambda: shown(app, f"writer → review ask #{ask_id}: review my diff  [rev-a… rev-b…]"),
                        "the ask, queued for both")
            claim = rev_a.call("hook", event="tool_done")["claim"]
            rev_a.call("ack_injected", claim=claim)
            await until(pilot, lambda: shown(app, "[rev-a✓ rev-b…]"), "the ask injected into rev-a's model")
            rev_a.call("post_reply", ask_id=ask_id, text="looks fine")
            await until(pilot, lambda: (1, "") in [(d, "") for d, t in lines(app) if "rev-a replied: looks fine" in t],
                        "the reply under its ask")
            writer.call("check_replies", ask_id=ask_id)
            await until(pilot, lambda: shown(app, "rev-a replied: looks fine  [writer✓✓]"), "the reply read")
        depth_of = {text.split(": ", 1)[-1]: depth for depth, text in lines(app)}
        assert depth_of["review my diff  [rev-a✓ rev-b…]"] == 0

    drive(scenario)


def test_the_waiting_panel_lists_who_has_not_answered_and_drops_them_when_they_do(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        await pilot.press("w")
        with live.client("writer") as writer, live.client("rev-a") as rev_a, live.client("rev-b") as rev_b:
            ask_id = writer.call("ask", to="review", text="two reviews please")["ask_id"]
            await until(pilot, lambda: "waiting on: rev-a, rev-b" in widget_text(app, "#waiting"), "both missing")
            assert f"#{ask_id} writer → review (all)" in widget_text(app, "#waiting")
            assert "9m5" in widget_text(app, "#waiting") or "10m00s" in widget_text(app, "#waiting")
            rev_a.call("post_reply", ask_id=ask_id, text="ok")
            await until(pilot, lambda: "waiting on: rev-b   answered: rev-a" in widget_text(app, "#waiting"), "rev-b")
            rev_b.call("post_reply", ask_id=ask_id, text="ok too")
            await until(pilot, lambda: "none: every ask has its answer" in widget_text(app, "#waiting"), "no open ask")

    drive(scenario)


def test_a_broker_gone_with_no_supervisor_is_a_pod_down_and_its_return_is_said_for_a_moment(live: BrokerProcess) -> None:
    """Nothing restarts this broker (no supervisor, as after `podctl down`): its agents are shown
    stopped, as `status` shows them, not idle; once it is back, "reconnected" is said briefly."""

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        with live.client("writer") as writer:
            writer.call("hook", event="turn_end", inject=False)
        await until(pilot, lambda: cell(app, "writer", "state").startswith("idle"), "the writer idle")
        live.kill9()
        await until(pilot, lambda: "is down" in widget_text(app, "#top"), "the pod down")
        assert cell(app, "writer", "state") == "stopped" and "0 idle" in widget_text(app, "#top")
        live.start()
        await until(pilot, lambda: "reconnected: the broker is back" in widget_text(app, "#top"), "the broker back")
        with live.client("writer") as writer:
            writer.call("tell", to="rev-b", text="after the restart")
        await until(pilot, lambda: shown(app, "writer → rev-b tell: after the restart"), "a message after the restart")
        await until(pilot, lambda: "reconnected" not in widget_text(app, "#top"), "the note gone after a moment",
                    timeout=10)

    drive(scenario)


def test_the_header_says_when_the_pod_no_longer_follows_its_pod_file(live: BrokerProcess) -> None:
    """The supervisor records a save it refuses (applied.json) and says it in the transcript; the
    header said nothing, so the view looked like a pod following its file."""
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        assert "not following" not in widget_text(app, "#top")
        record = {"digest": "x", "ok": False, "ts": time.time(),
                  "summary": "pod.yaml changed but is invalid; nothing applied:\npod.yaml:3:9: unknown cli"}
        (live.state / "applied.json").write_text(json.dumps(record))
        with live.client("user") as user:
            user.call("log", text="pod.yaml changed but is invalid; nothing applied", level="error")
        await until(pilot, lambda: "not following its pod file: pod.yaml changed but is invalid" in widget_text(app, "#top"),
                    "the pod file problem in the header")

    drive(scenario)


def test_a_pod_that_is_down_shows_its_history_read_only(live: BrokerProcess) -> None:
    with live.client("writer") as writer:
        writer.call("tell", to="rev-a", text="said before the pod went down")
    live.stop()

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: shown(app, "writer → rev-a tell: said before the pod went down"), "the history")
        assert "read-only" in widget_text(app, "#top") and "podctl resume live" in widget_text(app, "#top")
        await pilot.press("s")
        assert not app.screen_stack[1:], "no send form while the pod is down"
        live.start()
        await until(pilot, lambda: app.view.connection == "live", "the pod back up")

    drive(scenario)


def test_text_is_shown_not_obeyed_and_fits_80x24(live: BrokerProcess) -> None:
    with live.client("writer") as writer:
        writer.call("tell", to="rev-a", text="\x1b[2J\x1b]0;pwned\x07[bold]not markup[/bold]\rforged")

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: shown(app, "\\x1b[2J\\x1b]0;pwned\\x07[bold]not markup[/bold]\\x0dforged"),
                    "the escapes as text")
        await until(pilot, lambda: cell(app, "rev-b", "state"), "the agents (their status may come after the history)")
        screen = app.screen
        assert (screen.size.width, screen.size.height) == (80, 24)
        await until(pilot, lambda: app.query_one(AgentsTable).region.height >= 4, "header and three agents laid out")
        assert app.query_one(Conversation).region.height >= 5

    drive(scenario)


def test_filter_by_agent_and_search(live: BrokerProcess) -> None:
    with live.client("writer") as writer, live.client("rev-b") as rev_b:
        writer.call("tell", to="rev-a", text="for a: the needle")
        rev_b.call("tell", to="writer", text="from b: hay")

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: shown(app, "from b: hay"), "the history")
        await pilot.press("down", "f")
        await until(pilot, lambda: not shown(app, "from b: hay"), "only rev-a's conversation")
        assert shown(app, "for a: the needle")
        await pilot.press("f", "slash", *"hay", "enter")
        await until(pilot, lambda: not shown(app, "the needle") and shown(app, "from b: hay"), "the search")
        await pilot.press("slash", "escape")
        await until(pilot, lambda: shown(app, "the needle") and shown(app, "from b: hay"), "everything again")

    drive(scenario)


def test_no_color_is_respected(live: BrokerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        assert app.no_color

    drive(scenario)


def test_the_graph_tab_draws_the_pod_file(live: BrokerProcess, tmp_path: Path) -> None:
    pod_folder("live", tmp_path / "live" / "pod.yaml")

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.view.connection == "live", "the live pod")
        await pilot.press("g")
        await until(pilot, lambda: "writer -> review -> rev-a, rev-b   (mode all, timeout 10m)" in widget_text(app, "#graph"),
                    "the topology")

    drive(scenario)


def test_rule_firings_and_hand_offs_are_marked_and_rules_show_rounds_and_cooldown() -> None:
    from podctl.orchestrator.ui.model import PodView
    from podctl.orchestrator.ui.text import message_line, waiting_text

    now = time.time()
    fired = {"id": 7, "ts": now, "from": "podctl", "kind": "ask", "to": ["rev"], "target": "review", "ask_id": 7,
             "text": "[auto-ask by rule auto-review, on behalf of writer] diff", "origin": "rule:auto-review",
             "delivery": {"rev": "queued"}}
    assert message_line(fired).plain.endswith("[rule auto-review] podctl → review ask #7: [auto-ask by rule"
                                              " auto-review, on behalf of writer] diff  [rev…]")
    handed = {**fired, "id": 8, "kind": "tell", "origin": "handoff", "text": "HAND-OFF: you take over", "to": ["b"],
              "target": "b", "delivery": {}}
    assert "[hand-off] podctl → b tell: HAND-OFF: you take over" in message_line(handed).plain
    view = PodView("p", rules=[{"name": "auto-review", "on": "turn_end", "agent": "writer", "rounds": 1,
                                "max_rounds": 3, "open_ask": 7, "last_fired": now - 10, "cooldown_s": 30.0,
                                "ask": "review", "handoff": None}])
    text = waiting_text(view, now).plain
    assert "auto-review  on turn_end of writer → ask review   rounds 1/3   cooldown 20s   waiting for ask #7" in text


def test_the_clocks_and_events_keep_drawing_while_a_dialog_is_open(live: BrokerProcess) -> None:
    """A dialog is the screen on top: drawing must not look for the main screen's widgets there."""

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "writer", "state"), "the agents")
        await pilot.press("s")
        await until(pilot, lambda: len(app.screen_stack) == 2, "the send form")
        app._tick()
        with live.client("writer") as writer:
            writer.call("hook", event="turn_start", inject=False)
        await until(pilot, lambda: cell(app, "writer", "state").startswith("busy"), "writer busy behind the form")
        await pilot.press("escape")

    drive(scenario)


def test_a_clock_tick_while_the_view_closes_is_harmless(live: BrokerProcess) -> None:
    """The one-second clock may fire while Textual is taking the screen apart (seen in the suite)."""

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "writer", "state"), "the agents")
        await app.top.remove()
        app._tick()

    drive(scenario)


def test_spending_shows_in_the_tokens_and_cost_columns_and_an_agent_over_budget_says_so(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    """The supervisor reports usage (here the test, with the user's token, as the supervisor does);
    the view follows the broker's usage events, no refresh needed."""
    pod = POD.replace("name: live", "name: spend") + "limits: {budget_tokens_per_agent: 1000000}\n"
    proc = start_broker(write_pod(tmp_path / "spend", pod))

    def report(key: str, inp: int) -> None:
        with proc.client("user") as user:
            user.call("usage_report", of="writer", path="/x/s.jsonl", inode=1, offset=10, state={}, records=[
                {"key": key, "model": "claude-sonnet-4-5", "ts": time.time(), "input": inp, "cached": 0, "output": 0,
                 "reasoning": 0}])

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "writer", "cost") == "-", "nothing spent yet")
        report("r1", 100)
        await until(pilot, lambda: cell(app, "writer", "cost") == "$0.0003", "the writer's $0.0003 (not $0.00)")
        assert cell(app, "writer", "tokens") == "100"
        report("r2", 1_000_000)
        await until(pilot, lambda: "over budget" in cell(app, "writer", "state"), "the writer over budget")
        assert cell(app, "writer", "cost") == "$3.00" and cell(app, "writer", "tokens") == "1.0M"
        assert "over budget" not in cell(app, "rev-a", "state")

    drive(scenario, pod="spend")


def test_enter_ends_the_search_and_the_keys_work_again(live: BrokerProcess) -> None:
    with live.client("writer") as writer:
        writer.call("tell", to="rev-a", text="the needle")
        writer.call("tell", to="rev-b", text="some hay")

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: shown(app, "some hay"), "the history")
        await pilot.press("slash", *"needle", "enter")
        await until(pilot, lambda: not shown(app, "some hay"), "the search applied")
        await pilot.pause(0.1)
        assert app.focused is not app.search_field, f"the focus stayed in the search box ({app.focused})"
        await pilot.press("w")
        await until(pilot, lambda: app.tabs.active == "tab-waiting", "w to show the waiting tab")
        await pilot.press("g")
        await until(pilot, lambda: app.tabs.active == "tab-graph", "g to show the graph")
        assert app.search_field.value == "needle" and app.search == "needle", "nothing typed into the search"

    drive(scenario)


def test_invisible_format_characters_are_shown_in_the_view() -> None:
    from podctl.orchestrator.ui.text import message_line

    line = message_line({"id": 3, "ts": 0, "from": "a\u202eb", "to": ["c"], "kind": "tell",
                         "text": "pay\u202eetad\u200b\u2066x\u2069", "delivery": {}}).plain
    assert "a\\u202eb → c" in line and "pay\\u202eetad\\u200b\\u2066x\\u2069" in line, line


def test_a_cli_just_started_shows_starting_with_a_fresh_clock_until_it_is_up(live: BrokerProcess) -> None:
    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: cell(app, "writer", "state"), "the agents")
        with live.client("user") as user, live.client("writer") as writer:
            user.call("set_state", name="writer", state="idle")  # what `up`, `restart` and `resume` say
            await until(pilot, lambda: cell(app, "writer", "state") in ("starting 0s", "starting 1s"),
                        "starting, not idle, with a fresh clock")
            assert "1 starting" in widget_text(app, "#top")
            writer.call("hello", shim=True)  # its tools are up
            await until(pilot, lambda: cell(app, "writer", "state").startswith("idle "), "idle once its CLI is up")

    drive(scenario)


def test_at_80x24_over_budget_and_the_restart_question_are_never_cut(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    long_name = "the-agent-with-a-rather-long-name"
    pod = (f"name: narrow\nlimits: {{budget_tokens_per_agent: 1000}}\nagents:\n  {long_name}: {{cli: script}}\n"
           "  other: {cli: script}\n")
    proc = start_broker(write_pod(tmp_path / "narrow", pod))
    with proc.client("user") as user:
        user.call("usage_report", of=long_name, path="/x/s.jsonl", inode=1, offset=10, state={}, records=[
            {"key": "k", "model": "claude-sonnet-4-5", "ts": time.time(), "input": 5000, "cached": 0, "output": 0,
             "reasoning": 0}])

    async def scenario(app: PodApp, pilot: Pilot[Any]) -> None:
        with proc.client(long_name) as agent:
            agent.call("hook", event="turn_end", inject=False)
        await until(pilot, lambda: cell(app, long_name, "state").startswith("idle") and "over budget" in cell(
            app, long_name, "state"), "the agent idle and over budget")
        app.view.agents[long_name].last_wake = "failed: the pane was not ready for 90 s (a person is typing in it)"
        app.view.agents[long_name].last_wake_ts = time.time()
        app._draw_agents()
        await pilot.pause(0.2)
        row = next(line for line in screen_lines(app) if "the-agent" in line)
        assert len(row) <= 80
        assert "over budget" in row and "$0.015" in row, row
        await pilot.press("r")
        await until(pilot, lambda: len(app.screen_stack) == 2, "the restart question")
        await pilot.pause(0.2)
        shown = " ".join(" ".join(screen_lines(app)).split())
        assert "(same identity and history)" in shown, shown

    drive(scenario, pod="narrow")
