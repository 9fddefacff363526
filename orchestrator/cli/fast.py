"""The fast path of the commands people and scripts run most (`send`, `tail`, `status`, `ls`, `ui`): the same options
as the typer commands, parsed here with no typer, no pydantic and no pod-file loader imported.

Anything this parser does not know for certain (`--help`, an unknown option, a missing value)
goes to the typer command, which answers it as always. tests/orchestrator/test_fast_cli.py parses a
command line per declared option both ways, so this table and the typer commands cannot drift.
"""

from __future__ import annotations

import sys

from .exits import NO_REPLY

FLAGS = {"send": {"--ask": "ask", "--urgent": "urgent", "--json": "as_json"},
         "tail": {"--follow": "follow", "-f": "follow", "--json": "as_json"},
         "status": {"--json": "as_json"}, "ls": {"--json": "as_json"}, "ui": {}}
VALUES = {"send": {"--to": "to", "--wait": "wait"}, "tail": {"--last": "last", "-n": "last"}, "status": {}, "ls": {},
          "ui": {}}
POSITIONAL = {"send": ("pod", "text"), "tail": ("pod",), "status": ("pod",), "ls": (), "ui": ("pod",)}
COMMANDS = tuple(FLAGS)


def parse(command: str, argv: list[str]) -> dict[str, object] | None:
    """The command's options, or None when typer should parse them."""
    to: list[str] = []
    opts: dict[str, object] = {"to": to}
    positional: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in FLAGS[command]:
            opts[FLAGS[command][arg]] = True
        elif arg in VALUES[command]:
            value = next(it, None)
            if value is None:
                return None
            name = VALUES[command][arg]
            if name == "to":
                to.append(value)
            else:
                opts[name] = value
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            positional.append(arg)
    if len(positional) != len(POSITIONAL[command]):
        return None
    opts.update(zip(POSITIONAL[command], positional, strict=True))
    try:
        if "wait" in opts:
            opts["wait"] = float(str(opts["wait"]))
        if "last" in opts:
            opts["last"] = int(str(opts["last"]))
    except ValueError:
        return None
    return opts


def run(argv: list[str]) -> int | None:
    """Run `podctl send|tail ...` without typer; None when typer must (help, unusual options)."""
    command, rest = argv[0], argv[1:]
    opts = parse(command, rest)
    if opts is None:
        return None
    if command == "ui":
        from podctl.orchestrator.ui.app import run as run_ui

        return run_ui(str(opts["pod"]))
    if command in ("status", "ls"):
        from .render import pods_lines, status_lines

        lines = status_lines(str(opts["pod"]), bool(opts.get("as_json"))) if command == "status" else pods_lines(
            bool(opts.get("as_json")))
        if lines:
            print("\n".join(lines))
        return 0
    from podctl.orchestrator import talk

    if command == "send":
        to = opts["to"]
        assert isinstance(to, list)
        wait = opts.get("wait")
        ask = bool(opts.get("ask"))
        result = talk.send(str(opts["pod"]), str(opts["text"]), to, ask=ask, urgent=bool(opts.get("urgent")),
                           wait=wait if isinstance(wait, float) else None)
        lines = [talk.json_line(result)] if opts.get("as_json") else talk.sent_lines(
            result, ask, wait if isinstance(wait, float) else None)
        print("\n".join(lines))
        return NO_REPLY if talk.unanswered(result) else 0

    def emit(line: str) -> None:
        print(line, flush=True)

    last = opts.get("last", 0)
    talk.tail(str(opts["pod"]), emit, lambda line: print(line, file=sys.stderr), follow=bool(opts.get("follow")),
              as_json=bool(opts.get("as_json")), last=last if isinstance(last, int) else 0)
    return 0
