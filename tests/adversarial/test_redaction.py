"""Redaction without gaps: secrets with every character an encoding treats specially, in every
encoding a page, a trace or a request body gives them; a redactor per run; the last pass over
what is sent to a model provider; API keys kept out of formatted tracebacks.

Every encoding here is built with the standard library (or by hand), never with the Redactor.
"""

from __future__ import annotations

import base64
import html
import json
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import httpx2
import pytest

from profiles import Redactor
from profiles.totp import totp_now
from runtime import Runtime
from runtime.agent.router import Meter, ModelRouter
from runtime.models import (
    Message,
    ModelError,
    ModelsConfig,
    ModelSettings,
    ProviderConfig,
    TextPart,
    ToolCall,
    ToolSpec,
)
from runtime.models.anthropic_messages import AnthropicModel
from runtime.models.openai_chat import OpenAIChatModel
from runtime.models.redacting import redacting_client
from tests.support.hostile import HostileSite, run_steps

SECRETS = [
    "p~a!s'(s)*w%o&r<d>\"x\\y+z",
    "two words & more ~ é€ 😀",
    "ÄÖÜ ß \\u0041 %41 &amp;",
]
PLACEHOLDER = "{{secret:x}}"


def js_encode_uri_component(value: str) -> str:
    """JavaScript's encodeURIComponent: leaves ``A-Z a-z 0-9 - _ . ! ~ * ' ( )``."""
    return quote(value, safe="-_.!~*'()")


def every_char(value: str, fmt: Callable[[str], str]) -> str:
    return "".join(fmt(ch) for ch in value)


def json_all_escaped(value: str) -> str:
    """Every character as \\uXXXX (surrogate pairs above U+FFFF), as some encoders do."""
    units = value.encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda v: v,
    "quote safe=''": lambda v: quote(v, safe=""),
    "quote default": quote,
    "quote lower-case hex": lambda v: quote(v, safe="").lower(),
    "quote ~ encoded": lambda v: quote(v, safe="").replace("~", "%7E"),
    "quote_plus (+ for space)": quote_plus,
    "encodeURIComponent (!'()* kept)": js_encode_uri_component,
    "double percent-encoding": lambda v: quote(quote(v, safe=""), safe=""),
    "double, lower-case": lambda v: quote(quote(v, safe=""), safe="").lower(),
    "every byte percent-encoded": lambda v: "".join(f"%{b:02X}" for b in v.encode()),
    "html.escape": html.escape,
    "html &#39;": lambda v: html.escape(v).replace("&#x27;", "&#39;"),
    "html &amp; twice": lambda v: html.escape(html.escape(v)),
    "numeric decimal every char": lambda v: every_char(v, lambda c: f"&#{ord(c)};"),
    "numeric hex every char": lambda v: every_char(v, lambda c: f"&#x{ord(c):X};"),
    "numeric hex lower, no semicolon": lambda v: every_char(v, lambda c: f"&#x{ord(c):x}"),
    "json ensure_ascii": lambda v: json.dumps(v)[1:-1],
    "json utf-8": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "json every char \\u": json_all_escaped,
    "json \\u upper-case hex": lambda v: json_all_escaped(v).upper().replace("\\U", "\\u"),
    "json inside json": lambda v: json.dumps(json.dumps(v))[1:-1],
    "json inside html attribute": lambda v: html.escape(json.dumps(v)),
    "json inside a url": lambda v: quote(json.dumps({"k": v}), safe=""),
    "python bytes repr": lambda v: repr(v.encode())[2:-1],
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
    "base64 inside longer": lambda v: base64.b64encode(b"user:" + v.encode() + b"!").decode(),
    "urlsafe base64 inside longer": lambda v: base64.urlsafe_b64encode(b"ab" + v.encode()).decode(),
}


def redactor_for(value: str) -> Redactor:
    redactor = Redactor()
    redactor.add(value, PLACEHOLDER)
    return redactor


