"""The docs stay true: the cog renders in docs/ are current, every command and key is documented, exit codes match."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from fleetcore.errors import ExitCode
from sensor_manager.cli import app
from sensor_manager.cli.reference import COMMON_OPTIONS, _commands
from sensor_manager.config_reference import NOT_USED_YET, iter_keys, markdown_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
CLI_DOC = (DOCS / "cli.md").read_text()
CONFIG_DOC = (DOCS / "configuration.md").read_text()


def test_renders_are_current():
    """The cog blocks (CLI reference, config keys, full example) match the code; `cog -r docs/*.md` updates them."""
    pages = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in DOCS.glob("*.md"))]
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", *pages],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_opens_with_the_two_commands():
    title, _, rest = README.partition("\n")
    assert title.startswith("# ") and rest.lstrip().startswith("```"), "the commands come right after the title"
    first_block = README.split("```", 2)[1]
    assert "./sensor_manager.py start" in first_block
    assert "tests/run" in first_block


def test_every_command_has_help_and_is_in_the_cli_reference():
    root = typer.main.get_command(app)
    names = [name for name, _ in _commands(root)]
    assert {"start", "stop", "restart", "reset", "clean", "cleanup", "build", "compose", "status", "logs",
            "monitor", "diagnostics", "query", "plan", "simulate", "upload", "config validate"} <= set(names)
    for name, command in _commands(root):
        assert (command.help or "").strip(), f"{name} has no help text"
        assert f"#### `{name}`" in CLI_DOC, f"{name} is missing from docs/cli.md"


def test_exit_code_table_matches_exit_code_enum():
    section = CLI_DOC.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d) \|", section, flags=re.M)}
    assert documented == {int(code) for code in ExitCode}


def test_every_config_key_is_in_the_config_reference():
    missing = [doc.key for doc in iter_keys() if f"`{doc.key}`" not in CONFIG_DOC]
    assert not missing, f"config keys missing from docs/configuration.md: {missing}"


SHARED_FLAGS = {"config": ["--config", "x.yaml"], "project_dir": ["--project-dir", "."], "quiet": ["--quiet"], "verbose": ["--verbose"]}


def test_the_shared_options_work_before_every_command_name():
    root = typer.main.get_command(app)
    before = [arg for name in COMMON_OPTIONS for arg in SHARED_FLAGS[name]] + ["--traceback"]
    for name, _ in _commands(root):
        result = CliRunner().invoke(app, [*before, *name.split(), "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_each_entry_names_exactly_the_shared_options_its_command_takes_after_its_name():
    root = typer.main.get_command(app)
    for name, _ in _commands(root):
        entry = CLI_DOC.split(f"#### `{name}`", 1)[1].split("\n#### ", 1)[0]
        listed = set(re.findall(r"`(--[a-z-]+)", entry.split("After its name it also takes", 1)[1].split("\n", 1)[0])) \
            if "After its name it also takes" in entry else set()
        for option in COMMON_OPTIONS:
            flags = SHARED_FLAGS[option]
            result = CliRunner().invoke(app, [*name.split(), *flags, "--help"])
            accepted = result.exit_code == 0
            assert accepted == (flags[0] in listed), f"{name} {flags[0]}: accepted={accepted}, documented={flags[0] in listed}"


README_MAX_BYTES = 10 * 1024  # the front page fits on a few screens; the manual lives in docs/
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_stays_short():
    size = len(README.encode())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lowercase, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        n, unique = 0, slug
        while unique in anchors:
            n += 1
            unique = f"{slug}-{n}"
        anchors.add(unique)
    return anchors


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md"))]


def test_every_relative_link_resolves():
    broken = []
    for page in _pages():
        for target in LINK.findall(_prose(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_docs_index_links_every_page():
    index = _prose((DOCS / "README.md").read_text())
    linked = {target.partition("#")[0] for target in LINK.findall(index)}
    missing = [page.name for page in DOCS.glob("*.md") if page.name != "README.md" and page.name not in linked]
    assert not missing, f"docs/README.md does not link {missing}"


def test_keys_with_no_code_behind_them_say_so_in_the_key_table():
    rows = {line.split("`")[1]: line for line in markdown_table().splitlines() if line.startswith("| `")}
    for key in NOT_USED_YET:
        assert "not used yet (sinks issue)" in rows[key], rows[key]


def test_keys_marked_not_used_yet_are_read_nowhere():
    """When a sink starts reading one of them, its note in config_reference.NOT_USED_YET must go."""
    import io
    import tokenize

    fields = {key.rsplit(".", 1)[1] for key in NOT_USED_YET}
    readers = []
    for path in [*(ROOT / "sensor_manager").rglob("*.py"), *(ROOT / "uploader").rglob("*.py")]:
        if path == ROOT / "uploader" / "settings.py":  # where they are declared
            continue
        tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline))
        readers += [f"{path.relative_to(ROOT)}:{tok.start[0]} .{tok.string}" for before, tok in zip(tokens, tokens[1:], strict=False)
                    if tok.type == tokenize.NAME and tok.string in fields and before.string == "."]
    assert not readers, readers
