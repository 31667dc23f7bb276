# SPDX-License-Identifier: Apache-2.0
"""The ``selfheal-lab`` command: the local lab of real OpenStack services.

    selfheal-lab up [--with heat vitrage prometheus bmc masakari] [--auth]
                                                     start (or keep) the lab
                    [--bmc-tls]                      (with bmc: Redfish over HTTPS)
    selfheal-lab status                              every lab service and its endpoints
    selfheal-lab down                                stop everything the lab started
    selfheal-lab demo [autoheal] [--keep-lab]        a healing scenario on the lab

A development tool, never for a cloud node: it may install RabbitMQ,
PostgreSQL, MariaDB and Redis from Debian's packages when the machine has
none. Errors are one line saying what to do, not a traceback.
"""

import argparse
import json
import sys

#: optional services ``up --with`` starts beside Nova and Mistral
OPTIONAL_SERVICES = ("heat", "vitrage", "prometheus", "bmc", "masakari")


def _up(args):
    from selfheal_lab import lab

    hosts = tuple(f"compute-{i}" for i in range(1, args.hosts + 1))
    if args.bmc_tls and "bmc" not in args.with_services:
        raise SystemExit("--bmc-tls needs --with bmc")
    if "masakari" in args.with_services and not args.auth:
        raise SystemExit("--with masakari needs --auth: Masakari reaches Nova only through "
                         "Keystone (its Nova client logs in and reads the catalog)")
    info = lab.up_with(args.with_services, hosts=hosts, mode=args.mode, driver=args.driver,
                       bmc_tls=args.bmc_tls or None)
    shown = {"nova": info["nova"]["compute_url"], "mistral": info["mistral"]["url"],
             "cloud_config": info["cloud_config"]}
    if "heat" in info:
        shown.update(heat=info["heat"]["orchestration_url"],
                     zaqar=info["zaqar"]["messaging_url"])
    if "vitrage" in info:
        shown.update(vitrage=info["vitrage"]["url"])
    if "prometheus" in info:
        shown.update(prometheus=info["prometheus"]["url"])
    if "masakari" in info:
        shown.update(masakari=info["masakari"]["url"])
    if "bmc" in info:  # the passwords stay in the 0600 inventory named here
        shown.update(redfish=info["bmc"]["redfish_url"],
                     fencing_inventory=info["bmc"]["inventory"])
        if info["bmc"].get("ca_bundle"):
            shown.update(redfish_ca_bundle=info["bmc"]["ca_bundle"])
    if args.auth:
        shown.update(_up_authenticated(lab, with_alarms="heat" in args.with_services))
    print(json.dumps(shown, indent=2))
    return 0


def _up_authenticated(lab, with_alarms):
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


def _down(args):
    from selfheal_lab import lab

    lab.down()
    return 0


def _status(args):
    from selfheal_lab import lab

    print(json.dumps(lab.status(), indent=2, default=str))
    return 0


def _demo(args):
    if args.scenario == "autoheal":
        from selfheal_lab import demo_autoheal

        return demo_autoheal.run(keep_lab=args.keep_lab)
    from selfheal_lab import demo

    return demo.run(keep_lab=args.keep_lab)


def parser():
    top = argparse.ArgumentParser(prog="selfheal-lab", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start (or keep) Nova and Mistral, and the services named")
    up.add_argument("--mode", choices=["embedded", "distributed"], default="embedded",
                    help="Mistral as one process (default) or api/engine/executor services")
    up.add_argument("--hosts", type=int, default=3,
                    help="compute hosts of a new Nova (a running one keeps its hosts)")
    up.add_argument("--driver", default="fake.FakeLiveMigrateDriver",
                    help="Nova's fake virt driver: fake.FakeLiveMigrateDriver (large "
                         "capacity, clean live migration), fake.FakeDriver, "
                         "fake.SmallFakeDriver")
    up.add_argument("--with", dest="with_services", choices=OPTIONAL_SERVICES, nargs="*",
                    default=[], help="also heat (Heat and Zaqar: the autohealing flow), "
                    "vitrage (the Vitrage evaluator, loaded with the shipped templates), "
                    "prometheus (Prometheus scraping a node exporter per compute host) and/or "
                    "bmc (a Redfish emulator and an IPMI BMC wired to the compute hosts, and "
                    "the fencing inventory) and/or masakari (Masakari's API and engine with "
                    "Masakari's default options; needs --auth)")
    up.add_argument("--bmc-tls", action="store_true",
                    help="with --with bmc: the Redfish emulator serves HTTPS with a CA the lab "
                         "makes, which the fencing inventory names (verify)")
    up.add_argument("--auth", action="store_true",
                    help="also Keystone, Nova behind token validation and a Mistral with "
                         "Keystone auth (the authenticated lab); with --with heat also "
                         "Heat and Zaqar behind Keystone and Aodh")
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop every lab process and drop what the lab created in "
                   "the machine's databases and broker").set_defaults(func=_down)
    sub.add_parser("status", help="every lab service: running, PIDs, endpoints"
                   ).set_defaults(func=_status)
    demo = sub.add_parser("demo", help="a healing scenario on the local lab")
    demo.add_argument("scenario", nargs="?", choices=["host-failure", "autoheal"],
                      default="host-failure",
                      help="host-failure (default): a compute host dies and its instances "
                           "are evacuated; autoheal: a Heat group member dies and is replaced")
    demo.add_argument("--keep-lab", action="store_true", help="leave the lab running")
    demo.set_defaults(func=_demo)
    return top


def main(argv=None):
    from selfheal_tools.cli import dispatch

    return dispatch(parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
