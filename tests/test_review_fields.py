"""What a person is shown of a form before approving: secrets as placeholders, password fields
never in clear (a password typed from the task is not a vault secret the redactor knows), and
every name and value redacted."""

from __future__ import annotations

from profiles import Redactor
from runtime.run.ask import shown_fields


def redactor() -> Redactor:
    r = Redactor()
    r.add("s3cret-Value-42", "{{secret:acme.password}}")
    return r


def test_a_vault_secret_shows_as_its_placeholder_in_any_field() -> None:
    shown = shown_fields(
        [("pw", "password", "s3cret-Value-42"), ("note", "text", "pay s3cret-Value-42 now")],
        redactor().text,
    )
    assert shown == [
        {"name": "pw", "kind": "password", "value": "{{secret:acme.password}}"},
        {"name": "note", "kind": "text", "value": "pay {{secret:acme.password}} now"},
    ]


def test_a_password_typed_from_the_task_is_hidden_not_shown() -> None:
    for value in ("typed-by-the-task", "{{secret:other}} and more", "{{secret}}x"):
        [field] = shown_fields([("pw", "password", value)], redactor().text)
        assert field["value"] == "(hidden: password field)", value
    # An empty password field stays empty: nothing to hide.
    assert shown_fields([("pw", "password", "")], redactor().text)[0]["value"] == ""


def test_field_names_are_redacted_too() -> None:
    [field] = shown_fields([("s3cret-Value-42", "hidden", "1")], redactor().text)
    assert field["name"] == "{{secret:acme.password}}"
