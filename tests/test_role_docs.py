"""scripts/role_docs.py: the role READMEs are current, and the generator reads roles correctly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT_ROOT / "scripts" / "role_docs.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # leave no __pycache__ in scripts/
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


role_docs = _load_module()


def test_role_readmes_are_current():
    """Every role README matches its defaults and argument spec (run `scripts/role_docs.py --write`)."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"scripts/role_docs.py --check failed:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- a synthetic role

DEFAULTS = """\
---
# Section comment: describes the whole file, not demo_name.

# Short name of the thing.
# Second line of the same comment.
demo_name: hello
demo_mode: fast
# The port.
demo_port: 8080

# Another section, separated from demo_items by a blank line.

demo_items:
  - a
  - b
# Folded over two lines, with a pipe.
demo_expr: >-
  {{ demo_name | upper
     if demo_mode == 'fast' else 'x' }}
demo_block: |
  first line
  # not a comment, part of the value
demo_after_block: 1
demo_long: "{{ 'aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd eeeeeeeeee ffffffffff' }}"
"""

SPECS = """\
---
argument_specs:
  main:
    short_description: A demo role.
    options:
      demo_name:
        type: str
        description: Spec description of demo_name.
      demo_mode:
        type: str
        choices: [fast, slow]
        description: How fast it goes.
      demo_port:
        type: int
        description: Spec description of demo_port.
      demo_items:
        type: list
        elements: str
        description: Some items.
      demo_expr:
        type: str
        description: An expression.
      demo_block:
        type: str
        description: A block scalar.
      demo_after_block:
        type: int
        description: After the block scalar.
      demo_long:
        type: str
        description: A long value.
      demo_token:
        type: str
        required: true
        description: A required option without a default.
"""

META = """\
---
galaxy_info:
  role_name: demo
  author: tests
  description: A demo role for the generator tests.
  license: MIT
dependencies: []
"""


@pytest.fixture
def roles_dir(tmp_path: Path) -> Path:
    role = tmp_path / "roles" / "demo"
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(DEFAULTS)
    (role / "meta" / "argument_specs.yml").write_text(SPECS)
    (role / "meta" / "main.yml").write_text(META)
    return tmp_path / "roles"


def run(roles_dir: Path, *args: str, capsys) -> tuple[int, str]:
    rc = role_docs.main([*args, "--roles-dir", str(roles_dir)])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def variables(roles_dir: Path) -> dict[str, object]:
    return {v.name: v for v in role_docs.load_role(roles_dir / "demo").variables}


def table_row(readme: str, name: str) -> list[str]:
    for line in readme.splitlines():
        if line.startswith(f"| `{name}` |"):
            return [c.strip() for c in line.strip().strip("|").split(" | ")]
    raise AssertionError(f"no row for {name} in:\n{readme}")


def test_comment_block_attaches_to_the_variable_below(roles_dir):
    found = variables(roles_dir)
    assert found["demo_name"].comment == "Short name of the thing. Second line of the same comment."
    assert found["demo_port"].comment == "The port."
    assert found["demo_expr"].comment == "Folded over two lines, with a pipe."


def test_section_comments_are_not_attached(roles_dir):
    found = variables(roles_dir)
    assert "Section comment" not in found["demo_name"].comment
    assert found["demo_items"].comment == ""
    # Without a comment of its own, the row shows the argument spec's description.
    row = role_docs.render_table(role_docs.load_role(roles_dir / "demo"))
    assert "| `demo_items` | `[a, b]` | list of str | Some items. |" in row
    assert "Another section" not in row and "Section comment" not in row


def test_comment_rules_precisely():
    text = textwrap.dedent(
        """\
        ---
        # Section, separated by a blank line.

        a: 1
        # About b.
        b: 2
        c: 3
        # yamllint disable-line rule:truthy
        d: "yes"
        e: |
          # content of e
        f: 4
        """
    )
    found = {v.name: v.comment for v in role_docs.parse_defaults_text(text)}
    assert found == {"a": "", "b": "About b.", "c": "", "d": "", "e": "", "f": ""}


def test_description_falls_back_to_the_argument_spec(roles_dir, capsys):
    rc, _ = run(roles_dir, "--write", capsys=capsys)
    assert rc == 0
    readme = (roles_dir / "demo" / "README.md").read_text()
    assert table_row(readme, "demo_mode")[3] == "How fast it goes."
    assert table_row(readme, "demo_name")[3] == "Short name of the thing. Second line of the same comment."
    # The block scalar's "# ..." line is part of its value, not a comment on demo_after_block.
    assert table_row(readme, "demo_after_block")[3] == "After the block scalar."


def test_choices_and_elements_rendering(roles_dir, capsys):
    assert role_docs.render_type({"type": "str", "choices": ["a", "b"]}) == "str: a, b"
    assert role_docs.render_type({"type": "list", "elements": "str"}) == "list of str"
    assert role_docs.render_type({}) == "str"
    run(roles_dir, "--write", capsys=capsys)
    readme = (roles_dir / "demo" / "README.md").read_text()
    assert table_row(readme, "demo_mode")[2] == "str: fast, slow"
    assert table_row(readme, "demo_items")[2] == "list of str"


