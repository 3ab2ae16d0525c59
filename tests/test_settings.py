"""Settings from the environment: a bad number is a clear error naming the variable, never a
traceback (and never the whole value, which may be a secret pasted into the wrong variable)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from profiles import UserError
from runtime.cli import cli
from runtime.settings import Settings


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CORRAL_LEASE_TIMEOUT", "abc", "CORRAL_LEASE_TIMEOUT='abc': expected a number of seconds"),
        ("CORRAL_APPROVAL_TTL", "15m", "CORRAL_APPROVAL_TTL='15m': expected a number of seconds"),
        ("CORRAL_BUSY_TIMEOUT", "nan", "CORRAL_BUSY_TIMEOUT='nan': expected a number of seconds"),
        ("CORRAL_LEASE_TIMEOUT", "-1", "CORRAL_LEASE_TIMEOUT='-1': expected a number of seconds"),
        ("CORRAL_APPROVAL_TTL", "0", "CORRAL_APPROVAL_TTL: input should be greater than 0"),
    ],
)
def test_bad_numbers_name_the_variable(name: str, value: str, expected: str, tmp_path) -> None:
    with pytest.raises(UserError) as info:
        Settings.from_env({"CORRAL_HOME": str(tmp_path), name: value})
    assert str(info.value).startswith(expected)


def test_a_long_bad_value_is_not_echoed(tmp_path) -> None:
    value = "sk-" + "A" * 40
    with pytest.raises(UserError) as info:
        Settings.from_env({"CORRAL_HOME": str(tmp_path), "CORRAL_APPROVAL_TTL": value})
    assert value not in str(info.value)
    assert "CORRAL_APPROVAL_TTL" in str(info.value)


def test_good_numbers_are_read(tmp_path) -> None:
    s = Settings.from_env(
        {
            "CORRAL_HOME": str(tmp_path),
            "CORRAL_LEASE_TIMEOUT": " 2.5 ",
            "CORRAL_APPROVAL_TTL": "60",
            "CORRAL_BUSY_TIMEOUT": "",
        }
    )
    assert (s.lease_timeout_s, s.approval_ttl_s, s.busy_timeout_s) == (2.5, 60.0, 10.0)


def test_cli_exits_2_with_the_message(tmp_path) -> None:
    env = {"CORRAL_HOME": str(tmp_path), "CORRAL_LEASE_TIMEOUT": "soon"}
    result = CliRunner(env=env).invoke(cli, ["profiles", "list"])
    assert result.exit_code == 2, result.output
    assert "CORRAL_LEASE_TIMEOUT='soon': expected a number of seconds" in result.output
    assert "Traceback" not in result.output
