"""The README's settings table is the settings model, and its quick start is two commands."""

from pathlib import Path

from app.settings import settings_table

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_settings_table_matches_the_model() -> None:
    start, end = "<!-- settings-table:start -->\n", "\n<!-- settings-table:end -->"
    table = README.split(start)[1].split(end)[0]
    assert table == settings_table(), "regenerate the table with app.settings.settings_table()"


def test_quick_start_has_exactly_the_two_commands_ci_runs() -> None:
    quick = README.split("## Quick start")[1].split("## ")[0]
    block = quick.split("```bash\n")[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert [c for c in commands if c] == ["make up", "make test"]
    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text()
    assert "exec make test" in ci
