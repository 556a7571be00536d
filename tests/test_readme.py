"""The README's promises: the Python example runs and the Quick start has exactly two commands."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs_and_learns():
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 14
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["acc"].item() > 0.8  # random labels, memorised through exact steps


def test_quick_start_has_two_commands():
    section = text_between(README.read_text(), "## Quick start", "\n## ")
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]


def text_between(text: str, start: str, end: str) -> str:
    head = text.index(start) + len(start)
    return text[head : text.index(end, head)]
