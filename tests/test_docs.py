"""The README's configuration reference is the settings model, rendered."""

from __future__ import annotations

from pathlib import Path

from brownout.reference import settings_reference

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_configuration_reference_matches_the_settings_model() -> None:
    text = README.read_text()
    start = text.index("<!-- settings-reference:start -->\n") + len(
        "<!-- settings-reference:start -->\n"
    )
    end = text.index("<!-- settings-reference:end -->")
    assert text[start:end] == settings_reference(), (
        "README.md's configuration reference is stale: paste the output of "
        "`python -c 'from brownout.reference import settings_reference as r; print(r())'`"
    )


def test_quickstart_has_exactly_the_two_commands() -> None:
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
