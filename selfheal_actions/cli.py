"""The ``selfheal`` command for operators and developers.

    selfheal demo [--keep-lab]        a host failure healed on the local lab
    selfheal lab up|down|status       the lab of real OpenStack services
    selfheal check [PATHS...]         static cross-checks of workbooks and templates

Errors are one line saying what to do, not a traceback.
"""

import argparse
import json
import sys


def _lab(args):
    from selfheal_lab import lab

    if args.lab_command == "up":
        hosts = tuple(f"compute-{i}" for i in range(1, args.hosts + 1))
        info = lab.up(hosts=hosts, mode=args.mode, driver=args.driver)
        print(json.dumps({"nova": info["nova"]["compute_url"],
                          "mistral": info["mistral"]["url"],
                          "cloud_config": info["cloud_config"]}, indent=2))
    elif args.lab_command == "down":
        lab.down()
    else:
        print(json.dumps(lab.status(), indent=2, default=str))
    return 0


def _demo(args):
    from selfheal_lab import demo

    return demo.run(keep_lab=args.keep_lab)


def _check(args):
    import pathlib

    from selfheal_actions import checks
    from selfheal_actions import data

    paths = [pathlib.Path(p) for p in args.paths] or (
        data.workbook_paths() + data.vitrage_template_paths())
    workbooks = [p for p in paths if "workflows:" in p.read_text()]
    workflows = checks.workbook_workflows(workbooks or data.workbook_paths())
    problems = []
    for path in paths:
        if path in workbooks:
            problems += checks.check_workbook_text(path.read_text(), str(path))
        else:
            problems += checks.check_vitrage_template_text(path.read_text(), str(path),
                                                           workflows)
    for problem in problems:
        print(problem)
    print(f"{len(workbooks)} workbook(s) and {len(paths) - len(workbooks)} Vitrage template(s) "
          f"checked: {len(problems)} problem(s)")
    return 1 if problems else 0


def parser():
    top = argparse.ArgumentParser(prog="selfheal", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="heal a failed host on the local lab")
    demo.add_argument("--keep-lab", action="store_true", help="leave the lab running")
    demo.set_defaults(func=_demo)
    lab = sub.add_parser("lab", help="the local lab of real OpenStack services")
    lab.add_argument("lab_command", choices=["up", "down", "status"])
    lab.add_argument("--mode", choices=["embedded", "distributed"], default="embedded",
                     help="Mistral as one process (default) or api/engine/executor services")
    lab.add_argument("--hosts", type=int, default=3,
                     help="compute hosts of a new Nova (a running one keeps its hosts)")
    lab.add_argument("--driver", default="fake.FakeDriver",
                     help="Nova's fake virt driver: fake.FakeDriver (large capacity), "
                          "fake.SmallFakeDriver, fake.FakeLiveMigrateDriver")
    lab.set_defaults(func=_lab)
    check = sub.add_parser("check", help="cross-check workbooks and Vitrage templates")
    check.add_argument("paths", nargs="*",
                       help="workbook or template files (default: the shipped ones)")
    check.set_defaults(func=_check)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, TimeoutError) as error:
        print(f"selfheal {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
