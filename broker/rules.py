"""Auto-ask rules: events that send an ask by themselves and bring the answer back.

Triggers: `turn_end` of an agent (from its hooks), `file_change` under its workdir (watchfiles,
debounced), `pattern` (a regex seen in its tmux pane). Actions: `ask` a route or agents with a
templated text, or `handoff` to another agent. The asks are sent by `podctl` on the agent's
behalf; once every member answered (or the route's timeout passed) the gathered answer is sent
to the agent as one urgent message, which wakes it.

In a pod across machines (docs/sites.md) a rule acts at the site of the agent it acts for: its turns,
files and screen are there; the agents it asks may be anywhere.

Guards against loops: a rule never fires on the turns of the agents it asks, waits `cooldown`
between firings, never fires while its previous ask is open, and stops after `max_rounds`
until the user gives the agent a new task (any message from `user`) or `podctl rules reset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from podctl.pods.durations import seconds
from podctl.pods.globs import matches as globs_match
from podctl.pods.spec import PodSpec, RouteSpec, RuleSpec

from . import gitdiff, wire
from .paths import USER
from .store import NewMessage, RuleRecord

log = logging.getLogger("podctl.broker.rules")

DIFF_CAP_BYTES = 24_000
PANE_POLL_S = 1.0
DEFAULT_ASK_TIMEOUT_S = 600.0

if TYPE_CHECKING:
    from .records import AskStatus, HandedOff


class RuleHost(Protocol):
    """What the rule engine needs of the broker, and nothing more."""

    spec: PodSpec
    routes: dict[str, RouteSpec]

    def active(self) -> list[str]: ...
    def local(self) -> list[str]: ...
    async def commit(self, msg: NewMessage) -> NewMessage: ...
    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None: ...
    async def handoff(self, source: str, target: str, reason: str) -> HandedOff: ...
    async def ask_status(self, ask: dict[str, Any]) -> AskStatus: ...
    async def ask_record(self, ask_id: int) -> dict[str, Any] | None: ...
    async def last_said(self, agent: str) -> str: ...
    async def read_pane(self, agent: str) -> str: ...
    async def rule_records(self) -> dict[str, RuleRecord]: ...
    async def save_rule(self, name: str, record: RuleRecord) -> None: ...
    async def forget_rules(self, keep: list[str]) -> None: ...


class _SafeVars(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass
class RuleState(RuleRecord):
    """A rule's state: what is stored (RuleRecord: rounds, last firing, open ask, and the git tree per
    (agent, workdir) its next diff starts from, taken when the rule was configured, then when it last
    fired; None: from the agent's starting commit) and what need not outlive the broker."""

    quiet_logged: bool = False
    seen_pane: str = ""

    def stored(self) -> tuple[int, float, int | None, dict[tuple[str, str], str | None]]:
        return self.rounds, self.last_fired, self.open_ask, dict(self.baselines)


