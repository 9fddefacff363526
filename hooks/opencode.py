"""The `opencode` adapter (OpenCode 1.18.33; facts in shared/reference/opencode.md).

Built as a third party would build one: this module and its entry point in pyproject.toml, nothing
else in podctl knows OpenCode. Kilo, a fork with the same plugin API, subclasses it (hooks/kilo.py).
Files podctl writes, all under the agent's folder (`.../agents/<name>/`; the user's and the
project's `opencode.json` are never edited):
- `opencode-config/` is the CLI's `OPENCODE_CONFIG_DIR`: `opencode.json` declares the `podctl` MCP
  server (local, stdio, with a tool timeout above `wait_for_reply`'s cap: OpenCode cuts calls at
  60 s by default), the model, no auto-update and no sharing; `plugin/podctl.js` is podctl's plugin
  (below). OpenCode itself adds `package.json`, `.gitignore` and `node_modules/` there.
- `opencode-data/`, `opencode-state/`: its `XDG_DATA_HOME` and `XDG_STATE_HOME`, so the agent's
  sessions, database and prompt history do not mix with the user's own; `opencode-data/opencode/
  auth.json` links to the user's login when there is one.
- Its `XDG_CACHE_HOME` (downloaded provider packages, models list) is podctl's shared cache
  `<state root>/.cache/opencode/`, one for every OpenCode agent, never the user's `~/.cache`.
- `opencode-xdg-config/`: its `XDG_CONFIG_HOME`. OpenCode installs its plugin package into every
  config folder it reads, its global one included, so the user's `~/.config/opencode` is not that
  folder: `opencode-xdg-config/opencode/` holds a copy of the user's global config files (taken at
  every start, so provider settings still merge as OpenCode merges them) and links to the user's
  agents, commands, modes, plugins and themes. Bash commands the agent runs get the user's four XDG
  folders back (the plugin's `shell.env`).
- Permissions (`OPENCODE_PERMISSION`, merged last): podctl's tools allowed, `question` denied,
  `external_directory` and `doom_loop` allowed and `.env` files denied, so that no dialog opens in
  an unattended pane (typing into one confirms its default).

The plugin carries messages into the model's context through the same hook command every CLI
runs (`podctl hook`, standard library only, exactly-once claims). OpenCode has no hook that adds
context at start: the plugin keeps what its start's hook prints (the pod, the agent's role and team,
asks to it still open; no message is claimed then) and adds it to the first turn. `chat.message`
adds messages to the user's message at turn start (as a part after the user's text), `tool.execute.after` to the
result of every tool call; `session.status` reports busy and idle, serialized (OpenCode does not
await event hooks). At idle, messages that need the agent are given to it as a new prompt
(`client.session.promptAsync`): the agent keeps going without a keystroke. A wake request from
the broker is a file (`wake`) the plugin watches and answers the same way; only when the plugin
cannot (no session yet) does the wake fall back to typing, once `Ask anything` is on screen.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

from .adapter import Adapter, AgentContext, HookEvent, Launch, PermissionMode, ScreenSign, link_credentials
from .usage import UsageRecord, count, obj, timestamp

GLOBAL_FILES = ("config.json", "opencode.json", "opencode.jsonc", "tui.json", "tui.jsonc")
GLOBAL_FOLDERS = ("agent", "agents", "command", "commands", "mode", "modes", "plugin", "plugins", "themes", "tool", "tools")
XDG_DEFAULTS = (
    ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_STATE_HOME", ".local/state"),
    ("XDG_CACHE_HOME", ".cache"),
)
WAKE_FILE = "wake"
"""Written by the broker's wake into the agent's folder; the plugin answers in `wake.ack`."""
MCP_TIMEOUT_MS = 300_000
USAGE_BATCH = 1000
MOVED = (*(name for name, _ in XDG_DEFAULTS), "npm_config_cache")
"""The variables the CLI gets podctl's values of, and the agent's commands the user's (the plugin's `shell.env`)."""

EVENTS = {
    "plugin.start": HookEvent("session_start", inject=False, output="plain"),
    "chat.message": HookEvent("turn_start", output="plain"),
    "tool.execute.after": HookEvent("tool_done", output="plain"),
    "session.status.busy": HookEvent("tool_done", inject=False),
    "session.status.idle": HookEvent("turn_end", attention_only=True, output="plain"),
    "dispose": HookEvent("session_end", inject=False),
    "permission.asked": HookEvent("permission", inject=False, output="decision", hold=True),
    "question.asked": HookEvent("notification", inject=False),
    "session.error": HookEvent("failure", inject=False),
}
"""The plugin's hooks and bus events, by the names the plugin calls them: `permission.asked` waits
for podctl's answer and replies through OpenCode's API (`permission.reply`); `question.asked` and
`session.error` are told as a notification and a failure, with facts the plugin shapes like Claude
Code's (`tool_name`, `tool_input`, `notification_type`, `message`, `error`)."""

