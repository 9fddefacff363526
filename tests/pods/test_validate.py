"""Pod file validation: every error at its exact FILE:LINE:COL, through `podctl validate`."""

from __future__ import annotations

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
    ("unknown-cli", "name: p\nagents:\n  writer:\n    cli: claud\n", "4:10", "'claud' is not one of claude, codex, gemini, script; did you mean 'claude'?"),
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
    ("unknown-template", "name: p\nextends: revew-pod\n", "2:10", "no built-in template or file 'revew-pod'; did you mean 'review-pod'?"),
    ("unknown-var", "name: p\nagents:\n  writer: {cli: '${writer_cli}'}\n", "3:17", "unknown variable ${writer_cli}"),
    ("script-on-real-cli", "name: p\nagents:\n  writer:\n    cli: codex\n    script: {steps: []}\n", "5:13", "`script` is only for cli: script"),
    ("route-named-like-agent", "name: p\n" + OK_AGENTS + "routes:\n  - name: writer\n    to: [reviewer]\n", "6:11", "has the name of an agent"),
    ("pod-name-trailing-newline", 'name: "evil\\n"\n' + OK_AGENTS, "1:7", "'evil\\n' is not a valid name"),
    ("agent-name-trailing-newline", 'name: p\nagents:\n  "evil\\n": {cli: script}\n', "3:3", "'evil\\n' is not a valid name"),
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
        add_agent(path, "evil\n", "script")
