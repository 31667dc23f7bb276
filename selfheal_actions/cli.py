"""The ``selfheal`` command for operators and developers.

    selfheal demo [autoheal] [--keep-lab]   a healing scenario on the local lab
    selfheal lab up|down|status       the lab of real OpenStack services
        [--auth]                      ... plus Keystone and the authenticated Mistral
    selfheal install [--dry-run]      load the workbooks into a Mistral, check actions
        [--with-vitrage]              ... and the templates into Vitrage
    selfheal validate [PATHS...]      workbooks and templates: Mistral's parser,
                                      Vitrage's validator, and our cross-checks

Errors are one line saying what to do, not a traceback.
"""

import argparse
import json
import sys


def _lab(args):
    from selfheal_lab import lab

    if args.lab_command == "up":
        hosts = tuple(f"compute-{i}" for i in range(1, args.hosts + 1))
        start = lab.up_autoheal if "heat" in args.with_services else lab.up
        info = start(hosts=hosts, mode=args.mode, driver=args.driver)
        shown = {"nova": info["nova"]["compute_url"], "mistral": info["mistral"]["url"],
                 "cloud_config": info["cloud_config"]}
        if "heat" in info:
            shown.update(heat=info["heat"]["orchestration_url"],
                         zaqar=info["zaqar"]["messaging_url"])
        if args.auth:
            shown.update(_lab_auth(lab, with_alarms="heat" in args.with_services))
        print(json.dumps(shown, indent=2))
    elif args.lab_command == "down":
        lab.down()
    else:
        print(json.dumps(lab.status(), indent=2, default=str))
    return 0


def _lab_auth(lab, with_alarms):
    """Start the authenticated part of the lab (with Heat, Zaqar and Aodh
    behind Keystone when ``with_alarms``); what to show of it (never a
    password: they stay in the 0600 file named here)."""
    from selfheal_lab.services import keystone

    info = lab.up_authenticated(with_alarms=with_alarms)
    shown = {"keystone": info["keystone"]["url"],
             "nova_keystone": info["nova"]["keystone_compute_url"],
             "mistral_authenticated": info["mistral"]["url"],
             "users": {"admin": "admin/admin", "member": "member/demo"},
             "passwords_file": str(keystone.passwords_file())}
    if with_alarms:
        shown.update(heat_authenticated=info["heat"]["orchestration_url"],
                     zaqar_authenticated=info["zaqar"]["keystone_url"],
                     aodh=info["aodh"]["url"])
    return shown


def _demo(args):
    if args.scenario == "autoheal":
        from selfheal_lab import demo_autoheal

        return demo_autoheal.run(keep_lab=args.keep_lab)
    from selfheal_lab import demo

    return demo.run(keep_lab=args.keep_lab)


def _validate(args):
    import pathlib

    from selfheal_actions import checks
    from selfheal_actions import data
    from selfheal_actions import validation

    paths = [pathlib.Path(p) for p in args.paths] or (
        data.workbook_paths() + data.vitrage_template_paths())
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"selfheal validate: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    workbooks = [p for p in paths if "workflows:" in p.read_text()]
    templates = [p for p in paths if p not in workbooks]
    problems = []
    for platform, files, given in (("mistral", workbooks, args.mistral_python),
                                   ("vitrage", templates, args.vitrage_python)):
        if not files:
            continue
        python = validation.find_python(platform, given)
        if python is None:
            print(f"{platform} parser: SKIPPED (no Python with {platform} found; install it "
                  f"or pass --{platform}-python)")
            continue
        results = validation.run(platform, python, files)
        bad = {p: r for p, r in results.items() if not r["ok"]}
        problems += [f"{p}: {r['error']}" for p, r in bad.items()]
        print(f"{platform} parser ({python}): {len(files) - len(bad)} of {len(files)} valid")
    workflows = checks.workbook_workflows(workbooks or data.workbook_paths())
    for path in paths:
        if path in workbooks:
            problems += checks.check_workbook_text(path.read_text(), str(path))
        else:
            problems += checks.check_vitrage_template_text(path.read_text(), str(path),
                                                           workflows)
    print(f"cross-checks: {len(workbooks)} workbook(s), {len(templates)} template(s)")
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _install(args):
    from selfheal_actions import install

    try:
        result = install.install(args.mistral_url, args.dry_run)
    except install.InstallError as error:
        print(f"selfheal install: {error}", file=sys.stderr)
        return 1
    print("\n".join(install.describe(result)))
    if args.with_vitrage or args.vitrage_url:
        from selfheal_actions import install_vitrage

        try:
            loaded = install_vitrage.install_templates(args.vitrage_url, args.dry_run)
        except install.InstallError as error:
            print(f"selfheal install: {error}", file=sys.stderr)
            return 1
        print("\n".join(install_vitrage.describe(loaded)))
    return 1 if result["missing_actions"] else 0


