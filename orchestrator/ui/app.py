"""`podctl ui POD`: the pod as it works, in the terminal (Textual).

Agents (state and for how long, tools, unread, last wake, last activity) above a tabbed
Conversation (threaded, with delivery marks), Waiting (open asks and rules) and Graph. Everything
comes from the broker's event stream through feed.py; updates are drawn at most every
DRAW_DELAY_S, so a burst of messages costs one redraw, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any, ClassVar

from podctl.broker import wire
from podctl.broker.paths import PodPaths
from podctl.broker.transcript import visible
from podctl.orchestrator.podref import follow_problem
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane, Tree
from textual.widgets.tree import TreeNode

from .feed import Feed
from .forms import Confirm, MessageView, ReasonForm, SendForm
from .model import Changes, PodView
from .text import AGENT_COLUMNS, agent_cells, message_detail, message_line, needs_text, waiting_text

DRAW_DELAY_S = 0.05
TICK_S = 1.0
"""The clocks on screen (for how long, time left) move once a second; no data is read for it."""
RESTART_TIMEOUT_S = 60.0

CSS = """
#top { height: auto; padding: 0 1; background: $boost; }
#needs { display: none; height: auto; max-height: 12; padding: 0 1; border: heavy $error; }
#needs.shown { display: block; }
#agents { height: auto; max-height: 9; }
#tabs { height: 1fr; }
#conversation { height: 1fr; }
#search { dock: bottom; display: none; }
#search.shown { display: block; }
#waiting, #graph { height: auto; }
SendForm, Confirm, MessageView { align: center middle; }
#form { width: 76; max-width: 100%; height: auto; border: round $accent; padding: 0 1; background: $surface; }
#message { width: 90%; height: 80%; border: round $accent; padding: 0 1; background: $surface; }
"""


class AgentsTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "app.jump", "window")]


class Conversation(Tree[int]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "app.read", "read")]


class PodApp(App[None]):
    TITLE = "podctl"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "send('tell')", "send"),
        Binding("a", "send('ask')", "ask"),
        Binding("y", "answer('allow')", "allow"),
        Binding("Y", "answer('always')", "always", show=False),
        Binding("n", "deny", "deny"),
        Binding("r", "restart", "restart"),
        Binding("f", "filter", "filter"),
        Binding("slash", "search", "search"),
        Binding("c", "tab('conversation')", "conversation", show=False),
        Binding("w", "tab('waiting')", "waiting", show=False),
        Binding("g", "tab('graph')", "graph", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, paths: PodPaths) -> None:
        super().__init__()
        self.paths = paths
        self.view = PodView(paths.pod)
        self.feed = Feed(paths, self.view, self._changed)
        self.pending = Changes()
        self.draw_scheduled = False
        self.nodes: dict[int, TreeNode[int]] = {}
        self.filter_agent: str | None = None
        self.search = ""
        self.graph_loaded = False
        self.first_paint: float | None = None
        self.unfollowed = follow_problem(paths)
        """Why the pod no longer follows its pod file; read again when a podctl line arrives (the
        supervisor says each save it refuses in the transcript)."""

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The widgets are kept rather than queried: a query looks at the screen on top, which is
        # a dialog while one is open, and the clocks and events draw on meanwhile.
        self.top = Static(self._top_line(), id="top")
        self.needs = Static(Text(), id="needs")
        self.table = AgentsTable(id="agents", cursor_type="row", zebra_stripes=True)
        self.table.add_columns(*AGENT_COLUMNS)
        self.conversation = Conversation("messages", id="conversation")
        self.conversation.show_root = False
        self.conversation.guide_depth = 2
        self.search_field = Input(placeholder="search the conversation (Enter applies, Escape clears)", id="search")
        self.waiting = Static(Text("reading the pod…"), id="waiting")
        self.graph = Static(Text("the pod's topology shows here"), id="graph")
        self.tabs = TabbedContent(id="tabs")
        yield self.top
        yield self.needs
        yield self.table
        with self.tabs:
            with TabPane("Conversation (c)", id="tab-conversation"):
                yield self.conversation
                yield self.search_field
            with TabPane("Waiting (w)", id="tab-waiting"), VerticalScroll():
                yield self.waiting
            with TabPane("Graph (g)", id="tab-graph"), VerticalScroll():
                yield self.graph
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.table.focus()
        self.set_interval(TICK_S, self._tick)
        self.run_worker(self.feed.run(), name="feed", exit_on_error=False)
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.first_paint = time.monotonic()

    async def on_unmount(self) -> None:
        await self.feed.close()

    # -- drawing --------------------------------------------------------------------------------

    def _changed(self, changes: Changes) -> None:
        if any(self.view.messages.get(i, {}).get("kind") == "log" for i in changes.messages):
            self.unfollowed = follow_problem(self.paths)
            changes.agents = True
        self.pending.merge(changes)
        if not self.draw_scheduled:
            self.draw_scheduled = True
            self.set_timer(DRAW_DELAY_S, self._draw)

    def _draw(self) -> None:
        self.draw_scheduled = False
        changes, self.pending = self.pending, Changes()
        if changes.agents or changes.connection:
            self._draw_agents()
        if changes.rebuild:
            self._rebuild_conversation()
        elif changes.messages or changes.marks:
            self._extend_conversation(changes.messages, changes.marks)
        if changes.asks or changes.agents:
            self._draw_waiting()

    def _tick(self) -> None:
        self._draw_agents()
        self._draw_waiting()

    def _top_line(self) -> Text:
        view = self.view
        states = [a.shown_state for a in view.agents.values()]
        line = Text(f"pod {visible(view.pod)}", style="bold")
        style = {"live": "green", "down": "red", "reconnecting": "yellow"}.get(view.connection, "")
        line.append(f"  {view.connection}", style=style)
        starting = f" {states.count('starting')} starting," if "starting" in states else ""
        needing = states.count("blocked") + states.count("failed")
        if needing:
            line.append(f"  {needing} NEED YOU", style="bold reverse magenta")
        line.append(f"  {len(states)} agents, {states.count('busy')} busy, {states.count('idle')} idle,{starting}"
                    f" {states.count('stopped')} stopped · {len(view.asks)} open asks")
        if self.filter_agent or self.search:
            line.append("  filter: ", style="dim")
            line.append(" ".join(p for p in (visible(self.filter_agent or ""), repr(self.search) if self.search else "") if p))
        if view.note:
            line.append(f"\n{view.note}", style="dim")
        if self.unfollowed and view.connection != "down":
            line.append(f"\nnot following its pod file: {visible(self.unfollowed.splitlines()[0])}"
                        f" (podctl status {visible(view.pod)})", style="red")
        return line

    def _draw_agents(self) -> None:
        self.top.update(self._top_line())
        table = self.table
        now = time.time()
        names = self.view.ordered()
        self.needs.update(needs_text(self.view, now))
        self.needs.set_class(bool(self.view.needing()), "shown")
        if [str(key.value) for key in table.rows] != names:
            selected = self.selected_agent()
            table.clear()
            for name in names:
                table.add_row(*agent_cells(self.view.agents[name], now), key=name)
            if selected in names:
                table.move_cursor(row=names.index(selected))
            return
        columns = list(table.columns)
        for name in names:
            for column, cell in zip(columns, agent_cells(self.view.agents[name], now), strict=True):
                table.update_cell(name, column, cell, update_width=True)

    def _draw_waiting(self) -> None:
        self.waiting.update(waiting_text(self.view, time.time()))

    # -- the conversation -------------------------------------------------------------------------

    def _shown(self, message: dict[str, Any]) -> bool:
        agent = self.filter_agent
        if agent is not None and message.get("from") != agent and agent not in (message.get("to") or []):
            return False
        return not self.search or self.search.casefold() in str(message.get("text", "")).casefold()

    def _rebuild_conversation(self) -> None:
        tree = self.conversation
        tree.clear()
        self.nodes.clear()
        self._extend_conversation(list(self.view.messages), set())

    def _extend_conversation(self, added: list[int], marked: set[int]) -> None:
        tree = self.conversation
        following = tree.max_scroll_y - tree.scroll_y <= 1
        for mid in added:
            message = self.view.messages.get(mid)
            if message is None or mid in self.nodes or not self._shown(message):
                continue
            parent_id = self.view.thread_parent(message)
            parent = self.nodes.get(parent_id) if parent_id is not None else None
            label = message_line(message, threaded=parent is not None)
            if parent is not None:
                self.nodes[mid] = parent.add_leaf(label, data=mid)
            elif message.get("kind") == "ask":
                self.nodes[mid] = tree.root.add(label, data=mid, expand=True)
            else:
                self.nodes[mid] = tree.root.add_leaf(label, data=mid)
        for mid in marked:
            node = self.nodes.get(mid)
            message = self.view.messages.get(mid)
            if node is not None and message is not None:
                node.set_label(message_line(message, threaded=self.view.thread_parent(message) is not None
                                            and node.parent is not tree.root))
        for mid in [m for m in self.nodes if m not in self.view.messages]:
            self.nodes.pop(mid).remove()
        if following:
            self.call_after_refresh(tree.scroll_end, animate=False)

    # -- actions ------------------------------------------------------------------------------------

    def selected_agent(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        with contextlib.suppress(Exception):
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return None

    def _live(self) -> bool:
        if self.view.connection != "live":
            self.notify(f"the pod is not running: `podctl resume {self.paths.pod}` starts it", severity="warning")
            return False
        return True

    def action_send(self, kind: str) -> None:
        if not self._live():
            return
        recipients = [*self.view.agents, *self.view.routes, *(["all"] if kind == "tell" else [])]

        def sent(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                self.run_worker(self._send(kind, *answer), exit_on_error=False)

        self.push_screen(SendForm(kind, recipients, self.selected_agent()), sent)

    async def _send(self, kind: str, to: str, text: str) -> None:
        try:
            result = await self.feed.call(kind, to=to, text=text)
        except (wire.BrokerError, wire.BrokerUnavailable) as exc:
            self.notify(f"not sent: {exc}", severity="error")
            return
        what = f"ask #{result['ask_id']}" if kind == "ask" else f"message #{result['message_id']}"
        self.notify(f"{what} sent to {to}")

    def _needing_agent(self) -> str | None:
        """The agent y, Y and n answer: the selected one if it needs the person, else the first blocked one."""
        selected = self.selected_agent()
        row = self.view.agents.get(selected or "")
        if row is not None and row.blocked:
            return row.name
        first = next((r.name for r in self.view.needing() if r.blocked), None)
        if first is None:
            self.notify("no agent is waiting for an answer", severity="warning")
        return first

    def action_answer(self, decision: str) -> None:
        agent = self._needing_agent()
        if agent is not None and self._live():
            self.run_worker(self._answer(agent, decision, ""), exit_on_error=False)

    def action_deny(self) -> None:
        agent = self._needing_agent()
        if agent is None or not self._live():
            return
        need = self.view.agents[agent].blocked or {}

        def denied(reason: str | None) -> None:
            if reason is not None:
                self.run_worker(self._answer(agent, "deny", reason), exit_on_error=False)

        self.push_screen(ReasonForm(agent, f"{need.get('tool') or ''} {need.get('detail') or ''}".strip()), denied)

    async def _answer(self, agent: str, decision: str, reason: str) -> None:
        """Answer through the broker, for the very request on screen (a newer one is not answered blind)."""
        request = (self.view.agents[agent].blocked or {}).get("request")
        args: dict[str, Any] = {"name": agent, **({"request": request} if request else {})}
        if decision == "deny":
            args["reason"] = reason
        elif decision == "always":
            args["always"] = True
        try:
            result = await self.feed.call("deny" if decision == "deny" else "approve", **args)
        except (wire.BrokerError, wire.BrokerUnavailable) as exc:
            self.notify(visible(getattr(exc, "message", str(exc))), severity="error")
            return
        verb = {"allow": "allowed", "always": "allowed (always)", "deny": "denied"}[decision]
        self.notify(f"{verb} {agent}: {visible(result['tool'])} {visible(result['detail'][:80])}")

    def action_restart(self) -> None:
        agent = self.selected_agent()
        if agent is None or not self._live():
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._restart(agent), exit_on_error=False)

        self.push_screen(Confirm(f"Restart {agent}? Its CLI starts again with a fresh model context"
                                 " (same identity and history)."), confirmed)

    async def _restart(self, agent: str) -> None:
        self.notify(f"restarting {agent}…")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "podctl.orchestrator.cli.main", "restart", self.paths.pod, agent,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RESTART_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self.notify(f"restarting {agent} took over {RESTART_TIMEOUT_S:.0f}s; see `podctl status`", severity="error")
            return
        said = (err or out).decode(errors="replace").strip().splitlines()
        if proc.returncode == 0:
            self.notify(f"restarted {agent}")
        else:
            self.notify(visible(said[-1] if said else f"podctl restart failed ({proc.returncode})"), severity="error")

    def action_jump(self) -> None:
        agent = self.selected_agent()
        if agent is not None:
            self.run_worker(self._jump(agent), exit_on_error=False)

    async def _jump(self, agent: str) -> None:
        """Show the agent's tmux window: switch this terminal to it when it is a client of the
        pod's tmux server (the pod's `podctl` window), otherwise select it for the next attach."""
        from podctl.orchestrator.tmux_names import target, tmux_argv

        verbs: tuple[str, ...] = ("switch-client", "select-window")
        for verb in verbs:
            proc = await asyncio.create_subprocess_exec(
                *tmux_argv(verb, "-t", target(self.paths.pod, agent)),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            if await asyncio.wait_for(proc.wait(), 10) == 0:
                if verb == "select-window":
                    self.notify(f"selected {agent}'s window: `podctl attach {self.paths.pod}` shows it")
                return
        self.notify(f"no tmux window for {agent}", severity="warning")

    def action_read(self) -> None:
        node = self.conversation.cursor_node
        if node is not None and node.data is not None and node.data in self.view.messages:
            self.push_screen(MessageView(message_detail(self.view.messages[node.data])))

    def action_filter(self) -> None:
        agent = self.selected_agent()
        self.filter_agent = None if self.filter_agent == agent or agent is None else agent
        self.notify(f"conversation of {agent}" if self.filter_agent else "all messages")
        self._rebuild_conversation()
        self._draw_agents()

    def action_tab(self, name: str) -> None:
        self.tabs.active = f"tab-{name}"

    def action_search(self) -> None:
        self.tabs.active = "tab-conversation"
        field = self.search_field
        field.add_class("shown")
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter ends the search: the box closes (the top line shows the search), so no key goes
        into it any more (a hidden tab's focus would otherwise fall back into it)."""
        if event.input.id == "search":
            self.search = event.value.strip()
            self.search_field.remove_class("shown")
            self._rebuild_conversation()
            self._draw_agents()
            self.conversation.focus()

    def on_key(self, event: Any) -> None:
        field = self.search_field
        if event.key == "escape" and field.has_focus:
            field.value, self.search = "", ""
            field.remove_class("shown")
            self._rebuild_conversation()
            self._draw_agents()
            self.conversation.focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-graph" and not self.graph_loaded:
            self.graph_loaded = True
            self.graph.update(self._graph())

    def _graph(self) -> Text:
        from podctl.orchestrator.podref import recorded_file
        from podctl.pods.errors import PodctlError
        from podctl.pods.graph import render
        from podctl.pods.load import load_pod

        pod_file = recorded_file(self.paths)
        if pod_file is None:
            return Text("no pod file is recorded for this pod", style="dim")
        try:
            return Text(f"{pod_file}\n\n" + render(load_pod(pod_file), "text"))
        except PodctlError as exc:
            return Text(f"{pod_file} does not load: {exc}", style="red")


def run(pod: str) -> int:
    """Run the live view of `pod` until the user quits."""
    from podctl.orchestrator.podref import find

    paths = find(pod)
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    PodApp(paths).run()
    return 0
