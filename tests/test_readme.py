import re
from pathlib import Path


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_example_runs(capsys):
    usage = README.read_text().split("## Usage", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "torch.Size([1, 6, 384]) torch.Size([3, 384])" in printed


def test_ci_runs_the_readme_test_command():
    command = re.search(r"## Test\n\n```bash\n(.*?)\n```", README.read_text(), re.S).group(1)
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert command in ci