def parser():
    top = argparse.ArgumentParser(prog="selfheal", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a healing scenario on the local lab")
    demo.add_argument("scenario", nargs="?", choices=["host-failure", "autoheal"],
                      default="host-failure",
                      help="host-failure (default): a compute host dies and its instances "
                           "are evacuated; autoheal: a Heat group member dies and is replaced")
    demo.add_argument("--keep-lab", action="store_true", help="leave the lab running")
    demo.set_defaults(func=_demo)
    lab = sub.add_parser("lab", help="the local lab of real OpenStack services")
    lab.add_argument("lab_command", choices=["up", "down", "status"])
    lab.add_argument("--mode", choices=["embedded", "distributed"], default="embedded",
                     help="Mistral as one process (default) or api/engine/executor services")
    lab.add_argument("--hosts", type=int, default=3,
                     help="compute hosts of a new Nova (a running one keeps its hosts)")
    lab.add_argument("--driver", default="fake.FakeLiveMigrateDriver",
                     help="Nova's fake virt driver: fake.FakeLiveMigrateDriver (large "
                          "capacity, clean live migration), fake.FakeDriver, "
                          "fake.SmallFakeDriver")
    lab.add_argument("--with", dest="with_services", choices=["heat"], nargs="*", default=[],
                     help="also Heat and Zaqar (the autohealing flow)")
    lab.add_argument("--auth", action="store_true",
                     help="also Keystone, Nova behind token validation and a Mistral with "
                          "Keystone auth (the authenticated lab); with --with heat also "
                          "Heat and Zaqar behind Keystone and Aodh")
    lab.set_defaults(func=_lab)
    install = sub.add_parser("install", help="create or update the workbooks in a Mistral "
                             "and check that it has the selfheal actions")
    install.add_argument("--mistral-url", help="Mistral v2 URL (no Keystone); default: "
                         "$OS_MISTRAL_URL, else the OS_* Keystone variables")
    install.add_argument("--dry-run", action="store_true", help="say what would change")
    install.add_argument("--with-vitrage", action="store_true",
                         help="also load the Vitrage templates: create new ones, replace "
                         "changed ones (Vitrage from --vitrage-url, $OS_VITRAGE_URL, or the "
                         "catalog's rca endpoint)")
    install.add_argument("--vitrage-url", help="Vitrage API URL (no Keystone); implies "
                         "--with-vitrage")
    install.set_defaults(func=_install)
    validate = sub.add_parser("validate", help="validate workbooks and Vitrage templates "
                              "offline: the platforms' own parsers, then our cross-checks")
    validate.add_argument("paths", nargs="*",
                          help="workbook or template files (default: the shipped ones)")
    validate.add_argument("--mistral-python", help="a Python that has Mistral installed")
    validate.add_argument("--vitrage-python", help="a Python that has Vitrage installed")
    validate.set_defaults(func=_validate)
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
