"""The `codex` adapter (Codex CLI 0.169.0; facts in docs/reference and shared/reference/codex.md).

Files podctl writes, all under the agent's folder (`$PODCTL_HOME/<pod>/agents/<name>/codex-home`,
which is the CLI's `CODEX_HOME`; the user's `~/.codex` is never edited):
- `config.toml`: the `podctl` MCP server (`required = true` so the first request already has the
  tools, `default_tools_approval_mode = "approve"` so calls are not refused), project trust for
  the workdir, the model-migration notice already seen (else a dialog can switch the model),
  `[analytics] enabled = false` (no usage analytics sent), and `[hooks.state]` trust for our hooks
  (Codex silently skips untrusted hooks);
- `hooks.json`: SessionStart, UserPromptSubmit, PostToolUse, Stop, SessionEnd -> `podctl hook`;
- `auth.json`: a symlink to the user's `~/.codex/auth.json` when it exists, so their login works.

Hook trust is pre-seeded by asking `codex app-server` (`hooks/list`) for each hook's current
hash, the way Codex's own "Trust all" does; if that fails the CLI is launched with
`--dangerously-bypass-hook-trust` instead (the hooks are podctl's own) and doctor says so.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .adapter import AgentContext, Launch, PermissionMode, ScreenSign, link_credentials, mode_argv, user_file
from .protocol import CLAUDE_STYLE_EVENTS, PERMISSION_REQUEST, HookProtocol
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

HOME_DIR = "codex-home"

APP_SERVER_TIMEOUT_S = 30.0


def _toml_str(value: str) -> str:
    """A TOML basic string (its escapes are JSON's)."""
    return json.dumps(value, ensure_ascii=False)


EVENTS = {**CLAUDE_STYLE_EVENTS, "PermissionRequest": PERMISSION_REQUEST}
"""Codex's events: the common five and a permission request (answered by podctl's hook; Codex shows
its own dialog only once the hook ends)."""


SCREEN_SIGNS = (
    ScreenSign(r"Reconnecting\.\.\. .*\n\s*└\s*(?P<reason>.+)", "failed", says="{reason} (reconnecting)"),
    ScreenSign(r"^\W*■\s*(?P<reason>(?:unexpected status|stream error|error sending request|.*\b401\b).*)", "failed",
               says="{reason}", last_lines=8),
    ScreenSign(r"Sign in with ChatGPT|Sign in with Device Code|Choose how you want to use Codex", "blocked", "dialog",
               says="a login screen: Codex needs a sign-in"),
    ScreenSign(r"Trust this folder\?|Hooks need review", "blocked", "dialog", says="a dialog: {0}"),
    ScreenSign(r"Would you like to (?:run the following command|make the following edits|allow).*", "blocked",
               "permission", says="its approval dialog: {0}"),
)
"""What Codex shows only on its screen: a model server it cannot reach or that refuses it, its
login screen, a trust or hook-review dialog, and its own approval dialog (after podctl's hook)."""

ATTENTION = {
    "permission": "PermissionRequest hook (shell, exec and network approvals), at once; answered by podctl"
                  " (allow, deny with a reason; its own dialog shows once podctl's wait ends)",
    "question": "not reported (request_user_input is only offered in plan mode)",
    "failed": "a model server it cannot reach or that refuses it, from its screen",
    "dialog": "its login screen, trust and hook-review dialogs, from its screen",
    "unreported": "approvals of edits (apply_patch) have no PermissionRequest: they show from its screen only",
}

PERMISSION_MODES = {
    "default": PermissionMode(says="its own default for a trusted folder: commands run in its workspace-write sandbox"
                                   " without asking, what needs more asks"),
    "ask": PermissionMode(("-a", "on-request", "-s", "read-only"),
                          "approvals on-request, read-only sandbox: commands that only read run, edits and the rest ask"),
    "edits": PermissionMode(("-a", "on-request", "-s", "read-only"),
                            "as ask: Codex cannot allow edits without also running commands unasked (its"
                            " workspace-write sandbox), so edits ask too", narrower=True),
    "full": PermissionMode(("--dangerously-bypass-approvals-and-sandbox",), "no approvals and no sandbox: nothing asks"),
}
PERMISSION_FLAGS = ("-a", "--ask-for-approval", "-s", "--sandbox", "--dangerously-bypass-approvals-and-sandbox",
                    "--yolo", "--full-auto")


class CodexAdapter(HookProtocol):
    hook_events = EVENTS
    screen_signs = SCREEN_SIGNS
    screen_working = "esc to interrupt"
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS
    name = "codex"
    executable = "codex"
    tested_versions = ("0.169.0",)
    install_command = "npm install -g @openai/codex@0.169.0"

    def home(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / HOME_DIR

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        """Rollouts: `sessions/YYYY/MM/DD/rollout-*.jsonl`."""
        return [UsageSource(agent_dir / HOME_DIR / "sessions", "**/rollout-*.jsonl")]

    def usage_parser(self, state: dict[str, Any] | None = None) -> CodexUsage:
        return CodexUsage(dict(state or {}))

    def prepare(self, ctx: AgentContext) -> None:
        home = self.home(ctx)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        link_credentials(user_file(".codex", "auth.json"), home / "auth.json")
        hooks = self.hook_config(ctx, timeout=10)
        (home / "hooks.json").write_text(json.dumps({"hooks": hooks}, indent=2))
        shim = ctx.shim_command()
        lines = []
        if ctx.model:
            lines.append(f"model = {_toml_str(ctx.model)}")
        lines += [
            "",
            "[mcp_servers.podctl]",
            f"command = {_toml_str(shim[0])}",
            f"args = [{', '.join(_toml_str(a) for a in shim[1:])}]",
            "required = true",
            'default_tools_approval_mode = "approve"',
            "startup_timeout_sec = 30",
            "tool_timeout_sec = 120",
            "",
            f"[projects.{_toml_str(str(ctx.workdir))}]",
            'trust_level = "trusted"',
            "",
            "[notice.model_migrations]",
            '"gpt-5.5" = "gpt-6-sol"',
            "",
            "[analytics]",
            "enabled = false",
            "",
        ]
        config = home / "config.toml"
        config.write_text("\n".join(lines))
        trust = self.hook_trust(ctx, home)
        flag = home / "bypass-hook-trust"
        if trust:
            with config.open("a") as fh:
                for key, digest in trust.items():
                    fh.write(f"\n[hooks.state.{_toml_str(key)}]\ntrusted_hash = {_toml_str(digest)}\n")
            flag.unlink(missing_ok=True)
        else:
            flag.write_text("codex app-server did not list our hooks; launching with --dangerously-bypass-hook-trust\n")

    def hook_trust(self, ctx: AgentContext, home: Path) -> dict[str, str]:
        """Each hook's key and current hash, from `codex app-server` `hooks/list`."""
        import json
        env = {**os.environ, **ctx.env, "CODEX_HOME": str(home)}
        requests = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"clientInfo": {"name": "podctl", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "initialized", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "hooks/list", "params": {"cwds": [str(ctx.workdir)]}},
        ]
        try:
            proc = subprocess.Popen(
                [self.executable, "app-server"], cwd=ctx.workdir, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        except OSError:
            return {}
        assert proc.stdin is not None and proc.stdout is not None
        trust: dict[str, str] = {}
        try:
            proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
            proc.stdin.flush()
            for line in _lines(proc.stdout.fileno(), time.monotonic() + APP_SERVER_TIMEOUT_S):
                message = json.loads(line) if line.strip().startswith(b"{") else {}
                if message.get("id") == 2:
                    trust = _hashes(message.get("result") or {})
                    break
        except (OSError, ValueError):
            trust = {}
        finally:
            proc.kill()
            proc.wait(timeout=10)
        return trust

    def launch(self, ctx: AgentContext) -> Launch:
        argv = [self.executable, "--no-daemon"]
        if (self.home(ctx) / "bypass-hook-trust").exists():
            argv.append("--dangerously-bypass-hook-trust")
        if ctx.model:
            argv += ["-m", ctx.model]
        argv += mode_argv(self, ctx)
        argv += list(ctx.args)
        return Launch(argv=argv, env={**ctx.env, "CODEX_HOME": str(self.home(ctx))}, cwd=ctx.workdir)


def _lines(fd: int, deadline: float) -> Iterator[bytes]:
    """Lines from a pipe until EOF or `deadline` (monotonic): a stalled `codex app-server` must
    not hold up whoever is bringing the pod up."""
    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line


def _hashes(result: dict[str, Any]) -> dict[str, str]:
    """`hooks/list` answers a list of entries (possibly grouped per cwd); keep key -> currentHash."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "key" in node and "currentHash" in node:
                found[str(node["key"])] = str(node["currentHash"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return found


class CodexUsage(StatelessParser):
    """`token_usage_record` lines carry one response's usage (the cumulative turn and thread totals
    beside it, and the `token_count` events, are not read, so nothing counts twice). The model is
    not on them: it is the latest `turn_context`'s, remembered in `state`. `input_tokens` includes
    the cached ones, `output_tokens` the reasoning."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        payload = obj(line.get("payload"))
        kind = line.get("type")
        if kind == "turn_context":
            if isinstance(payload.get("model"), str):
                self.state["model"] = payload["model"]
            return None
        if kind != "token_usage_record":
            return None
        usage = obj(payload.get("usage"))
        cached = count(usage.get("cached_input_tokens"))
        record = UsageRecord(
            key=str(payload.get("response_id") or where), model=str(self.state.get("model") or "unknown"),
            ts=timestamp(line.get("timestamp"), time.time()),
            input=max(0, count(usage.get("input_tokens")) - cached), cached=cached,
            output=count(usage.get("output_tokens")), reasoning=count(usage.get("reasoning_output_tokens")),
        )
        return record if record.input or record.cached or record.output else None


ADAPTER = CodexAdapter()
