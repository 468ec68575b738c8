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
    import yaml

    from llkl_db.builders.plans import shipped_plans

    name = (argv or sys.argv[1:] or ["embedded"])[0]
    path = shipped_plans().get(name, name)
    raw = yaml.safe_load(open(path, encoding="utf-8"))
    for entry in plan_models(parse_training(raw.get("training"), str(path))):
        print(f"  - {_flow(entry)}")


if __name__ == "__main__":
    main()