def still_there(value: str, text: str) -> list[str]:
    """Names of the encodings of ``value`` still present in ``text`` (long enough to mean it)."""
    found = []
    for name, encode in ENCODINGS.items():
        form = encode(value)
        if "base64" in name:
            form = form[4:-4]  # the part fixed whatever surrounds the value
        if form in text:
            found.append(name)
    return found


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("value", SECRETS, ids=["ascii-hostile", "spaces-non-ascii", "escapes"])
def test_every_encoding_is_redacted(value: str, encoding: str) -> None:
    redactor = redactor_for(value)
    form = ENCODINGS[encoding](value)
    text = f"<p>before {form} after</p>"
    out = redactor.text(text)
    assert PLACEHOLDER in out, f"{encoding}: {form!r} not found"
    assert still_there(value, out) == []
    assert out.startswith("<p>before ") and out.endswith(" after</p>")
    assert redactor.found_in_text(text)
    data = redactor.data(text.encode())
    assert PLACEHOLDER.encode() in data
    assert still_there(value, data.decode("utf-8", "replace")) == []


def test_redaction_leaves_other_text_alone() -> None:
    redactor = redactor_for(SECRETS[0])
    text = "p~a!s'(s)*w%o&r<d> almost, but not the value; %70 &#112; \\u0070"
    assert redactor.text(text) == text
    assert not redactor.found_in_text(text)


def test_json_stays_valid_after_redaction() -> None:
    value = SECRETS[0]
    body = json.dumps({"a": value, "b": [value, {"c": f"x {value} y"}]})
    out = redactor_for(value).text(body)
    assert json.loads(out) == {"a": PLACEHOLDER, "b": [PLACEHOLDER, {"c": f"x {PLACEHOLDER} y"}]}


# --- a redactor per run -------------------------------------------------------------------------


async def test_a_totp_code_of_one_run_does_not_blank_another_runs_results(
    hrt: Runtime, site: HostileSite
) -> None:
    seed = "JBSWY3DPEHPK3PXPJBSWY3DP"
    await hrt.vault.set("otp", seed, [site.url], totp=True)
    start = time.time()
    code_page = site.page(
        "/code",
        "<!doctype html><title>Code</title><input autocomplete=one-time-code aria-label=Code>"
        "<p id=out></p><script>document.querySelector('input').addEventListener('input',"
        " (e) => { document.getElementById('out').textContent = e.target.value; });</script>",
    )
    typed = await run_steps(
        hrt,
        site,
        [
            {"fill": {"label": "Code", "value": "{{secret:otp}}"}},
            {"extract": {"as": "shown", "text": {"css": "#out"}}},
        ],
        start_url=code_page,
        secrets=["otp"],
    )
    assert typed.status == "succeeded", typed.error
    assert typed.output == {"shown": "{{secret:otp}}"}  # the run's own code is redacted
    # Another run of the same runtime reads a page of numbers that include that code.
    codes = " ".join(totp_now(seed, t) for t in range(int(start) - 60, int(time.time()) + 61, 30))
    numbers = site.page("/numbers", f"<!doctype html><title>Numbers</title><p id=n>{codes}</p>")
    other = await run_steps(
        hrt,
        site,
        [{"extract": {"as": "numbers", "text": {"css": "#n"}}}],
        start_url=numbers,
        profile="bystander",
    )
    assert other.status == "succeeded", other.error
    assert other.output == {"numbers": codes}


# --- what is sent to a model provider ---------------------------------------------------------

KEY = "sk-test-FAKE-0123456789abcdefghij"


def chat_completion() -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


def claude_message() -> dict[str, Any]:
    return {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }


def leaky_conversation(value: str) -> tuple[list[Message], list[ToolSpec]]:
    """The value as page text, percent- and HTML-encoded, and in an earlier call's arguments;
    even in a tool's description (nothing corral sends may carry it)."""
    messages = [
        Message.text("system", "You operate a web portal."),
        Message(
            role="user",
            content=[
                TextPart(text=f"Page: {value} / {quote(value, safe='')} / {html.escape(value)}")
            ],
        ),
        Message(
            role="assistant",
            tool_calls=[
                ToolCall(id="c0", name="fill", arguments=json.dumps({"ref": "e1", "value": value}))
            ],
        ),
        Message(role="tool", tool_call_id="c0", content=[TextPart(text="filled")]),
    ]
    tools = [
        ToolSpec(
            name="fill",
            description=f"Fill a field (example: {value})",
            parameters={"type": "object", "properties": {"value": {"type": "string"}}},
        )
    ]
    return messages, tools


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_every_request_body_to_a_provider_is_redacted(provider: str) -> None:
    value = SECRETS[1]
    redactor = redactor_for(value)
    seen: list[bytes] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content)
        return httpx2.Response(
            200, json=chat_completion() if provider == "openai" else claude_message()
        )

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as inner:
        client = redacting_client(redactor.text, redactor.data, inner)
        model: OpenAIChatModel | AnthropicModel
        if provider == "openai":
            model = OpenAIChatModel(
                "gpt-test", api_key=KEY, base_url="https://openai.test/v1", http_client=client
            )
        else:
            model = AnthropicModel(
                "claude-test", api_key=KEY, base_url="http://anthropic.test", http_client=client
            )
        messages, tools = leaky_conversation(value)
        answer_ = await model.request(messages, tools, ModelSettings())
        await client.aclose()
    assert answer_.text == "ok"
    [body] = seen
    text = body.decode()
    assert still_there(value, text) == []
    assert text.count(PLACEHOLDER) >= 4  # page text (three forms), the call and the tool
    json.loads(body)  # still valid JSON


