"""The README's Python examples run as written (in a folder holding the files they name),
both as a script and pasted line by line into an interactive Python prompt."""

from __future__ import annotations

import code
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


def _photo(folder: Path) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:240, 0:320]
    base = np.stack([x * 0.8, y, (x + y) * 0.4], axis=-1) + rng.normal(0, 12, (240, 320, 3))
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / "photo.jpg")


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(source, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - our own README


class _Prompt(code.InteractiveConsole):
    """The interactive interpreter, its error output (tracebacks, syntax errors) kept."""

    def __init__(self) -> None:
        super().__init__(locals={"__name__": "__console__"}, filename="<stdin>")
        self.errors: list[str] = []

    def write(self, data: str) -> None:
        self.errors.append(data)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_works_pasted_into_a_prompt(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At a prompt a compound statement ends only at a blank line: a `while` block followed
    # directly by the next statement is a SyntaxError there, though it runs as a script.
    _photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    prompt = _Prompt()
    for line in [*source.splitlines(), ""]:  # the last Enter closes a trailing block
        prompt.push(line)
    assert prompt.errors == []


def test_the_prompt_check_catches_a_missing_blank_line() -> None:
    prompt = _Prompt()
    for line in ["total = 0", "while total < 3:", "    total += 1", "assert total == 3", ""]:
        prompt.push(line)
    assert any("SyntaxError" in text for text in prompt.errors)
