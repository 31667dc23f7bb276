# SPDX-License-Identifier: Apache-2.0
"""The ``selfheal`` command for operators.

    selfheal install [--dry-run]      load the workbooks into a Mistral, check actions
        [--with-vitrage]              ... and the templates into Vitrage
        [--with-watch [--watch-input JSON] [--watch-pattern CRON]]
                                      ... and the host watch's cron trigger
    selfheal watch pause --reason R   the kill switch: no heal starts
    selfheal watch resume|status      switch it off; the trigger, switch, last decision
    selfheal validate [PATHS...]      workbooks and templates (files or folders):
        [--mistral-url URL]           Mistral's parser, Vitrage's validator, our
                                      cross-checks; every action name against a Mistral

The lab and its demo are the separate ``selfheal-lab`` command of a checkout.
Errors are one line saying what to do, not a traceback.
"""

import argparse
import json
import sys


def _moved_to_the_lab(args):
    instead = "selfheal-lab demo" if args.command == "demo" else "selfheal-lab up|status|down"
    print(f"selfheal {args.command}: the lab is not part of the product; from a selfheal "
          f"checkout run `python3 tools/dev.py demo` or `{instead}` "
          "(the selfheal-lab distribution, a development tool: never on a cloud node)",
          file=sys.stderr)
    return 2


def _validate_paths(given):
    """The files to validate: each file given, every ``*.yaml`` / ``*.yml``
    of each directory given (recursively); the shipped ones when none.

    :returns: ``(paths, missing)``.
    """
    import pathlib

    from selfheal_tools import data

    if not given:
        return data.workbook_paths() + data.vitrage_template_paths(), []
    paths, missing = [], []
    for name in given:
        path = pathlib.Path(name)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            paths.append(path)
        else:
            missing.append(name)
    return paths, missing