async def test_the_router_redacts_with_the_runs_redactor(rt: Runtime) -> None:
    """The run's router builds the SDK clients over a redacting transport."""
    value = SECRETS[0]
    redactor = redactor_for(value)
    seen: list[bytes] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content)
        return httpx2.Response(200, json=chat_completion())

    config = ModelsConfig(
        providers={
            "openai": ProviderConfig(
                type="openai", api_key_env="OPENAI_API_KEY", base_url="https://openai.test/v1"
            )
        },
        roles={"planner": ["openai:gpt-5.4-mini"]},
    )
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as inner:
        router = ModelRouter(
            config,
            rt.store,
            "run-r",
            Meter(None, None),
            {"OPENAI_API_KEY": KEY},
            http_client=inner,
            redactor=redactor,
        )
        messages, tools = leaky_conversation(value)
        await router.ask("planner", messages, tools, ModelSettings())
        await router.aclose()
    [body] = seen
    assert still_there(value, body.decode()) == []
    assert PLACEHOLDER in body.decode()


# --- API keys in tracebacks -------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [401, 400, 500])
async def test_api_key_never_in_a_formatted_traceback(provider: str, status: int) -> None:
    def echo_key(request: httpx2.Request) -> httpx2.Response:
        # A careless gateway quotes the key and the request's headers back.
        auth = request.headers.get("authorization") or request.headers.get("x-api-key")
        message = f"Incorrect API key provided: {KEY} (header {auth})"
        return httpx2.Response(status, json={"error": {"type": "error", "message": message}})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(echo_key)) as http:
        model: OpenAIChatModel | AnthropicModel
        if provider == "openai":
            model = OpenAIChatModel(
                "gpt-test",
                api_key=KEY,
                base_url="https://openai.test/v1",
                http_client=http,
                max_retries=0,
            )
        else:
            model = AnthropicModel(
                "claude-test",
                api_key=KEY,
                base_url="http://anthropic.test",
                http_client=http,
                max_retries=0,
            )
        with pytest.raises(ModelError) as caught:
            await model.request([Message.text("user", "hi")], [], ModelSettings())
    formatted = "".join(traceback.format_exception(caught.value))
    assert str(status) in formatted
    assert KEY not in formatted and KEY[-12:] not in formatted
    # Neither through the chain a caller may walk by hand.
    seen: list[BaseException] = []
    exc: BaseException | None = caught.value
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    assert all(KEY not in str(e) for e in seen)


def unbounded_repeats(pattern: str) -> int:
    """How many repetitions in ``pattern`` have no upper bound."""
    import re._constants as constants
    import re._parser as parser

    def walk(items: Any) -> int:
        count = 0
        for op, arg in items:
            if op in (constants.MAX_REPEAT, constants.MIN_REPEAT, constants.POSSESSIVE_REPEAT):
                count += int(arg[1] == constants.MAXREPEAT) + walk(arg[2])
            elif op == constants.SUBPATTERN:
                count += walk(arg[3])
            elif op == constants.BRANCH:
                count += sum(walk(branch) for branch in arg[1])
            elif op in (constants.ASSERT, constants.ASSERT_NOT):
                count += walk(arg[1])
        return count

    return walk(parser.parse(pattern))


@pytest.mark.parametrize("value", [*SECRETS, "\\\\lead", "a b"])
def test_redaction_patterns_are_bounded(value: str) -> None:
    """A page cannot make redaction slower than linear (a run of 30 kB of backslashes took a
    minute while the escapes' backslashes were an unbounded repetition)."""
    from profiles.redact import secret_pattern

    assert unbounded_repeats(secret_pattern(value)) == 0
    assert unbounded_repeats("(?:a|\\\\)+x") == 1  # the check sees one
