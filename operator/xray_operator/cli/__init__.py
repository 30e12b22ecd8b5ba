"""`xray-operator run | render | check-iam`.

Each subcommand lives in a module of its own and is imported only when used, so `render`
starts fast and does not need a cluster or AWS credentials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xray-operator",
        description="Run the X-Ray daemon on every node and wire workloads to it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator (kopf) against the current cluster")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="namespace to watch (repeatable); default: all namespaces",
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")

    render = sub.add_parser("render", help="print the objects the operator would apply")
    render.add_argument(
        "-f", "--file", required=True, help="TracingConfig YAML/JSON file, - for stdin"
    )
    render.add_argument("--output", "-o", choices=["yaml", "json"], default="yaml")

    check = sub.add_parser("check-iam", help="check that the daemon's AWS identity may send traces")
    check.add_argument(
        "--config", help="TracingConfig as NAMESPACE/NAME (default: the default one)"
    )
    check.add_argument("--output", "-o", choices=["table", "json"], default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from xray_operator.cli.run_cmd import run

        return run(args)
    if args.command == "render":
        from xray_operator.cli.render_cmd import render

        return render(args)
    from xray_operator.cli.check_iam_cmd import check_iam

    return int(check_iam(args))


if __name__ == "__main__":
    sys.exit(main())