SCREEN_SIGNS = (
    ScreenSign(r"Permission required", "blocked", "permission", says="its permission dialog is open"),
)
"""OpenCode's own permission dialog (to see one answered in its pane)."""

ATTENTION = {
    "permission": "permission.asked bus event (its plugin), at once; answered by podctl through OpenCode's API"
                  " (allow, deny with a reason)",
    "question": "question.asked (its question tool, which podctl turns off)",
    "failed": "session.error bus event (its plugin), with OpenCode's words",
    "dialog": "none seen: it starts without a login or trust dialog",
    "unreported": "a provider it cannot reach while it retries",
}

_ASKING = {"edit": "ask", "bash": "ask", "webfetch": "ask", "external_directory": "ask", "doom_loop": "ask"}
PERMISSION_MODES = {
    "default": PermissionMode(says="its own default: nothing asks (podctl lets it read outside its folder and repeat"
                                   " a call; .env files are refused)"),
    "ask": PermissionMode(says="edit, bash, webfetch, external_directory and doom_loop ask"),
    "edits": PermissionMode(says="edit is allowed in its folder (external_directory asks), bash and webfetch ask"),
    "full": PermissionMode(says="every permission allowed: nothing asks"),
}
MODE_RULES: dict[str, dict[str, Any]] = {
    "ask": _ASKING,
    "edits": {**_ASKING, "edit": "allow"},
    "full": {"*": "allow", "edit": "allow", "bash": "allow", "webfetch": "allow", "external_directory": "allow"},
}
"""Merged over podctl's own permission rules for each `permissions` mode."""

PERMISSION = {
    "podctl_*": "allow", "question": "deny", "external_directory": "allow", "doom_loop": "allow",
    "read": {"*": "allow", "*.env": "deny", "*.env.*": "deny", "*.env.example": "allow"},
}

PLUGIN = (Path(__file__).resolve().parent / "opencode_plugin.js").read_text(encoding="utf-8")