def test_default_rendering(roles_dir, capsys):
    run(roles_dir, "--write", capsys=capsys)
    readme = (roles_dir / "demo" / "README.md").read_text()
    assert table_row(readme, "demo_name")[1] == "`hello`"
    assert table_row(readme, "demo_port")[1] == "`8080`"
    assert table_row(readme, "demo_items")[1] == "`[a, b]`"
    # Multi-line: the first line and an ellipsis; the pipe escaped for the table.
    expr = table_row(readme, "demo_expr")[1]
    assert expr == "`\"{{ demo_name \\| upper …`"
    # Long: cut at a word boundary, at most 60 characters before the ellipsis.
    long = table_row(readme, "demo_long")[1].strip("`")
    assert long.endswith(" …") and len(long) <= 62
    # Options of the spec without a default.
    assert table_row(readme, "demo_token")[1] == "(required)"
    assert role_docs.compact_yaml("off") == '"off"'
    assert role_docs.compact_yaml("660") == '"660"'
    assert role_docs.compact_yaml({"k": ["x", 1, True, None]}) == "{k: [x, 1, true, null]}"


def test_check_passes_on_a_consistent_role(roles_dir, capsys):
    assert run(roles_dir, "--write", capsys=capsys)[0] == 0
    rc, out = run(roles_dir, "--check", capsys=capsys)
    assert rc == 0, out


def test_variable_missing_from_spec_is_detected(roles_dir, capsys):
    defaults = roles_dir / "demo" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "demo_undocumented: 1\n")
    specs = roles_dir / "demo" / "meta" / "argument_specs.yml"
    specs.write_text(specs.read_text() + "      demo_spec_only:\n        type: str\n")
    run(roles_dir, "--write", capsys=capsys)  # the README is current; the mismatch remains
    rc, out = run(roles_dir, "--check", capsys=capsys)
    assert rc == 1
    assert "demo: demo_undocumented missing from argument_specs" in out
    assert "demo: demo_spec_only missing from defaults" in out
    assert "demo_token" not in out  # required options need no default
    assert "stale" not in out
    readme = (roles_dir / "demo" / "README.md").read_text()
    assert table_row(readme, "demo_spec_only")[1] == "(none)"
    assert table_row(readme, "demo_undocumented")[2] == ""


def test_stale_readme_is_detected_and_fixed_by_write(roles_dir, capsys):
    readme = roles_dir / "demo" / "README.md"
    rc, out = run(roles_dir, "--check", capsys=capsys)
    assert rc == 1 and "does not exist" in out

    rc, out = run(roles_dir, "--write", capsys=capsys)
    assert rc == 0 and "wrote" in out
    text = readme.read_text()
    assert text.startswith("# demo\n\nA demo role for the generator tests.\n")
    assert "## Variables" in text and "## Example playbook" in text and "- role: demo" in text
    assert role_docs.BEGIN_MARKER in text and role_docs.END_MARKER in text

    # Hand-written prose outside the markers survives; the table follows the defaults.
    readme.write_text(text.replace("A demo role for the generator tests.", "Hand-written prose."))
    defaults = roles_dir / "demo" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text().replace("demo_port: 8080", "demo_port: 9090"))
    rc, out = run(roles_dir, "--check", capsys=capsys)
    assert rc == 1
    assert "README.md is stale" in out
    assert "-| `demo_port` | `8080` |" in out and "+| `demo_port` | `9090` |" in out

    assert run(roles_dir, "--write", capsys=capsys)[0] == 0
    assert run(roles_dir, "--check", capsys=capsys)[0] == 0
    text = readme.read_text()
    assert "Hand-written prose." in text and "`9090`" in text
    # --write is idempotent.
    rc, out = run(roles_dir, "--write", capsys=capsys)
    assert rc == 0 and out == ""


def test_readme_without_markers_gains_a_section(roles_dir, capsys):
    readme = roles_dir / "demo" / "README.md"
    readme.write_text("# demo\n\nProse.\n\n## License\n\nMIT\n")
    rc, out = run(roles_dir, "--check", capsys=capsys)
    assert rc == 1 and "has no markers" in out
    run(roles_dir, "--write", capsys=capsys)
    text = readme.read_text()
    assert text.startswith("# demo\n\nProse.\n\n## Variables\n\n" + role_docs.BEGIN_MARKER)
    assert text.rstrip().endswith("## License\n\nMIT")
    assert run(roles_dir, "--check", capsys=capsys)[0] == 0


def test_roles_named_on_the_command_line(roles_dir, capsys):
    other = roles_dir / "other"
    (other / "defaults").mkdir(parents=True)
    (other / "defaults" / "main.yml").write_text("---\nother_x: 1\n")
    rc, out = run(roles_dir, "--write", "demo", capsys=capsys)
    assert rc == 0 and not (other / "README.md").exists()
    rc, out = run(roles_dir, "--check", "other", capsys=capsys)
    assert rc == 1 and "other: no argument spec" in out and "demo" not in out
    rc, out = run(roles_dir, "--check", "missing", capsys=capsys)
    assert rc == 2 and "no such role" in out
