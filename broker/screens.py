"""Reading an agent's screen where no hook event can tell what holds it (a login screen, a trust
dialog, an API error its CLI retries), and seeing that clear. Read only when worth a look: an agent
busy and silent, one with no tools up yet, one whose turn just ended, one held by its screen."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .needs import CLEAR_LOOKS, JUST_ENDED_S, LOOK_TIMEOUT_S, REASON_CHARS, SILENT_S, WATCH_S, Looks, Need

if TYPE_CHECKING:
    from .attention import AttentionDesk
    from .ports import Screen, Sign

log = logging.getLogger("podctl.broker.attention")


class ScreenWatch:
    """The screens of one desk's agents; what a screen shows enters or clears the agent's need."""

    def __init__(self, desk: AttentionDesk) -> None:
        self.desk = desk
        self.looks: dict[str, Looks] = {}

    def worth_a_look(self, name: str, now: float) -> bool:
        """Whether only its screen can tell what holds the agent now."""
        member = self.desk.host.member_view(name)
        if member is None:
            return False
        need = self.desk.needs.get(name)
        if need is not None:
            return need.source == "screen" or (need.kind == "permission" and need.state == "blocked")
        if member.state in ("idle", "stopped") and not member.tools_ready:
            return True
        if member.state == "busy":
            return now - (member.last_activity or member.state_ts) >= SILENT_S
        return member.state == "idle" and now - member.state_ts < JUST_ENDED_S

    async def look(self, name: str) -> None:
        member = self.desk.host.member_view(name)
        if member is None:
            return
        try:
            screen = await asyncio.wait_for(self.desk.host.ports.read_screen(self.desk.host.spec.name, name, member.cli),
                                            timeout=LOOK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a screen that cannot be read tells nothing
            log.debug("reading %s's screen failed: %r", name, exc)
            return
        if screen is not None:
            await self.on_screen(name, screen)

    async def on_screen(self, name: str, screen: Screen) -> None:
        need = self.desk.needs.get(name)
        looks = self.looks.setdefault(name, Looks())
        sign = screen.sign
        if sign is not None:
            looks.absent = 0
            seen = self._from_sign(sign)
            if need is None or (need.source == "screen" and need.key() != seen.key()):
                await self.desk.enter(name, seen)
            elif need.source == "event" and sign.kind == "permission":
                looks.seen_dialog = True
            return
        if need is None:
            return
        looks.absent += 1
        if looks.absent < CLEAR_LOOKS:
            return
        if need.source == "screen":
            await self.desk.clear(name)
        elif need.kind == "permission" and looks.seen_dialog and not need.answerable:
            self.desk.base[name] = "busy" if screen.working is not False else "idle"
            await self.desk.clear(name, settle="answered in its pane")

    @staticmethod
    def _from_sign(sign: Sign) -> Need:
        now = time.time()
        if sign.state == "failed":
            return Need("failed", now, reason=sign.detail[:REASON_CHARS], source="screen")
        return Need("blocked", now, sign.kind or "dialog", detail=sign.detail, source="screen", how="answer in its pane")

    async def watch(self) -> None:
        """Read the screens worth a look, every WATCH_S, for as long as the broker runs."""
        while True:
            await asyncio.sleep(WATCH_S)
            now = time.time()
            for name in self.desk.host.active():
                if self.worth_a_look(name, now):
                    try:
                        await self.look(name)
                    except Exception:
                        log.exception("reading %s's screen failed", name)
