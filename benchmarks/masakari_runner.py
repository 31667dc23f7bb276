#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run Masakari's real host-failure recovery flow against the lab's Nova.

Run by the ``masakari`` venv's interpreter (it does not import
``selfheal_lab``). Everything is Masakari 22's own code: its taskflow driver
(``TaskFlowDriver().execute_host_failure``), its tasks (disable the compute
service, list the host's servers, evacuate them on a green pool and confirm
each by polling), its options, its sqlite-backed DB (VMove records) and its
taskflow persistence. Exactly one thing is replaced:

* ``masakari.compute.nova.novaclient(context, timeout=None)``: upstream it
  logs in to Keystone as the privileged user and finds Nova in the catalog.
  The lab has no Keystone, so the replacement returns a novaclient on the
  lab's Nova URL, at Masakari's pinned microversion (2.53,
  ``masakari.compute.nova.NOVA_API_VERSION``), whose session sends the lab's
  auth headers. Like the original, it builds a new client per call.

In ``reserved_host`` mode the reserved hosts are seeded as Masakari host
records (one failover segment) in its own DB, so Masakari's engine callback
``masakari.engine.manager.update_host_method`` runs as in production.

    python masakari_runner.py --compute-url URL --headers JSON --host H \
        [--mode auto|reserved_host] [--reserved-hosts a,b] \
        [--tuned --threads N] --state-dir DIR