class OpenCodeAdapter(Adapter):
    """OpenCode, and its forks with the same plugin API (hooks/kilo.py): a fork renames `app` (its
    XDG folders, database and the prefix of the agent's folders) and `env` (its variables' prefix)."""

    name = "opencode"
    executable = "opencode"
    app = "opencode"
    env = "OPENCODE"
    schema = "https://opencode.ai/config.json"
    """The config's `$schema` (the CLI adds it to a file without one)."""
    config_files: tuple[str, ...] = GLOBAL_FILES
    """The user's global config files (in `$XDG_CONFIG_HOME/<app>/`) copied into the agent's."""
    tested_versions = ("1.18.33",)
    install_command = "npm install -g opencode-ai@1.18.33"
    wake_text = "You have new podctl messages (shown in your context). Handle them; answer asks with podctl_post_reply."
    wake_ready_text = "Ask anything"
    """Keys typed before this is on screen are lost."""
    wake_clear_keys = ("C-u",)
    """Cleared before typing (never Escape: it interrupts a turn; never C-c: it can quit)."""
    wake_blocked_texts = ("Permission required",)
    """A dialog is open: Enter would answer it."""
    wake_file = WAKE_FILE
    hook_events = EVENTS
    permission: ClassVar[dict[str, Any]] = PERMISSION
    screen_signs = SCREEN_SIGNS
    screen_working = "esc interrupt"
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags: tuple[str, ...] = ()
    quiet: ClassVar[dict[str, str]] = {}
    """Variables that turn off what a fork sends home (telemetry), unless the agent's `env` says otherwise."""

    def permission_rules(self, mode: str | None) -> dict[str, Any]:
        """podctl's permission rules with the mode's over them (`*` first: the specific rules win)."""
        rules = {**self.permission, **MODE_RULES.get(mode or "", {})}
        return {"*": rules.pop("*"), **rules} if "*" in rules else rules

    def folder(self, agent_dir: Path, kind: str) -> Path:
        """The agent's `<app>-config` (its config dir), `-data`, `-state` and `-xdg-config` folders."""
        return agent_dir / f"{self.app}-{kind}"

    def config_dir(self, ctx: AgentContext) -> Path:
        return self.folder(ctx.agent_dir, "config")

    def usage_pull(self, agent_dir: Path, state: dict[str, Any]) -> tuple[list[UsageRecord], dict[str, Any]]:
        """OpenCode keeps usage in its database (not in files to follow): the finished assistant
        messages updated since the last look, at most USAGE_BATCH at a time."""
        db = self.folder(agent_dir, "data") / self.app / f"{self.app}.db"
        after = int(state.get("after") or 0)
        if not db.is_file():
            return [], state
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)) as conn:
                rows = conn.execute(
                    "SELECT id, time_updated, data FROM message WHERE time_updated > ?"
                    " AND json_extract(data, '$.role') = 'assistant'"
                    " AND json_extract(data, '$.time.completed') IS NOT NULL ORDER BY time_updated LIMIT ?",
                    (after, USAGE_BATCH),
                ).fetchall()
        except sqlite3.Error:
            return [], state
        records = [r for r in (_usage(key, data) for key, _, data in rows) if r is not None]
        return records, {"after": rows[-1][1] if rows else after}

    def prepare(self, ctx: AgentContext) -> None:
        config = self.config_dir(ctx)
        (config / "plugin").mkdir(parents=True, exist_ok=True, mode=0o700)
        data = self.folder(ctx.agent_dir, "data") / self.app
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder(ctx.agent_dir, "state").mkdir(parents=True, exist_ok=True, mode=0o700)
        auth = _user_dir("XDG_DATA_HOME") / self.app / "auth.json"
        link_credentials(auth if auth.is_file() else None, data / "auth.json")
        _mirror_global_config(
            _user_dir("XDG_CONFIG_HOME") / self.app, self.folder(ctx.agent_dir, "xdg-config") / self.app, self.config_files,
        )
        shim = ctx.shim_command()
        settings: dict[str, Any] = {
            "$schema": self.schema,
            "autoupdate": False,
            "share": "disabled",
            "mcp": {"podctl": {"type": "local", "command": shim, "enabled": True, "timeout": MCP_TIMEOUT_MS}},
        }
        if ctx.model:
            settings["model"] = ctx.model
        (config / f"{self.app}.json").write_text(json.dumps(settings, indent=2))
        (config / "plugin" / "podctl.js").write_text(self.plugin(ctx))

    def plugin(self, ctx: AgentContext) -> str:
        """podctl's plugin with this agent's hook commands and the user's XDG folders filled in."""
        values = {
            "HOOKS": {native: ctx.hook_command(how) for native, how in self.hook_events.items()},
            "WAKE_DIR": str(ctx.agent_dir), "WAKE_FILE": WAKE_FILE,
            "USER_ENV": {name: ctx.env.get(name, os.environ.get(name)) for name in MOVED},
        }
        text = PLUGIN
        for key, value in values.items():
            text = text.replace(f"/*{key}*/null", json.dumps(value))
        return text

    def launch(self, ctx: AgentContext) -> Launch:
        env = {
            f"{self.env}_DISABLE_AUTOUPDATE": "1", **self.quiet, **ctx.env,
            f"{self.env}_CONFIG_DIR": str(self.config_dir(ctx)),
            f"{self.env}_PERMISSION": json.dumps(self.permission_rules(ctx.permissions)),
            "XDG_DATA_HOME": str(self.folder(ctx.agent_dir, "data")),
            "XDG_STATE_HOME": str(self.folder(ctx.agent_dir, "state")),
            "XDG_CONFIG_HOME": str(self.folder(ctx.agent_dir, "xdg-config")),
            "XDG_CACHE_HOME": str(ctx.shared_cache(self.app)),
            "npm_config_cache": str(ctx.shared_cache(self.app) / "npm"),
        }
        return Launch(argv=[self.executable, *ctx.args], env=env, cwd=ctx.workdir)


def _usage(key: str, data: str) -> UsageRecord | None:
    """One assistant message's tokens: OpenCode's `input` is without cache reads, its `output`
    without reasoning."""
    try:
        message = json.loads(data)
    except ValueError:
        return None
    tokens = obj(message.get("tokens"))
    cache = obj(tokens.get("cache"))
    reasoning = count(tokens.get("reasoning"))
    record = UsageRecord(
        key=key, model=str(message.get("modelID") or "unknown"),
        ts=timestamp(obj(message.get("time")).get("completed"), time.time()),
        input=count(tokens.get("input")) + count(cache.get("write")), cached=count(cache.get("read")),
        output=count(tokens.get("output")) + reasoning, reasoning=reasoning,
    )
    return record if record.input or record.cached or record.output else None


def _user_dir(name: str) -> Path:
    """The user's own XDG folder `name` (from podctl's environment, else its default under HOME)."""
    default = dict(XDG_DEFAULTS)[name]
    return Path(os.environ.get(name) or Path.home() / default)


def _mirror_global_config(user: Path, agent: Path, files: tuple[str, ...]) -> None:
    """The user's global OpenCode config as the agent's: files copied (OpenCode may write to a file it
    reads), folders linked (it only reads them); what the user no longer has goes."""
    agent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in (*files, *GLOBAL_FOLDERS):
        target = agent / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        source = user / name
        if name in files and source.is_file():
            shutil.copyfile(source, target)
            target.chmod(0o600)
        elif name in GLOBAL_FOLDERS and source.is_dir():
            target.symlink_to(source)


ADAPTER = OpenCodeAdapter()
