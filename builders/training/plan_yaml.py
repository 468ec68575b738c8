"""Print the plan ``models:`` entries for what a ``training:`` section trains, one flow-style
YAML line each, to paste under ``models:`` (a test checks that the embedded plan agrees):

    python -m llkl_db.builders.training.plan_yaml embedded
"""

from __future__ import annotations

import sys

from .spec import parse_training, plan_models


def _flow(entry: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}"


def main(argv: list[str] | None = None) -> None:
    from llkl_db.builders.plan import read_plan

    raw, path = read_plan((argv or sys.argv[1:] or ["embedded"])[0])
    for entry in plan_models(parse_training(raw.get("training"), str(path))):
        print(f"  - {_flow(entry)}")


if __name__ == "__main__":
    main()
