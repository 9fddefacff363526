"""The `copilot` adapter (GitHub Copilot CLI 1.0.102; facts in shared/reference/more-clis.md).

Built as a third party would build one: this module and its entry point in pyproject.toml. Files
podctl writes, all under the agent's folder (the user's `~/.copilot` is never written):
- `copilot-home/` is the CLI's `COPILOT_HOME` (settings, sessions, logs):
  - `settings.json`: the user's own `~/.copilot/settings.json` with podctl's hooks added after
    theirs (camelCase events, whose command hooks answer `{"additionalContext": ...}` and, at
    agentStop, `{"decision": "block", "reason": ...}`);
  - `mcp-config.json`: the user's MCP servers and the `podctl` server (tool timeout 300 s, above
    `wait_for_reply`'s cap);
  - `config.json` (the CLI's own state file): the workdir among `trustedFolders`, else a "Confirm
    folder trust" dialog stalls the pane at start.
- `copilot-cache/`: its `COPILOT_CACHE_HOME` (the MCP tool lists it caches);
- `copilot-xdg-cache/`: its `XDG_CACHE_HOME`, for the device id its telemetry library writes at every
  start (`Microsoft/DeveloperTools/deviceid`, even offline and with `--disable-client-telemetry`;
  only `XDG_CACHE_HOME` moves it);
- `bash-env.sh`: its `BASH_ENV` (read by the CLI's shell tool, `bashEnv` in its settings): the
  agent's own commands get the user's `XDG_CACHE_HOME` back, then the user's `BASH_ENV` runs when
  their settings enable it.
The CLI's unpacked package (235 MB per version) is `COPILOT_PKG_CACHE_HOME`, podctl's shared cache
`<state root>/.cache/copilot/` (one copy for every Copilot agent, never in the user's home).

Command: `copilot --allow-tool podctl --no-ask-user --disable-client-telemetry [--model M] ARGS`
(no telemetry sent by the CLI), started through
`AgentContext.announced`: the CLI fires no hook until its first prompt (its `sessionStart` comes
with that prompt, at the same time as `userPromptSubmitted`), so podctl reports the session itself
and maps `sessionStart` to a turn start that carries the introduction. `sessionEnd` is not used: it
also fires on `/clear`, and podctl sees the CLI exit anyway. `COPILOT_AUTO_UPDATE=false` unless
the agent's env says otherwise. With a model endpoint of your own (BYOK), set `COPILOT_PROVIDER_*`
(and `COPILOT_OFFLINE=true`) in the agent's `env:`; a `copilot login` kept in the system keychain,
or `COPILOT_GITHUB_TOKEN`/`GH_TOKEN`, is used as it is.

Wake: typed (the interactive CLI has no input channel of its own), once its footer shows
`/ commands · ? help` (idle, no dialog), with `C-u` first.

Token usage: `session.usage_record` events, one per model request, in
`copilot-home/session-state/<session>/events.jsonl`.

Attention (docs/attention.md):
- permission prompt: `notification` with `notification_type: "permission_prompt"` (`message`
  "Use MCP tool: podctl/list_agents", `title` "Permission needed") fires only when a dialog is
  shown; `permissionRequest` (`toolName`, `toolInput`, `permissionSuggestions`) fires on every
  permission check, also for tools a rule allows, and can approve or deny. The screen shows
  "Do you want to use this tool?" / "↑/↓ to navigate · enter to select".
- question: the `ask_user` tool (off here, `--no-ask-user`); `notification` also has elicitation
  dialogs and agent completion.
- failure: `errorOccurred` (`error`, `errorContext` model_call|tool_execution|system|user_input,
  `recoverable`), one per retry; a turn that fails on its model calls ends with no `agentStop`
  (all were `recoverable: true` in a test), so podctl then keeps the agent busy until its next
  turn. `postToolUseFailure` for a failed tool.
- permission modes: `defaultPermissionMode` (`manual`, the default: writes and commands ask;
  `assisted`: an LLM judge approves; `allow-all`, as `--allow-all`/`--yolo`); agent modes
  `--mode interactive|plan|autopilot`; `--allow-tool`/`--deny-tool` rules (`shell(git:*)`,
  `write(path)`, `<mcp-server>(tool)`, `url(...)`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .adapter import (
    AgentContext,
    HookEvent,
    Launch,
    PermissionMode,
    merge_settings,
    mode_argv,
    read_settings,
    user_env_script,
    with_env,
)
from .protocol import HookProtocol
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

HOME_DIR = "copilot-home"
CACHE_DIR = "copilot-cache"
XDG_CACHE_DIR = "copilot-xdg-cache"
ENV_FILE = "bash-env.sh"
MCP_TIMEOUT_MS = 300_000
HOOK_TIMEOUT_S = 10

EVENTS = {
    "sessionStart": HookEvent("turn_start", output="plain", intro=True),
    "userPromptSubmitted": HookEvent("turn_start", output="plain"),
    "postToolUse": HookEvent("tool_done", output="plain"),
    "postToolUseFailure": HookEvent("tool_done", output="plain"),
    "agentStop": HookEvent("turn_end", attention_only=True, output="continue"),
    "notification": HookEvent("notification", inject=False),
    "errorOccurred": HookEvent("failure", inject=False),
}

ATTENTION = {
    "permission": "notification hook (permission_prompt), when its dialog shows; answer in its pane (its"
                  " permissionRequest hook fires for every check, also for calls a rule allows: podctl cannot hold it)",
    "question": "none: its ask_user tool is off (--no-ask-user; the agent asks through podctl)",
    "failed": "errorOccurred hook (the CLI's words), at its first failed model call",
    "dialog": "none reported: podctl trusts the workdir beforehand (no folder-trust dialog)",
    "unreported": "the tool a permission prompt is for: its notification says only what it asks (\"Run command: ...\")",
}

MANUAL = {"defaultPermissionMode": "manual"}
"""The user's own settings may start sessions in assisted or allow-all: a pod file's mode is kept."""
PERMISSION_MODES = {
    "default": PermissionMode(says="its own default permission mode (manual unless the user's settings say"
                                   " otherwise): writes and commands ask, reads do not"),
    "ask": PermissionMode((), "permission mode manual: writes and commands ask, reads do not"),
    "edits": PermissionMode(("--allow-tool", "write"),
                            "permission mode manual with writes allowed (--allow-tool write): commands ask, and so"
                            " does a path outside its folder"),
    "full": PermissionMode(("--allow-all",), "--allow-all: nothing asks (tools, paths, URLs)"),
}
PERMISSION_FLAGS = ("--allow-all", "--yolo", "--allow-all-tools", "--allow-all-paths", "--allow-all-urls")


class CopilotAdapter(HookProtocol):
    hook_events = EVENTS
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS
    name = "copilot"
    executable = "copilot"
    tested_versions = ("1.0.102",)
    install_command = "npm install -g @github/copilot@1.0.102"
    wake_ready_text = "/ commands · ? help"
    """The idle footer: the UI is up, no turn runs and no dialog is open."""
    wake_clear_keys = ("C-u",)
    wake_blocked_texts = ("enter to select", "Confirm folder trust")
    """A selection dialog (permission, trust) is open: Enter would answer it."""

    def home(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / HOME_DIR

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        return [UsageSource(agent_dir / HOME_DIR / "session-state", "*/events.jsonl")]

    def usage_parser(self, state: dict[str, Any] | None = None) -> CopilotUsage:
        return CopilotUsage(dict(state or {}))

    def prepare(self, ctx: AgentContext) -> None:
        home = self.home(ctx)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for folder in (CACHE_DIR, XDG_CACHE_DIR):
            (ctx.agent_dir / folder).mkdir(exist_ok=True, mode=0o700)
        user = Path(os.environ.get("COPILOT_HOME") or Path.home() / ".copilot")
        settings = read_settings(user / "settings.json")
        env_file = ctx.agent_dir / ENV_FILE
        chain = "BASH_ENV" if settings.get("bashEnv") is True else None  # the user's BASH_ENV, if their CLI reads it
        env_file.write_text(user_env_script(ctx, ("XDG_CACHE_HOME",), chain, env_file))
        mine = {native: [{"type": "command", "command": ctx.hook_shell(how), "timeoutSec": HOOK_TIMEOUT_S}]
                for native, how in self.hook_events.items()}
        settings = merge_settings(settings, {"hooks": mine, "bashEnv": True})
        if ctx.permissions in ("ask", "edits"):
            settings = merge_settings(settings, MANUAL)
        (home / "settings.json").write_text(json.dumps(settings, indent=2))
        shim = ctx.shim_command()
        servers = merge_settings(read_settings(user / "mcp-config.json"), {"mcpServers": {"podctl": {
            "type": "local", "command": shim[0], "args": shim[1:], "tools": ["*"], "timeout": MCP_TIMEOUT_MS,
        }}})
        (home / "mcp-config.json").write_text(json.dumps(servers, indent=2))
        state = merge_settings(read_settings(home / "config.json"), {"trustedFolders": [str(ctx.workdir)]})
        (home / "config.json").write_text(json.dumps(state, indent=2))

    def launch(self, ctx: AgentContext) -> Launch:
        argv = [self.executable, "--allow-tool", "podctl", "--no-ask-user", "--disable-client-telemetry"]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += mode_argv(self, ctx)
        argv += list(ctx.args)
        env = {
            "COPILOT_AUTO_UPDATE": "false", **ctx.env,
            "COPILOT_HOME": str(self.home(ctx)), "COPILOT_CACHE_HOME": str(ctx.agent_dir / CACHE_DIR),
            "COPILOT_PKG_CACHE_HOME": str(ctx.shared_cache(self.name)),
        }
        moved = {"XDG_CACHE_HOME": str(ctx.agent_dir / XDG_CACHE_DIR), "BASH_ENV": str(ctx.agent_dir / ENV_FILE)}
        return Launch(argv=with_env(moved, ctx.announced(argv)), env=env, cwd=ctx.workdir)


class CopilotUsage(StatelessParser):
    """`session.usage_record` events: `inputTokens` is the prompt with cache reads, `outputTokens`
    the completion with reasoning; keyed by the provider's response id."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        if line.get("type") != "session.usage_record":
            return None
        usage = obj(obj(line.get("data")).get("usage"))
        cached = count(usage.get("cacheReadTokens"))
        key = obj(usage.get("accounting")).get("usageId") or usage.get("apiCallId") or line.get("id") or where
        record = UsageRecord(
            key=str(key), model=str(usage.get("model") or "unknown"), ts=timestamp(line.get("timestamp"), time.time()),
            input=max(0, count(usage.get("inputTokens")) - cached), cached=cached,
            output=count(usage.get("outputTokens")), reasoning=count(usage.get("reasoningTokens")),
        )
        return record if record.input or record.cached or record.output else None


ADAPTER = CopilotAdapter()
