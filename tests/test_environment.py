"""The test run never touches the user's home: HOME and the XDG folders are throwaway folders for
every test (and for the session's own fixtures), so a CLI or a tool a test runs writes only there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import HOME_VARS


def test_every_test_runs_with_a_throwaway_home_of_its_own(home: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    user_home = os.environ.get("PODCTL_TEST_USER_HOME")
    assert user_home is not None, "the user's home is known (read only) ..."
    assert Path.home() == home and home != Path(user_home).expanduser(), "... and is not HOME"
    assert home.is_relative_to(tmp_path_factory.getbasetemp())
    for name, sub in HOME_VARS.items():
        assert os.environ[name] == str(home / sub), name
