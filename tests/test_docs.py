"""The README and docs stay true: the test command is what CI runs, the schema table is current."""

from __future__ import annotations

from pathlib import Path

from crmguard.schema import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_first_lines_are_the_two_commands_and_ci_runs_the_test_one() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].endswith("crmguard demo")
    assert "pytest" in block[1]
    assert block[1] in (ROOT / ".ci" / "run").read_text()


def test_architecture_doc_has_the_current_schema_table() -> None:
    assert markdown_table() in (ROOT / "docs" / "architecture.md").read_text()


def test_readme_documents_every_cli_command() -> None:
    import typer.main

    from crmguard.cli import app

    readme = (ROOT / "README.md").read_text()
    for name in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        assert f"crmguard {name}" in readme, name
