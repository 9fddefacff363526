"""Pod file validation: every error at its exact FILE:LINE:COL, through `podctl validate`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from podctl.pods import catalog
from podctl.pods.load import PodFileError, load_pod

from ..helpers import podctl, write_pod

OK_AGENTS = "agents:\n  writer: {cli: script}\n  reviewer: {cli: script}\n"

BAD = [
    ("bad-yaml", "name: p\nagents:\n  writer: {cli: script\n", "4:1", "bad YAML"),
    ("bad-yaml-indent", "name: p\nagents:\n  writer:\n    cli: script\n   role: x\n", "5:4", "bad YAML"),
    ("not-a-mapping", "- just\n- a list\n", "1:1", "must be a mapping"),
    ("unknown-top-key", "name: p\nagnets: {}\n" + OK_AGENTS, "2:1", "unknown key 'agnets'; did you mean 'agents'?"),
    ("unknown-agent-key", "name: p\nagents:\n  writer:\n    cli: script\n    rol: x\n", "5:5", "unknown key 'rol' in agents.writer; did you mean 'role'?"),
    ("unknown-cli", "name: p\nagents:\n  writer:\n    cli: claud\n", "4:10", "'claud' is not one of claude, cline, codex, copilot, gemini, kilo, opencode, qwen, script; did you mean 'claude'?"),
    ("bad-agent-name", "name: p\nagents:\n  Writer: {cli: script}\n", "3:3", "'Writer' is not a valid name"),
    ("bad-pod-name", "name: My Pod\n" + OK_AGENTS, "1:7", "'My Pod' is not a valid name"),
    ("duplicate-agent", "name: p\nagents:\n  writer: {cli: script}\n  writer: {cli: codex}\n", "4:3", "duplicate key 'writer' (first written at line 3)"),
    ("wrong-type-args", "name: p\nagents:\n  writer:\n    cli: script\n    args: --fast\n", "5:11", "agents.writer.args: Input should be a valid list"),
    ("wrong-type-limits", "name: p\nlimits: {message_bytes: lots}\n" + OK_AGENTS, "2:25", "limits.message_bytes: Input should be a valid integer"),
    ("no-agents", "name: p\nagents: {}\n", "2:9", "a pod needs at least one agent"),
    ("missing-agents", "name: p\n", "1:1", "missing required key 'agents'"),
    ("route-unknown-agent", "name: p\n" + OK_AGENTS + "routes:\n  - name: review\n    to: [reviewer, tester]\n",
     "7:20", "route review names unknown agent 'tester'"),
    ("route-from-unknown", "name: p\n" + OK_AGENTS + "routes:\n  - name: review\n    from: [writr]\n    to: [reviewer]\n",
     "7:12", "route review names unknown agent 'writr'; did you mean 'writer'?"),
    ("rule-unknown-route", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reveiw\n",
     "9:10", "rule auto asks 'reveiw', which is neither a route nor an agent; did you mean 'reviewer'?"),
    ("rule-unknown-agent", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: ghost\n    ask: reviewer\n",
     "8:12", "rule auto names unknown agent 'ghost'"),
    ("rule-asks-itself", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: writer\n",
     "8:12", "a rule never asks the agent it acts for"),
    ("rule-bad-trigger", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: commit\n    ask: reviewer\n",
     "7:9", "'commit' is not one of turn_end, file_change, pattern"),
    ("rule-bad-duration", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    cooldown: soon\n",
     "10:15", "'soon' is not a duration"),
    ("rule-bad-regex", "name: p\n" + OK_AGENTS + "rules:\n  - name: lim\n    on: pattern\n    agent: writer\n    when: {regex: '(unclosed'}\n    handoff: reviewer\n",
     "9:19", "bad regex"),
    ("rule-when-typo", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    when: {chnged: ['src/**']}\n",
     "10:12", "unknown key 'chnged' in rules[0].when; did you mean 'changed'? (allowed: changed, regex)"),
    ("rule-when-paths-is-not-a-key", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    when: {paths: ['src/**']}\n",
     "10:12", "unknown key 'paths' in rules[0].when (allowed: changed, regex)"),
    ("rule-when-changed-string", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    when: {changed: 'src/**'}\n",
     "10:21", "`changed` is a list of globs: write changed: ['src/**']"),
    ("rule-when-bad-glob", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    when: {changed: [docs/**, 'src/[ab']}\n",
     "10:31", "'src/[ab' opens a [set] it never closes"),
    ("rule-when-regex-on-turn-end", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    when: {regex: 'error'}\n",
     "10:19", "`regex` is for pattern rules (on: pattern); turn_end rules filter with `changed` globs"),
    ("rule-when-changed-on-pattern", "name: p\n" + OK_AGENTS + "rules:\n  - name: lim\n    on: pattern\n"
     "    agent: writer\n    when: {regex: limit, changed: ['*']}\n    handoff: reviewer\n",
     "9:35", "a pattern rule fires on `regex`"),
    ("unknown-template", "name: p\nextends: revew-pod\n", "2:10", "no built-in template or file 'revew-pod'; did you mean 'review-pod'?"),
    ("unknown-var", "name: p\nagents:\n  writer: {cli: '${writer_cli}'}\n", "3:17", "unknown variable ${writer_cli}"),
    ("script-on-real-cli", "name: p\nagents:\n  writer:\n    cli: codex\n    script: {steps: []}\n", "5:13", "`script` is only for cli: script"),
    ("route-named-like-agent", "name: p\n" + OK_AGENTS + "routes:\n  - name: writer\n    to: [reviewer]\n", "6:11", "has the name of an agent"),
    ("tab-indent", "name: p\nagents:\n\twriter: {cli: script}\n", "3:1", "a tab character: YAML indents with spaces only"),
    ("tab-after-spaces", "name: p\nagents:\n  writer:\n  \tcli: script\n", "4:3", "a tab character: YAML indents with spaces only"),
    ("unterminated-quote", 'name: p\nagents:\n  writer:\n    cli: script\n    role: "unfinished\n  reviewer: {cli: script}\n',
     "5:11", "unterminated quote: close the string started here"),
    ("parser-message-has-context", "name: p\nagents:\n  writer:\n    cli: script\n   role: x\n", "5:4",
     "bad YAML: expected <block end>, but found '<block mapping start>' (while parsing a block mapping started at line 3,"
     " column 3); this line is indented differently"),
    ("two-documents", "name: p\n---\nname: q\n", "2:1",
     "bad YAML: expected a single document in the stream, but found another document; a pod file is one YAML document"),
    ("env-int", "name: p\nagents:\n  writer:\n    cli: script\n    env: {N: 1}\n", "5:14",
     'agents.writer.env.N: env values are strings: quote it, e.g. N: "1"'),
    ("env-bool", "name: p\nagents:\n  writer: {cli: script, env: {DEBUG: true}}\n", "3:38", 'quote it, e.g. DEBUG: "true"'),
    ("env-float", "name: p\nagents:\n  writer: {cli: script, env: {R: 0.5}}\n", "3:34", 'quote it, e.g. R: "0.5"'),
    ("env-null", "name: p\nagents:\n  writer: {cli: script, env: {E: null}}\n", "3:34", 'quote it, e.g. E: ""'),
    ("script-file-missing", "name: p\nagents:\n  writer: {cli: script, script: steps.yaml}\n", "3:33",
     "agent writer: script file 'steps.yaml' not found"),
    ("script-not-a-file", "name: p\nagents:\n  writer: {cli: script, script: ..}\n", "3:33", "is not a regular file"),
    ("inline-script-bad-step", "name: p\nagents:\n  writer:\n    cli: script\n    script:\n      steps:\n"
     "        - say: hi\n        - wrte: {path: a, text: b}\n", "8:11",
     "agent writer script: step 2: unknown step 'wrte'; use one of write, tell, ask, sleep, say"),
    ("inline-script-bad-key", "name: p\nagents:\n  writer: {cli: script, script: {stesp: []}}\n", "3:33",
     "unknown script key(s): stesp"),
    ("rule-unknown-placeholder", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n"
     "    ask: reviewer\n    text: '{agent} changed {changed}'\n", "10:11",
     "rule auto text: unknown placeholder {changed}; did you mean 'changed_files'?"),
    ("rule-lone-brace", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n"
     "    ask: reviewer\n    text: 'use {agent} and } alone'\n", "10:11", "write a literal brace doubled, {{ or }}"),
    ("rule-empty-placeholder", "name: p\n" + OK_AGENTS + "rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n"
     "    ask: reviewer\n    text: 'see {}'\n", "10:11", "{} has no placeholder name"),
    ("pod-name-trailing-newline", 'name: "evil\\n"\n' + OK_AGENTS, "1:7", "'evil\\n' is not a valid name"),
    ("agent-name-trailing-newline", 'name: p\nagents:\n  "evil\\n": {cli: script}\n', "3:3", "'evil\\n' is not a valid name"),
    ("recursive-alias", "name: p\nagents: &a\n  writer: {cli: script}\n  more: *a\n", "4:9",
     "alias *a is used inside its own anchor &a (a recursive alias"),
    ("deep-nesting", "name: p\nagents: " + "[" * 100 + "]" * 100 + "\n", "2:72", "nested deeper than 64 levels"),
    ("alias-nests-too-deep", "name: p\ndeep: &d " + "[" * 60 + "]" * 60 + "\nagents: [[[[[[*d]]]]]]\n", "3:15",
     "alias *d nests deeper than 64 levels once expanded"),
    ("huge-number", "name: p\nlimits: {message_bytes: " + "9" * 5000 + "}\n" + OK_AGENTS, "2:25",
     "bad YAML: cannot read this value: Exceeds the limit (4300 digits)"),
    ("permissions-bad-mode", "name: p\nagents:\n  writer: {cli: script, permissions: some}\n", "3:38",
     "'some' is not one of ask, edits, full"),
    ("permissions-and-a-mode-flag", "name: p\npermissions: ask\nagents:\n  writer:\n    cli: claude\n"
     "    args: [--dangerously-skip-permissions]\n", "6:12",
     "agent writer: --dangerously-skip-permissions sets claude's permission mode, and so does `permissions`: keep one"),
    ("approvals-unknown-approver", "name: p\n" + OK_AGENTS + "approvals: [{agents: [writer], to: reveiwer}]\n", "5:36",
     "approvals[0] goes to 'reveiwer', which is not user, an agent or a route; did you mean 'reviewer'?"),
    ("approvals-unknown-agent", "name: p\n" + OK_AGENTS + "approvals: [{agents: [writr], to: reviewer}]\n", "5:23",
     "approvals[0] names unknown agent 'writr'; did you mean 'writer'?"),
    ("approvals-self", "name: p\n" + OK_AGENTS + "approvals: [{agents: [writer], to: writer}]\n", "5:36",
     "approvals[0]: writer would approve its own requests"),
    ("approvals-bad-then", "name: p\n" + OK_AGENTS + "approvals: [{to: reviewer, then: ignore}]\n", "5:34",
     "'ignore' is not one of person, deny"),
    ("approvals-bad-timeout", "name: p\n" + OK_AGENTS + "approvals: [{to: reviewer, timeout: later}]\n", "5:37",
     "'later' is not a duration"),
    ("notify-neither", "name: p\n" + OK_AGENTS + "notify: [{on: blocked}]\n", "5:10",
     "notify[0] needs exactly one of `run` (a command) or `bell: true`"),
    ("notify-bad-placeholder", "name: p\n" + OK_AGENTS + "notify: [{on: blocked, run: [notify-send, '{agnet}']}]\n", "5:43",
     "notify[0] run: unknown placeholder {agnet}; did you mean 'agent'?"),
    ("notify-bad-event", "name: p\n" + OK_AGENTS + "notify: [{on: [blocked, sleepy], bell: true}]\n", "5:25",
     "notify[0].on[1]: 'sleepy' is not one of blocked, failed, over_budget"),
]


@pytest.mark.parametrize(("case", "text", "where", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_pod_files_report_exact_positions(tmp_path: Path, case: str, text: str, where: str, message: str) -> None:
    path = write_pod(tmp_path / case, text)
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    first = err.value.problems[0]
    assert f"{first.file}:{first.line}:{first.col}" == f"{path}:{where}", str(err.value)
    assert message in first.message, str(err.value)


def test_validate_cli_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    good = write_pod(tmp_path / "good", "name: good\n" + OK_AGENTS)
    bad = write_pod(tmp_path / "bad", "name: bad\nagents:\n  writer: {cli: claud, rol: x}\n")
    out = podctl("validate", str(good), str(bad), check=False)
    assert out.returncode == 1
    assert f"{good}: ok (pod good, 2 agents)" in out.stdout
    assert f"{bad}:3:17: agents.writer.cli: 'claud' is not one of" in out.stdout
    assert f"{bad}:3:24: unknown key 'rol'" in out.stdout


def test_cyclic_extends_is_an_error(tmp_path: Path) -> None:
    write_pod(tmp_path, "extends: b.yaml\n" + OK_AGENTS, name="a.yaml")
    write_pod(tmp_path, "extends: a.yaml\n", name="b.yaml")
    with pytest.raises(PodFileError) as err:
        load_pod(tmp_path / "a.yaml")
    assert "extends makes a cycle: a.yaml -> b.yaml -> a.yaml" in str(err.value)
    assert str(err.value).startswith(f"{tmp_path / 'b.yaml'}:1:10:")


def test_extends_merges_mappings_replaces_lists_and_fills_vars(tmp_path: Path) -> None:
    path = write_pod(
        tmp_path / "team",
        "name: team\nextends: review-pod\nvars: {reviewer_b_cli: script}\n"
        "agents:\n  writer: {cli: script, model: fast}\n  extra: {cli: script}\n"
        "routes:\n  - name: review\n    from: [writer]\n    to: [codex-reviewer]\n",
    )
    spec = load_pod(path)
    assert list(spec.agents) == ["writer", "codex-reviewer", "gemini-reviewer", "extra"]
    assert spec.agents["writer"].cli == "script" and spec.agents["writer"].model == "fast"
    assert "You implement the task" in spec.agents["writer"].role, "the template's role is kept"
    assert spec.agents["gemini-reviewer"].cli == "script", "vars fill the template"
    assert [r.to for r in spec.routes] == [["codex-reviewer"]], "lists replace"
    assert spec.rules[0].name == "auto-review"


def test_an_error_inside_a_template_chain_names_the_right_file(tmp_path: Path) -> None:
    write_pod(tmp_path, "agents:\n  base: {cli: script, colour: red}\n", name="base.yaml")
    top = write_pod(tmp_path, "name: top\nextends: base.yaml\n", name="top.yaml")
    with pytest.raises(PodFileError) as err:
        load_pod(top)
    assert str(err.value).startswith(f"{tmp_path / 'base.yaml'}:2:23: unknown key 'colour'")


def test_no_object_construction_from_yaml(tmp_path: Path) -> None:
    path = write_pod(tmp_path / "evil", "name: evil\nagents: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert ":2:9: bad YAML" in str(err.value)


@pytest.mark.parametrize("template", catalog.names())
def test_each_template_and_init_output_validates(tmp_path: Path, template: str) -> None:
    path = tmp_path / template / "pod.yaml"
    path.parent.mkdir()
    podctl("init", "--template", template, str(path))
    assert "ok (pod" in podctl("validate", str(path)).stdout
    plain = tmp_path / "plain" / "pod.yaml"
    plain.parent.mkdir(exist_ok=True)
    podctl("init", str(plain), "--force")
    assert "ok (pod plain, 2 agents)" in podctl("validate", str(plain)).stdout


def test_schema_is_json_schema_with_the_pod_fields() -> None:
    import json

    schema = json.loads(podctl("schema").stdout)
    assert set(schema["properties"]) >= {"name", "agents", "routes", "rules", "limits", "extends", "vars"}
    assert "source" not in schema["properties"]
    assert "from" in schema["$defs"]["RouteSpec"]["properties"]


def _where(err: PodFileError) -> list[tuple[str, str]]:
    return [(f"{p.line}:{p.col}", p.message) for p in err.problems]


def test_every_error_is_reported_in_one_run_sorted_by_position(tmp_path: Path) -> None:
    path = write_pod(
        tmp_path / "many",
        "name: many\n"
        "limits: {message_bytes: -1}\n"
        "agents:\n  Writer: {cli: script}\n  Reader: {cli: script}\n  reviewer: {cli: script}\n  reviewer: {cli: script}\n"
        "routes:\n  - name: review\n    to: [reviewer, ghost]\n    timeout: soon\n"
        "rules:\n  - name: auto\n    on: turn_end\n    agent: writr\n    ask: reveiw\n    cooldown: later\n"
        "    max_rounds: 0\n    text: '{agent} {changd}'\n",
    )
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    found = _where(err.value)
    assert [w for w, _ in found] == sorted((w for w, _ in found), key=lambda w: tuple(map(int, w.split(":"))))
    expected = [
        ("2:25", "limits.message_bytes: Input should be greater than 0"),
        ("4:3", "agents: 'Writer' is not a valid name"),
        ("5:3", "agents: 'Reader' is not a valid name"),
        ("7:3", "duplicate key 'reviewer' (first written at line 6)"),
        ("10:20", "route review names unknown agent 'ghost'"),
        ("11:14", "'soon' is not a duration"),
        ("15:12", "rule auto names unknown agent 'writr'; did you mean 'Writer'?"),
        ("16:10", "rule auto asks 'reveiw', which is neither a route nor an agent; did you mean 'review'?"),
        ("17:15", "'later' is not a duration"),
        ("18:17", "max_rounds must be at least 1"),
        ("19:11", "rule auto text: unknown placeholder {changd}; did you mean 'changed_files'?"),
    ]
    assert len(found) == len(expected), str(err.value)
    for (where, message), (want_where, want) in zip(found, expected, strict=True):
        assert where == want_where and want in message, str(err.value)


def test_cross_checks_run_when_agents_are_invalid_but_named(tmp_path: Path) -> None:
    path = write_pod(
        tmp_path / "p",
        "name: p\nagents:\n  writer: {cli: claud}\n  reviewer: {cli: script}\n"
        "routes:\n  - name: review\n    to: [reviewer, writer, tester]\n",
    )
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert [w for w, _ in _where(err.value)] == ["3:17", "7:28"], str(err.value)
    assert "route review names unknown agent 'tester'" in str(err.value)


def test_script_path_resolves_from_the_pod_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pod"
    write_pod(folder / "scripts", "steps:\n  - say: hi\n", name="writer.yaml")
    path = write_pod(folder, "name: p\nagents:\n  writer: {cli: script, script: scripts/writer.yaml}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "ok (pod p, 1 agent)" in podctl("validate", str(path), cwd=elsewhere).stdout
    (folder / "scripts" / "writer.yaml").unlink()
    out = podctl("validate", str(path), cwd=elsewhere, check=False)
    assert out.returncode == 1
    assert f"{path}:3:33: agent writer: script file 'scripts/writer.yaml' not found (looked for {folder / 'scripts' / 'writer.yaml'}" in out.stdout


def test_inline_script_reports_every_bad_step(tmp_path: Path) -> None:
    path = write_pod(
        tmp_path / "p",
        "name: p\nagents:\n  writer:\n    cli: script\n    script:\n      replies: ok\n      steps:\n"
        "        - sleep: soon\n        - say: fine\n        - tell: {to: x}\n",
    )
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert _where(err.value) == [
        ("8:11", "agent writer script: step 1: sleep takes a number of seconds"),
        ("10:11", "agent writer script: step 3: tell needs text"),
    ]


def test_rule_text_accepts_known_placeholders_workdir_and_doubled_braces(tmp_path: Path) -> None:
    text = "{agent} {pod} {diff} {changed_files} {last_message} {reason} {workdir} {{literal}} {agent!r:>10}"
    path = write_pod(
        tmp_path / "p",
        "name: p\n" + OK_AGENTS + f"rules:\n  - name: auto\n    on: turn_end\n    agent: writer\n    ask: reviewer\n    text: '{text}'\n",
    )
    assert load_pod(path).rules[0].text == text


def test_duplicate_keys_do_not_hide_other_errors(tmp_path: Path) -> None:
    path = write_pod(
        tmp_path / "p", "name: p\nname: q\nagents:\n  writer: {cli: script}\nroutes:\n  - name: r\n    to: [ghost]\n"
    )
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert [w for w, _ in _where(err.value)] == ["2:1", "7:10"], str(err.value)


def _billion_laughs() -> str:
    lines = ["name: laughs", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join([*lines, "agents: {writer: {cli: script}}", ""])


def test_hostile_yaml_is_refused_with_a_position_not_a_traceback(tmp_path: Path) -> None:
    bomb = write_pod(tmp_path / "bomb", _billion_laughs())
    recursive = write_pod(tmp_path / "recursive", "name: r\nagents: &x\n  w: {cli: script}\n  more: [*x]\n")
    deep = write_pod(tmp_path / "deep", "name: d\nagents: " + "[" * 5000 + "]" * 5000 + "\n")
    huge = write_pod(tmp_path / "huge", "name: h\n" + "# padding\n" * 110_000 + OK_AGENTS)
    out = podctl("validate", str(bomb), str(recursive), str(deep), str(huge), check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr
    assert f"{bomb}:7:10: aliases expand to more than 100000 values" in out.stdout
    assert f"{recursive}:4:10: alias *x is used inside its own anchor &x" in out.stdout
    assert f"{deep}:2:72: nested deeper than 64 levels" in out.stdout
    assert f"{huge}:1:1: pod file too large: {huge.stat().st_size} bytes, over the 1 MiB limit" in out.stdout


def test_a_text_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    from podctl.pods.load import load_pod_text

    with pytest.raises(PodFileError) as err:
        load_pod_text("name: p\n" + OK_AGENTS + "#" * (1 << 20), tmp_path / "pod.yaml")
    assert "pod file too large" in str(err.value)


def test_a_file_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_bytes(b"name: p\nagents:\n  writer: {cli: script, role: caf\xe9}\n")
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert str(err.value) == f"{path}:3:34: the pod file is not UTF-8 text: save it as UTF-8"


def test_pod_name_too_long_for_the_broker_socket(tmp_path: Path) -> None:
    name = "a-rather-long-pod-name-for-a-socket"
    path = write_pod(tmp_path / "p", f"name: {name}\n" + OK_AGENTS)
    root = Path("/tmp") / ("h" * 60)
    with pytest.raises(PodFileError) as err:
        load_pod(path, state_root=root)
    socket = root / name / "broker.sock"
    room = 107 - (len(str(socket)) - len(name))
    assert str(err.value) == (
        f"{path}:1:7: pod name {name!r} ({len(name)} characters) makes the broker socket path {socket}"
        f" {len(str(socket))} bytes long, over the 107-byte limit of Unix sockets:"
        f" use a pod name of at most {room} characters, or a shorter PODCTL_HOME"
    )
    assert room == 29
    with pytest.raises(PodFileError) as err:
        load_pod(path, state_root=Path("/" + "h" * 100))
    assert str(err.value).endswith("over the 107-byte limit of Unix sockets: set a shorter PODCTL_HOME")
    assert load_pod(path, state_root=Path("/tmp/ph")).name == name
    out = podctl("validate", str(path), check=False, env={**os.environ, "PODCTL_HOME": str(root)})
    assert out.returncode == 1 and f"{path}:1:7: pod name {name!r}" in out.stdout


def test_state_root_rule_matches_the_brokers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from podctl.broker import paths
    from podctl.pods import state

    for home, xdg in [(str(tmp_path / "h"), str(tmp_path / "x")), ("", str(tmp_path / "x")), ("", ""), ("~/ph", "")]:
        monkeypatch.setenv("PODCTL_HOME", home)
        monkeypatch.setenv("XDG_STATE_HOME", xdg)
        assert state.state_root() == paths.state_root()


def test_every_bad_agent_name_is_reported(tmp_path: Path) -> None:
    path = write_pod(tmp_path / "p", "name: p\nagents:\n  Writer: {cli: script}\n  user: {cli: script}\n  ok: {cli: script}\n")
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    assert [f"{p.line}:{p.col}" for p in err.value.problems] == ["3:3", "4:3"], str(err.value)
    assert "'user' is reserved; choose another agent name" in err.value.problems[1].message


def test_podctl_add_refuses_a_name_with_a_trailing_newline(tmp_path: Path) -> None:
    from podctl.pods.edit import EditError, add_agent

    path = write_pod(tmp_path / "p", "name: p\n" + OK_AGENTS)
    with pytest.raises(EditError):
        add_agent(path.read_text(), path, "evil\n", "script")


def test_more_values_than_the_node_budget_are_refused(tmp_path: Path) -> None:
    from podctl.pods.load import load_pod_text

    text = "name: p\nagents:\n  writer:\n    cli: script\n    args: [" + "x, " * 100_001 + "]\n"
    with pytest.raises(PodFileError) as err:
        load_pod_text(text, tmp_path / "pod.yaml")
    first_over = 100_001 - 11  # the 11 values before the list: the mappings, name, p, agents, writer, cli, ...
    col = len("    args: [") + 1 + 3 * (first_over - 1)
    assert str(err.value) == f"{tmp_path / 'pod.yaml'}:5:{col}: more than 100000 values: a pod file needs far fewer"


def test_validate_notes_each_clis_own_default_and_a_mode_it_can_only_approximate(tmp_path: Path) -> None:
    """Without `permissions` each CLI keeps its own default, and validate says which; a mode a CLI
    cannot match exactly is narrowed (it asks more, never less) and validate says so."""
    path = write_pod(tmp_path / "p", "name: p\nagents:\n  a: {cli: codex, permissions: edits}\n  b: {cli: claude}\n"
                                     "  c: {cli: gemini}\n  guard: {cli: script}\napprovals: [{agents: [c], to: guard}]\n")
    out = podctl("validate", str(path)).stdout
    assert "note: a (codex): permissions edits: as ask: Codex cannot allow edits without also running commands unasked" in out
    assert "note: b (claude): no `permissions`, so its own default mode: edits and commands ask" in out
    assert "note: c (gemini): approvals to guard cannot answer its requests" in out