def _validate(args):
    import yaml

    from selfheal_tools import data
    from selfheal_tools import install
    from selfheal_tools import platform_parsers
    from selfheal_tools import workbook_checks

    paths, missing = _validate_paths(args.paths)
    if missing:
        print(f"selfheal validate: no such file or directory: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    if not paths:
        print("selfheal validate: no *.yaml or *.yml file in "
              f"{', '.join(args.paths)}", file=sys.stderr)
        return 2
    workbooks = [p for p in paths if "workflows:" in p.read_text()]
    templates = [p for p in paths if p not in workbooks]
    problems = []
    for platform, files, given in (("mistral", workbooks, args.mistral_python),
                                   ("vitrage", templates, args.vitrage_python)):
        if not files:
            continue
        python = platform_parsers.find_python(platform, given)
        if python is None:
            print(f"{platform} parser: SKIPPED (no Python with {platform} found; install it "
                  f"or pass --{platform}-python)")
            continue
        results = platform_parsers.run(platform, python, files)
        bad = {p: r for p, r in results.items() if not r["ok"]}
        problems += [f"{p}: {r['error']}" for p, r in bad.items()]
        print(f"{platform} parser ({python}): {len(files) - len(bad)} of {len(files)} valid")
    # the workflows a call or a template may name: the shipped ones, and the
    # ones given (which win: they may be the edited copies)
    workflows = {**workbook_checks.workbook_workflows(data.workbook_paths()),
                 **workbook_checks.workbook_workflows(workbooks)}
    for path in paths:
        if path in workbooks:
            problems += workbook_checks.check_workbook_text(path.read_text(), str(path),
                                                            workflows=workflows)
        else:
            problems += workbook_checks.check_vitrage_template_text(path.read_text(),
                                                                    str(path), workflows)
    print(f"cross-checks: {len(workbooks)} workbook(s), {len(templates)} template(s)")
    if args.mistral_url or args.against_cloud:
        named = {}
        for path in workbooks:
            try:
                spec = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue  # reported above
            for action in workbook_checks.actions_named(spec if isinstance(spec, dict) else {}):
                named.setdefault(action, []).append(str(path))
        try:
            absent = install.absent_actions(sorted(named), args.mistral_url)
        except install.InstallError as error:
            print(f"selfheal validate: {error}", file=sys.stderr)
            return 2
        print(f"registered actions: {len(named) - len(absent)} of {len(named)} found in Mistral")
        problems += [f"{', '.join(named[a])}: action '{a}' is not registered in that Mistral"
                     for a in absent]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _watch_input(text):
    """The --watch-input object, or an error line (checked before any call)."""
    try:
        value = json.loads(text or "{}")
    except ValueError as error:
        return None, f"--watch-input is not JSON: {error}"
    if not isinstance(value, dict):
        return None, "--watch-input must be a JSON object, e.g. '{\"budget\": 10}'"
    return value, None


def _install(args):
    from selfheal_tools import install

    watch_input, problem = _watch_input(args.watch_input)
    if problem:
        print(f"selfheal install: {problem}; nothing was changed", file=sys.stderr)
        return 2
    try:
        result = install.install(args.mistral_url, args.dry_run)
    except install.InstallError as error:
        print(f"selfheal install: {error}", file=sys.stderr)
        return 1
    print("\n".join(install.describe(result)))
    if args.with_vitrage or args.vitrage_url:
        from selfheal_tools import install_vitrage

        try:
            loaded = install_vitrage.install_templates(args.vitrage_url, args.dry_run)
        except install.InstallError as error:
            print(f"selfheal install: {error}", file=sys.stderr)
            return 1
        print("\n".join(install_vitrage.describe(loaded)))
    if args.with_watch:
        from selfheal_tools import install_watch

        try:
            done = install_watch.install_watch(args.mistral_url, args.dry_run,
                                               args.watch_pattern, watch_input)
        except install.InstallError as error:
            print(f"selfheal install: {error}", file=sys.stderr)
            return 1
        print(f"  watch trigger {install_watch.TRIGGER} ('{done['pattern']}'): "
              f"{done['trigger']}; kill switch {install_watch.KILL_SWITCH}: "
              f"{done['kill_switch']}")
    return 1 if result["missing_actions"] else 0


def _watch(args):
    from selfheal_tools import install
    from selfheal_tools import install_watch

    try:
        if args.what == "pause":
            install_watch.set_paused(True, args.reason or "", args.mistral_url)
            print(f"kill switch ON: the watch starts no heal from its next cycle "
                  f"(reason: {args.reason or 'none given'})")
        elif args.what == "resume":
            install_watch.set_paused(False, "", args.mistral_url)
            print("kill switch off: the watch heals again from its next cycle")
        else:
            print("\n".join(install_watch.status(args.mistral_url)))
    except install.InstallError as error:
        print(f"selfheal watch: {error}", file=sys.stderr)
        return 1
    return 0


def parser():
    top = argparse.ArgumentParser(prog="selfheal", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    for moved in ("demo", "lab"):
        stub = sub.add_parser(moved, help=argparse.SUPPRESS, add_help=False)
        stub.add_argument("rest", nargs=argparse.REMAINDER)
        stub.set_defaults(func=_moved_to_the_lab)
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
    install.add_argument("--with-watch", action="store_true",
                         help="also create or replace the host watch's cron trigger "
                         "(selfheal-watch) and its kill switch")
    install.add_argument("--watch-input", help="the watch workflow's inputs as a JSON object")
    install.add_argument("--watch-pattern", default="* * * * *",
                         help="the trigger's cron pattern (default: every minute)")
    install.set_defaults(func=_install)
    watch = sub.add_parser("watch", help="the host watch's kill switch and status")
    watch.add_argument("what", choices=["pause", "resume", "status"])
    watch.add_argument("--reason", help="why it is paused (shown in every decision line)")
    watch.add_argument("--mistral-url", help="Mistral v2 URL (no Keystone)")
    watch.set_defaults(func=_watch)
    validate = sub.add_parser("validate", help="validate workbooks and Vitrage templates "
                              "offline: the platforms' own parsers, then our cross-checks")
    validate.add_argument("paths", nargs="*",
                          help="workbook or template files, or directories of them "
                          "(default: the shipped ones)")
    validate.add_argument("--mistral-url", help="also check every action name the workbooks "
                          "call against this Mistral's registered actions (v2 URL, no "
                          "Keystone; see --against-cloud)")
    validate.add_argument("--against-cloud", action="store_true",
                          help="the same against the Mistral of $OS_MISTRAL_URL or of the "
                          "OS_* Keystone variables' catalog")
    validate.add_argument("--mistral-python", help="a Python that has Mistral installed")
    validate.add_argument("--vitrage-python", help="a Python that has Vitrage installed")
    validate.set_defaults(func=_validate)
    return top


def dispatch(command_parser, argv=None):
    """Parse ``argv`` and run the chosen subcommand's ``func``; an error the
    user can act on is one line on stderr (exit 1), never a traceback.

    :returns: the exit status.
    """
    args = command_parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError, TimeoutError, ValueError) as error:
        print(f"{command_parser.prog} {args.command}: {error}", file=sys.stderr)
        return 1


def main(argv=None):
    return dispatch(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
