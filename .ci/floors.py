"""Print a pip constraints file that pins every requirement of setup.cfg (the base and the `dev` extra with what it
builds on) at the lower bound of its range: the floors `bash .ci/compat floors` installs and tests."""

import configparser
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def floors(setup_cfg: Path = ROOT / "setup.cfg", extra: str = "dev") -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    extras = config["options.extras_require"]
    lines, wanted = config["options"]["install_requires"].splitlines(), [extra]
    while wanted:
        for line in extras[wanted.pop()].splitlines():
            requirement = Requirement(line) if line.strip() else None
            if requirement is not None and requirement.name == config["metadata"]["name"]:
                wanted += sorted(requirement.extras)
            elif requirement is not None:
                lines.append(line)
    pins = {}
    for line in filter(str.strip, lines):
        requirement = Requirement(line)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(lower) != 1:
            raise ValueError(f"setup.cfg: {line.strip()!r} has no single lower bound (>=) to test")
        pins[requirement.name] = lower[0]
    return pins


if __name__ == "__main__":
    sys.stdout.write("".join(f"{name}=={version}\n" for name, version in sorted(floors().items())))