@dataclass
class Firing:
    rule: str
    agent: str
    ask_id: int
    targets: list[str]
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class RuleEngine:
    def __init__(self, host: RuleHost) -> None:
        self.host = host
        self.states: dict[str, RuleState] = {}
        self.firings: dict[int, Firing] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._pane_task: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._restored = False
        self._stored: dict[str, tuple[int, float, int | None, dict[tuple[str, str], str | None]]] = {}
        """Each rule's state as last stored."""

    @property
    def rules(self) -> list[RuleSpec]:
        return list(self.host.spec.rules)

    # -- lifecycle --------------------------------------------------------------------------

    async def configure(self) -> None:
        """(Re)start the watchers the current rules need; rule state survives reloads by name, and broker
        restarts through the store (a rule removed from the pod file forgets its state).

        A rule that diffs a workdir snapshots it when it is first configured, so what was already
        uncommitted before the pod came up (or before a reload added the rule) is the baseline, not taken
        for the agent's work; after a restart its baseline is the one stored, so work it already had
        reviewed is not sent again.
        """
        names = {r.name for r in self.rules}
        first = not self._restored
        if first:
            self._restored = True
            self.states = {
                name: RuleState(r.rounds, r.last_fired, r.open_ask, dict(r.baselines))
                for name, r in (await self.host.rule_records()).items() if name in names
            }
            self._stored = {name: state.stored() for name, state in self.states.items()}
        if first or set(self.states) - names:
            await self.host.forget_rules(sorted(names))
        self.states = {n: s for n, s in self.states.items() if n in names}
        self._stored = {n: s for n, s in self._stored.items() if n in names}
        for rule in self.rules:
            self.states.setdefault(rule.name, RuleState())
        if first:
            await self._resume_firings()
        wanted = {r.name for r in self.rules if r.on == "file_change" and r.agent in self.host.local()}
        for name in list(self._watchers):
            if name not in wanted:
                self._watchers.pop(name).cancel()
        for rule in self.rules:
            if rule.name in wanted and rule.name not in self._watchers:
                self._watchers[rule.name] = asyncio.create_task(self._watch_files(rule.name))
        if any(r.on == "pattern" for r in self.rules):
            if self._pane_task is None or self._pane_task.done():
                self._pane_task = asyncio.create_task(self._watch_panes())
        elif self._pane_task is not None:
            self._pane_task.cancel()
            self._pane_task = None
        await self._take_baselines()

    async def _take_baselines(self) -> None:
        """Snapshot each workdir a diffing rule has no baseline for yet (once per workdir, concurrently),
        and store every rule's state that is not stored as it is."""
        users: dict[str, list[tuple[RuleState, tuple[str, str]]]] = {}
        for rule in self.rules:
            if rule.on not in ("turn_end", "file_change"):
                continue
            state = self.states[rule.name]
            for agent in [rule.agent] if rule.agent else list(self.host.spec.agents):
                if agent not in self.host.local():
                    continue
                key = self._baseline_key(agent)
                if key in state.baselines:
                    continue
                if self.host.spec.agent_branch(agent) is not None:
                    state.baselines[key] = None  # a worktree's work is everything since its starting commit
                else:
                    users.setdefault(key[1], []).append((state, key))
        trees = await asyncio.gather(*(_snapshot_or_none(Path(workdir)) for workdir in users))
        for pairs, tree in zip(users.values(), trees, strict=True):
            for state, key in pairs:
                state.baselines.setdefault(key, tree)
        for name in self.states:
            await self._persist(name)

    async def _resume_firings(self) -> None:
        """After a restart: each stored open ask is a firing again, its expiry timer running for the time
        it had left (at once if it passed), and answers that all came before the restart are sent on."""
        now = time.time()
        for name, state in self.states.items():
            ask = await self.host.ask_record(state.open_ask) if state.open_ask is not None else None
            if ask is None or not ask.get("behalf"):
                state.open_ask = None
                continue
            firing = Firing(name, ask["behalf"], ask["id"], list(ask["targets"]))
            left = (ask["deadline"] if ask["deadline"] is not None else now) - now
            firing.task = asyncio.create_task(self._expire(ask["id"], max(0.0, left)))
            self.firings[ask["id"]] = firing
            self._spawn(self._settle(ask["id"]))

    def gathering(self, ask_id: int) -> bool:
        """Whether a rule still gathers the answers to this ask (it sends them on together)."""
        return ask_id in self.firings

    async def _persist(self, name: str) -> None:
        """Store the rule's state if it changed since it was last stored."""
        state = self.states.get(name)
        if state is None:
            return
        now = state.stored()
        if self._stored.get(name) != now:
            await self.host.save_rule(name, state)
            self._stored[name] = now

    def _baseline_key(self, agent: str) -> tuple[str, str]:
        return agent, str(self.host.spec.agent_workdir(agent))

    async def close(self) -> None:
        tasks = [*self._watchers.values(), *self._tasks, *(f.task for f in self.firings.values() if f.task)]
        if self._pane_task is not None:
            tasks.append(self._pane_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2.0)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rule(self, name: str) -> RuleSpec | None:
        return next((r for r in self.rules if r.name == name), None)

    # -- triggers ---------------------------------------------------------------------------

    def on_turn_end(self, agent: str) -> None:
        for rule in self.rules:
            if rule.on == "turn_end" and rule.agent in (None, agent) and agent not in self._targets(rule, agent):
                self._spawn(self._fire(rule.name, agent, reason="turn_end"))

    def on_message(self, msg: NewMessage) -> None:
        """A new task from the user resets the rounds of the rules acting for its recipients."""
        if msg.sender == USER:
            for rule in self.rules:
                if rule.agent in msg.recipients:
                    state = self.states[rule.name]
                    state.rounds, state.quiet_logged = 0, False
                    self._spawn(self._persist(rule.name))
        if msg.kind == "reply" and msg.ask_id in self.firings:
            self._spawn(self._settle(msg.ask_id))

    def settle_soon(self, ask_id: int) -> str | None:
        """An ask of a rule lost a member (removed from the pod): gather it if that completes it.
        Returns the agent the rule acts for (who hears of it), None if no firing waits on the ask."""
        firing = self.firings.get(ask_id)
        if firing is None:
            return None
        self._spawn(self._settle(ask_id))
        return firing.agent

    def reset(self, name: str) -> None:
        if name not in self.states:
            known = ", ".join(sorted(self.states)) or "none"
            raise KeyError(f"no rule {name!r} in pod {self.host.spec.name} (rules: {known})")
        state = self.states[name]
        state.rounds, state.quiet_logged = 0, False
        self._spawn(self._persist(name))

    async def _watch_files(self, name: str) -> None:
        from watchfiles import awatch

        rule = self._rule(name)
        if rule is None or rule.agent is None:
            return
        workdir = self.host.spec.agent_workdir(rule.agent)
        try:
            async for batch in awatch(workdir, debounce=300, step=50, watch_filter=_not_git):
                changed = sorted({os.path.relpath(path, workdir) for _, path in batch})
                self._spawn(self._fire(name, rule.agent, reason="file_change", touched=changed))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("file watcher of rule %s stopped", name)

    async def _watch_panes(self) -> None:
        while True:
            await asyncio.sleep(PANE_POLL_S)
            for rule in [r for r in self.rules if r.on == "pattern"]:
                agents = [rule.agent] if rule.agent else self.host.active()
                for agent in [a for a in agents if a in self.host.local()]:
                    with contextlib.suppress(Exception):
                        await self._check_pane(rule, agent)

    async def _check_pane(self, rule: RuleSpec, agent: str) -> None:
        regex = rule.when.regex
        if not regex:
            return
        text = await self.host.read_pane(agent)
        state = self.states[rule.name]
        match = None
        for found in re.finditer(regex, text, re.MULTILINE):
            match = found
        if match is None:
            return
        end = text.find("\n", match.end())
        line = text[text.rfind("\n", 0, match.start()) + 1: len(text) if end < 0 else end]
        if line == state.seen_pane:
            return
        state.seen_pane = line
        await self._fire(rule.name, agent, reason=f"pattern {regex!r} matched: {line.strip()[:200]}")

    # -- firing -------------------------------------------------------------------------------

    def _targets(self, rule: RuleSpec, agent: str) -> list[str]:
        if rule.handoff:
            return [rule.handoff]
        asked = rule.ask if isinstance(rule.ask, list) else [rule.ask] if rule.ask else []
        out: list[str] = []
        for name in asked:
            route = self.host.routes.get(name)
            out.extend(route.to if route else [name])
        return out

    async def _fire(self, name: str, agent: str, reason: str, touched: list[str] | None = None) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            rule = self._rule(name)
            if rule is None:
                return
            try:
                await self._fire_locked(rule, agent, reason, touched)
                await self._persist(name)
            except Exception as exc:
                log.exception("rule %s failed", name)
                await self.host.log(f"rule {name} failed: {exc}", level="error", origin=f"rule:{name}")

    async def _fire_locked(self, rule: RuleSpec, agent: str, reason: str, touched: list[str] | None) -> None:
        state = self.states.setdefault(rule.name, RuleState())
        now = time.time()
        if state.open_ask is not None:
            return
        if state.rounds >= rule.max_rounds:
            if not state.quiet_logged:
                state.quiet_logged = True
                await self.host.log(
                    f"rule {rule.name}: reached max_rounds ({rule.max_rounds}) for {agent}; it stays quiet until the"
                    f" user gives {agent} a new task or `podctl rules reset {self.host.spec.name} {rule.name}`",
                    level="warning", origin=f"rule:{rule.name}",
                )
            return
        if now - state.last_fired < seconds(rule.cooldown):
            return
        variables: dict[str, Any] = {
            "agent": agent, "pod": self.host.spec.name, "diff": "", "changed_files": "",
            "last_message": await self._last_message(agent), "reason": reason,
            "workdir": str(self.host.spec.agent_workdir(agent)),
        }
        if rule.on in ("turn_end", "file_change"):
            change = await self._change(rule, agent, state, touched)
            if change is None:
                return
            variables["changed_files"] = ", ".join(change.files)
            variables["diff"] = _cap(change.diff)
        if rule.handoff:
            state.rounds += 1
            state.last_fired = now
            await self.host.log(f"rule {rule.name} fired for {agent} ({reason}): hand-off to {rule.handoff}",
                                origin=f"rule:{rule.name}")
            await self.host.handoff(agent, rule.handoff, reason=f"rule {rule.name}: {reason}")
            return
        text = (rule.text or "{agent} asks for your review.\n{diff}").format_map(_SafeVars(variables))
        text = text[: self.host.spec.limits.message_bytes - 512]
        header = f"[auto-ask by rule {rule.name}, on behalf of {agent}] "
        targets = [t for t in self._targets(rule, agent) if t != agent and t in self.host.active()]
        if not targets:
            return
        route = self.host.routes.get(rule.ask) if isinstance(rule.ask, str) else None
        timeout = seconds(route.timeout) if route else DEFAULT_ASK_TIMEOUT_S
        msg = await self.host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="ask", recipients=targets,
            target=rule.ask if isinstance(rule.ask, str) else ",".join(targets),
            text=header + text, ask_mode=route.mode if route else "all", ask_route=route.name if route else None,
            ask_deadline=now + timeout, ask_behalf=agent, origin=f"rule:{rule.name}",
        ))
        assert msg.ask_id is not None
        state.rounds += 1
        state.last_fired = now
        state.open_ask = msg.ask_id
        firing = Firing(rule.name, agent, msg.ask_id, targets)
        firing.task = asyncio.create_task(self._expire(msg.ask_id, timeout))
        self.firings[msg.ask_id] = firing
        await self.host.log(
            f"rule {rule.name} fired for {agent} ({reason}): ask #{msg.ask_id} to {', '.join(targets)}"
            f" (round {state.rounds}/{rule.max_rounds})", origin=f"rule:{rule.name}",
        )

    async def _change(
        self, rule: RuleSpec, agent: str, state: RuleState, touched: list[str] | None
    ) -> gitdiff.Change | None:
        key = self._baseline_key(agent)
        workdir = Path(key[1])
        if not await gitdiff.is_repo(workdir):
            await self.host.log(f"rule {rule.name}: {workdir} is not a git repository; no diff to review", "warning",
                                origin=f"rule:{rule.name}")
            return None
        old = state.baselines.get(key) or await gitdiff.base_tree(workdir, self._start_commit(agent))
        current = await gitdiff.snapshot(workdir)
        files = (await gitdiff.changes(workdir, old, current)).files
        if touched is not None:
            files = [f for f in files if f in touched] or files
        globs = rule.when.changed
        if globs:
            files = [f for f in files if globs_match(f, globs)]
        if not files:
            return None
        state.baselines[key] = current
        return await gitdiff.changes(workdir, old, current, files=files)

    def _start_commit(self, agent: str) -> str:
        """What an agent's first diff is against: its worktree's starting commit, else the checkout's HEAD."""
        placement = self.host.spec.agent_worktree(agent)
        record = placement.record() if placement else None
        return record.base if record else "HEAD"

    async def _last_message(self, agent: str) -> str:
        return await self.host.last_said(agent)

    # -- answers ------------------------------------------------------------------------------

    async def _expire(self, ask_id: int, timeout: float) -> None:
        await asyncio.sleep(timeout)
        await self._settle(ask_id, expired=True)

    async def _settle(self, ask_id: int, expired: bool = False) -> None:
        firing = self.firings.get(ask_id)
        if firing is None:
            return
        ask = await self.host.ask_record(ask_id)
        if ask is None:
            return
        status = await self.host.ask_status(ask)
        if status["status"] == "waiting" and not expired:
            return
        self.firings.pop(ask_id, None)
        if firing.task is not None and not expired:
            firing.task.cancel()
        parts = [f"[{r['from']}]\n{r['text']}" for r in status["replies"]]
        missing = status["waiting_on"] if status["status"] != "replied" else []
        head = f"Answers to the auto-ask of rule {firing.rule} (ask #{ask_id})"
        if missing:
            head += f"; no answer from {', '.join(missing)} before the timeout"
        text = head + ":\n\n" + ("\n\n".join(parts) if parts else "(nobody answered)")
        await self.host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="tell", recipients=[firing.agent], target=firing.agent,
            text=text[: self.host.spec.limits.message_bytes], urgent=True, ask_id=ask_id, origin=f"rule:{firing.rule}",
        ))
        state = self.states.get(firing.rule)
        if state is not None and state.open_ask == ask_id:  # stored once the answer is: a crash never loses it
            state.open_ask = None
            await self._persist(firing.rule)
        await self.host.log(f"rule {firing.rule}: gathered answer to ask #{ask_id} sent to {firing.agent}",
                            origin=f"rule:{firing.rule}")


def _cap(diff: str) -> str:
    data = diff.encode("utf-8")
    if len(data) <= DIFF_CAP_BYTES:
        return diff
    cut = data[:DIFF_CAP_BYTES].decode("utf-8", errors="ignore")
    return cut + f"\n[diff cut: showing {DIFF_CAP_BYTES} of {len(data)} bytes; read the files for the rest]\n"


async def _snapshot_or_none(workdir: Path) -> str | None:
    """The workdir's tree now, or None when it is no git work tree (yet): its first diff is then against HEAD."""
    if not await gitdiff.is_repo(workdir):
        return None
    try:
        return await gitdiff.snapshot(workdir)
    except (gitdiff.GitError, OSError) as exc:
        log.warning("no baseline snapshot of %s: %s", workdir, exc)
        return None


def _not_git(change: Any, path: str) -> bool:
    parts = Path(path).parts
    return ".git" not in parts and "__pycache__" not in parts
