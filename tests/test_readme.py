"""The README's promises: the Python example runs, the Quick start has exactly two commands,
and every ``htaf.x.y`` its code names is there after a bare ``import htaf``."""

import re
import subprocess
import sys
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


def readme_code(text: str) -> str:
    """The README's Python blocks and inline code spans (not its shell blocks)."""
    python = re.findall(r"```python\n(.*?)```", text, re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return "\n".join(python + re.findall(r"`([^`\n]+)`", prose))


def test_every_attribute_chain_the_readme_names_resolves_after_a_bare_import():
    chains = sorted(
        set(re.findall(r"\bhtaf((?:\.[A-Za-z_]\w*)+)", readme_code(README.read_text())))
    )
    assert ".interop.snntorch.spike_grad" in chains and ".families.dhn.DHN" in chains
    code = (
        "import functools, sys, htaf\n"
        "lazy = ['htaf.interop', 'htaf.families', 'snntorch', 'spikingjelly']\n"
        "print([m for m in lazy if m in sys.modules])\n"
        "spikes = htaf.interop.snntorch.spike_grad('htaf', alpha0=2, alpha1=11)\n"
        "print(type(spikes).__name__, [m for m in lazy[2:] if m in sys.modules])\n"
        "missing = []\n"
        "for chain in sys.argv[1:]:\n"
        "    try:\n"
        "        functools.reduce(getattr, chain.strip('.').split('.'), htaf)\n"
        "    except AttributeError as err:\n"
        "        missing.append(f'htaf{chain}: {err}')\n"
        "print(missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *chains], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # nothing lazy loads with htaf; interop works without importing its peers
    assert out.stdout.splitlines() == ["[]", "HTAF []", "[]"]
