"""Built-in pod templates (`extends: review-pod`): plain YAML files shipped in pods/templates/."""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def names() -> list[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def path_of(name: str) -> Path | None:
    path = TEMPLATES_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def find(ref: str, base_dir: Path) -> Path | None:
    """A template name, or a path (relative to the extending file) to another pod file."""
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        path = (base_dir / ref).resolve()
        return path if path.is_file() else None
    return path_of(ref)


def description(name: str) -> str:
    """The template's first comment line."""
    path = path_of(name)
    if path is None:
        return ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
