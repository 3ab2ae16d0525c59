"""The suite's own rules: helpers live in ``tests/support``, no test module imports another test
module or a conftest, and no test can reach a real model provider."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from tests.support.net import NetworkGuard, OffMachineConnectionError, is_loopback

TESTS = Path(__file__).resolve().parent


def forbidden_imports(source: str) -> list[str]:
    """Imports of a test module or a conftest in ``source`` (a test module's text)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
            if node.level and not node.module:  # from . import conftest / test_x
                modules = ["." + alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            last = module.rsplit(".", 1)[-1]
            if last == "conftest" or last.startswith("test_") or module.startswith("tests.test_"):
                found.append(module)
    return found


def test_the_check_sees_every_way_to_import_a_test_module_or_a_conftest() -> None:
    source = "\n".join(
        [
            "import tests.test_cli",
            "from tests.conftest import portal",
            "from .conftest import site",
            "from tests.adversarial.test_gate_paths import requests_of",
            "from tests.adversarial.conftest import hrt",
            "from . import test_agent",
            "from tests.test_agent import page_of",
            "import conftest",
            "from tests.support.cli import corral",
            "import pytest",
        ]
    )
    assert forbidden_imports(source) == [
        "tests.test_cli",
        "tests.conftest",
        ".conftest",
        "tests.adversarial.test_gate_paths",
        "tests.adversarial.conftest",
        ".test_agent",
        "tests.test_agent",
        "conftest",
    ]


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 20  # the walk found the suite
    offenders = {
        str(path.relative_to(TESTS)): bad
        for path in modules
        if (bad := forbidden_imports(path.read_text()))
    }
    assert offenders == {}, "import helpers from tests.support instead"


def test_helpers_live_in_the_support_package() -> None:
    loose = [p.name for p in TESTS.rglob("*.py") if p.name.startswith("_") and p.parent != TESTS]
    loose += [p.name for p in TESTS.glob("_*.py")]
    assert [n for n in loose if n != "__init__.py"] == []


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        (None, True),
        ("api.openai.com", False),
        ("10.0.0.5", False),
        ("::ffff:8.8.8.8", False),
        ("portal.test", False),
    ],
)
def test_loopback_hosts(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


def refusals(exc: BaseException) -> list[OffMachineConnectionError]:
    """The guard's errors in ``exc``'s chain of causes."""
    chain: list[OffMachineConnectionError] = []
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OffMachineConnectionError):
            chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


async def test_the_guard_refuses_a_real_model_api_over_httpx(network_guard: NetworkGuard) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("https://api.openai.com/v1/models")
    assert refusals(caught.value), caught.value  # the guard's error, not a DNS failure
    assert "tests never leave this machine" in str(caught.value)
    assert network_guard.refused == ["api.openai.com:443"]
    network_guard.refused.clear()  # expected here; any other test would fail at teardown


async def test_the_guard_refuses_the_openai_sdk_with_a_real_base_url(
    network_guard: NetworkGuard,
) -> None:
    import openai

    client = openai.AsyncOpenAI(
        api_key="sk-test-not-a-key", base_url="https://api.openai.com/v1", max_retries=0
    )
    async with client:
        with pytest.raises(openai.APIConnectionError) as caught:
            await client.models.list()
    assert refusals(caught.value), caught.value
    assert network_guard.refused == ["api.openai.com:443"]
    network_guard.refused.clear()


async def test_the_guard_lets_loopback_through(network_guard: NetworkGuard, portal: str) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{portal}/login")
    assert page.status_code == 200
    assert network_guard.refused == []
