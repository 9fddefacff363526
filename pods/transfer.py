"""A validated pod spec handed from the process that applied it to the broker, over the wire.

The broker never re-reads a pod file after it starts: the applier (`podctl up`, the supervisor)
loads and checks the file, and sends the broker exactly the spec it applied, so both always hold
the same desired state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import PodctlError
from .spec import PodSpec


def to_wire(spec: PodSpec) -> dict[str, Any]:
    """The `sync` arguments for `spec`: its data as JSON and the file it came from."""
    return {
        "spec": spec.model_dump(mode="json", by_alias=True, exclude={"source"}),
        "source": str(spec.source) if spec.source else "",
    }


def from_wire(data: dict[str, Any], source: str) -> PodSpec:
    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        raise PodctlError(f"the pod spec sent to the broker is not valid: {exc}") from None
    return spec.model_copy(update={"source": Path(source) if source else None})