The last line on stdout is JSON: ``{"seconds", "ok", "error", ...}``.
Masakari's log goes to ``DIR/masakari.log``.
"""

import importlib
import os
import sys

# Run as a script, this folder is sys.path[0]; it holds benchmark modules
# that must not shadow anything in the masakari venv.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Before anything else: masakari.cmd monkey-patches with eventlet (Masakari's
# green pool and its looping calls need it). Imported by name so that no
# unused-import clean-up can drop it.
importlib.import_module("masakari.cmd")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

DEFAULTS = {  # Masakari 22's own defaults, written out for the record
    "wait_period_after_service_update": 180,
    "wait_period_after_evacuation": 90,
    "verify_interval": 1,
    "host_failure_recovery_threads": 3,
}


def tuned_options(threads):
    """Masakari's waits cut to what the lab's Nova needs.

    The runner starts only once Nova already reports the host down, so the
    sleep after disabling the service has nothing left to wait for (0).
    ``verify_interval`` is an integer option: 1 s is its lowest value that
    is not a busy loop. The evacuation timeout (90 s) is only a ceiling, it
    costs nothing when evacuations succeed, so it stays.
    """
    return {
        "wait_period_after_service_update": 0,
        "wait_period_after_evacuation": 90,
        "verify_interval": 1,
        "host_failure_recovery_threads": threads,
    }


def write_config(state_dir, options):
    path = os.path.join(state_dir, "masakari.conf")
    lines = ["[DEFAULT]",
             f"log_file = {os.path.join(state_dir, 'masakari.log')}",
             "debug = False",
             "use_stderr = False",
             "transport_url = fake:/"]
    lines += [f"{k} = {v}" for k, v in sorted(options.items())]
    lines += ["",
              "[oslo_messaging_notifications]",
              "driver = noop",
              "",
              "[database]",
              f"connection = sqlite:///{os.path.join(state_dir, 'masakari.db')}",
              "",
              "[taskflow]",
              f"connection = sqlite:///{os.path.join(state_dir, 'taskflow.db')}",
              ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def lab_novaclient_factory(compute_url, headers):
    """The replacement of ``masakari.compute.nova.novaclient``."""
    from keystoneauth1 import session
    from keystoneauth1 import token_endpoint
    from masakari.compute import nova as masakari_nova
    from novaclient import api_versions
    from novaclient import client as nova_client

    def novaclient(context, timeout=None):
        sess = session.Session(auth=token_endpoint.Token(compute_url, "lab"),
                               additional_headers=dict(headers))
        return nova_client.Client(
            api_versions.APIVersion(masakari_nova.NOVA_API_VERSION),
            session=sess,
            endpoint_override=compute_url,
            timeout=timeout,
            global_request_id=getattr(context, "global_id", None),
            extensions=masakari_nova.nova_extensions)

    return novaclient


def seed_reserved_hosts(context, failed_host, reserved_hosts):
    """One failover segment holding the failed host and the reserved ones."""
    from masakari import db

    segment = db.failover_segment_create(context, {
        "uuid": str(uuid.uuid4()), "name": f"lab-{uuid.uuid4().hex[:8]}",
        "service_type": "COMPUTE", "recovery_method": "reserved_host",
        "enabled": True})
    for name, reserved in [(failed_host, False)] + [(h, True) for h in reserved_hosts]:
        db.host_create(context, {
            "uuid": str(uuid.uuid4()), "name": name, "type": "COMPUTE",
            "control_attributes": "SSH", "reserved": reserved,
            "on_maintenance": name == failed_host,
            "failover_segment_id": segment.uuid})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compute-url", required=True)
    parser.add_argument("--headers", required=True, help="JSON object")
    parser.add_argument("--host", required=True)
    parser.add_argument("--mode", choices=("auto", "reserved_host"), default="auto")
    parser.add_argument("--reserved-hosts", default="")
    parser.add_argument("--tuned", action="store_true")
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)

    result = {"seconds": None, "ok": False, "error": None}
    try:
        result.update(run(args))
    except Exception as e:  # report, never hang the caller
        result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result), flush=True)
    # eventlet/oslo threads must not keep the process alive
    os._exit(0)


def run(args):
    os.makedirs(args.state_dir, exist_ok=True)
    options = tuned_options(args.threads) if args.tuned else dict(DEFAULTS)
    reserved = [h for h in args.reserved_hosts.split(",") if h]
    if args.mode == "reserved_host" and not reserved:
        raise ValueError("--mode reserved_host needs --reserved-hosts")
    config = write_config(args.state_dir, options)

    # Configuration first: masakari's taskflow base module reads
    # [taskflow] connection when it is imported.
    import masakari.conf
    from oslo_log import log as logging

    CONF = masakari.conf.CONF
    logging.register_options(CONF)
    CONF(["--config-file", config], project="masakari")
    logging.setup(CONF, "masakari")

    from masakari import context as masakari_context
    from masakari import objects
    from masakari import rpc
    from masakari.db import migration

    objects.register_all()
    rpc.init(CONF)  # fake:/ transport, noop notifier (host record updates emit)
    migration.db_sync()

    from masakari import exception
    from masakari.compute import nova as masakari_nova
    from masakari.engine import manager
    from masakari.engine.drivers.taskflow import driver as taskflow_driver

    # THE replacement: the Keystone-login client factory -> lab endpoint.
    masakari_nova.novaclient = lab_novaclient_factory(args.compute_url,
                                                      json.loads(args.headers))

    context = masakari_context.get_admin_context()
    notification_uuid = str(uuid.uuid4())
    kwargs = {}
    if args.mode == "reserved_host":
        seed_reserved_hosts(context, args.host, reserved)
        kwargs = {"reserved_host_list": reserved,
                  "update_host_method": manager.update_host_method}
    driver = taskflow_driver.TaskFlowDriver()

    out = {"options": options, "mode": args.mode, "skipped": False}
    started = time.monotonic()
    try:
        driver.execute_host_failure(context, args.host, args.mode,
                                    notification_uuid, **kwargs)
        out["ok"] = True
    except exception.SkipHostRecoveryException as e:
        out.update(ok=True, skipped=True, error=None, note=str(e.message))
    except Exception as e:
        out.update(ok=False, error=f"{type(e).__name__}: {getattr(e, 'message', e)}")
    out["seconds"] = round(time.monotonic() - started, 3)

    vmoves = objects.VMoveList.get_all_vmoves(context, notification_uuid)
    counts = {}
    for vmove in vmoves:
        counts[vmove.status] = counts.get(vmove.status, 0) + 1
    out["vmoves"] = counts
    failed = [f"{v.instance_uuid}: {v.message}" for v in vmoves if v.status == "failed"]
    if failed:
        out["vmove_errors"] = failed[:5]
    return out


if __name__ == "__main__":
    main()
