"""The `kilo` adapter (Kilo CLI 7.7.7; facts in shared/reference/more-clis.md).

Kilo is an OpenCode fork with the same plugin API and events, so this adapter is the OpenCode one
(hooks/opencode.py, its plugin `opencode_plugin.js` included) with Kilo's names: `KILO_CONFIG_DIR`,
`KILO_PERMISSION`, `KILO_DISABLE_AUTOUPDATE`, the config file `kilo.json` and the XDG folder `kilo`.
Files podctl writes, all under the agent's folder (the user's `~/.config/kilo`, `~/.local/share/kilo`
and `~/.local/state/kilo` are never written):
- `kilo-config/`: `KILO_CONFIG_DIR`, with `kilo.json` (the `podctl` MCP server, tool timeout 300 s)
  and `plugin/podctl.js`, podctl's OpenCode plugin;
- `kilo-data/`, `kilo-state/`, `kilo-xdg-config/`: its XDG folders (the database `kilo-data/kilo/
  kilo.db`, prompt history; a copy of the user's global config files and links to their agents,
  commands, modes, plugins and themes). `kilo-data/kilo/auth.json` links to the user's legacy
  `auth.json` when there is one; a login kept only in the user's own Kilo database is not shared
  (set the provider's key in the agent's `env:`, or `KILO_AUTH_CONTENT`).
- Permissions (`KILO_PERMISSION`): as OpenCode's (podctl's tools allowed, `question` denied), and
  Kilo's `suggest` tool denied: it shows a suggestion and waits for a person to accept or dismiss
  it, with the session reported idle meanwhile, which stalls an unattended pane.

Kilo tries to npm-install its plugin package (`@kilocode/plugin`) into the config folder in the
background, as OpenCode does; podctl's plugin imports nothing from it.

Attention (for the blocked/failed states, not wired yet), as in OpenCode: the plugin bus's
`permission.asked` (`id`, `sessionID`, `permission`, `patterns`; answered with
`client.permission.reply`) and `permission.replied`; `question.asked` (the `question` tool, off by
default in Kilo, `KILO_ENABLE_QUESTION_TOOL`, and denied here); `session.status` `retry` (attempt,
message) and `session.error` for failures; the screen's "Permission required" dialog. Permission
modes: `permission` in config or `KILO_PERMISSION` (`ask`/`allow`/`deny` per tool or pattern),
`--auto` on `kilo run`; Kilo's agents (`code`, `plan`, ...) carry their own permissions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .opencode import PERMISSION, OpenCodeAdapter


class KiloAdapter(OpenCodeAdapter):
    name = "kilo"
    executable = "kilo"
    app = "kilo"
    env = "KILO"
    schema = "https://app.kilo.ai/config.json"
    config_files = ("config.json", "kilo.json", "kilo.jsonc", "opencode.json", "opencode.jsonc", "tui.json", "tui.jsonc")
    tested_versions = ("7.7.7",)
    install_command = "npm install -g @kilocode/cli@7.7.7"
    permission: ClassVar[dict[str, Any]] = {**PERMISSION, "suggest": "deny"}
    quiet: ClassVar[dict[str, str]] = {"KILO_TELEMETRY_LEVEL": "off", "KILO_DISABLE_PRESENCE": "1"}
    """Kilo sends PostHog telemetry unless its level is not `all`, and a logged-in session's presence."""


ADAPTER = KiloAdapter()
