# SPDX-License-Identifier: Apache-2.0
"""Bring the whole lab up or down: Nova in a box, then Mistral with our pack.

``up`` is idempotent: a service already running and current is kept; Mistral
is reinstalled and restarted only when the selfheal package changed. The
workbooks are (re)loaded into Mistral on every ``up``.

Vitrage, Heat and Zaqar are optional parts: ``up_vitrage`` brings the lab
up and then Vitrage's evaluator on it, ``up_autoheal`` adds Heat and Zaqar
(``lab.up`` alone starts neither); ``down`` stops everything, and the
private backends the lab started.

Prometheus (``up_prometheus``) scrapes one node exporter per compute host;
:mod:`selfheal_lab.faults` silences Nova and the exporters together like
real failures do.

``up_authenticated`` is the lab with Keystone: Nova in a box with its
Keystone door, and the ``authenticated`` Mistral, which passes the caller's
token to the actions; they find Nova in the token's catalog.

``up_masakari`` adds Masakari's real API and engine
(:mod:`selfheal_lab.services.masakari`); they only run behind Keystone, so
it starts Keystone and the Nova box's Keystone door if they are not up.
"""

import json

from selfheal_lab import backends
from selfheal_lab import mistral_client
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab.services import aodh
from selfheal_lab.services import bmc
from selfheal_lab.services import heat
from selfheal_lab.services import keystone
from selfheal_lab.services import masakari
from selfheal_lab.services import mistral
from selfheal_lab.services import nova
from selfheal_lab.services import prometheus
from selfheal_lab.services import vitrage
from selfheal_lab.services import zaqar

#: optional services ``up_with`` (and ``selfheal-lab up --with``) starts
OPTIONAL_SERVICES = ("heat", "vitrage", "prometheus", "bmc", "masakari")

#: the explicit endpoint file of each Mistral mode that reads one (the
#: authenticated Mistral reads none: its actions use the Keystone catalog,
#: where the lab registers it as ``workflowv2``)
CLOUD_CONFIGS = {"embedded": "cloud.yaml", "distributed": "cloud-distributed.yaml"}
CLOUD_CONFIG = CLOUD_CONFIGS["embedded"]


#: seconds of "changes-since" margin the lab's Mistral uses (production: 120)
LAB_CLOCK_MARGIN = 5


def cloud_config_path(mode="embedded"):
    """The cloud config file of the Mistral in ``mode``."""
    return state.service_dir("selfheal") / CLOUD_CONFIGS[mode]


def render_cloud_config(nova_info, endpoints, mode="embedded"):
    """The cloud config (a dict) for the Mistral in ``mode``, from Nova's
    endpoints entry and the lab's ``endpoints.json`` (``endpoints``).

    ``endpoints``: ``compute``, and ``orchestration`` (Heat), ``rca``
    (Vitrage's event API) and ``workflowv2`` (that Mistral's own v2 URL, where
    the actions start executions) when the lab runs them. Top-level
    ``prometheus: {"url"}`` when the lab runs Prometheus, and
    ``fencing_inventory`` when it runs BMCs.
    """
    urls = {"compute": nova_info["compute_url"]}
    headers = dict(nova_info["headers"])
    heat_info = endpoints.get(heat.KEY)
    if heat_info:
        urls["orchestration"] = heat_info["orchestration_url"]
        headers.update(heat_info["headers"])
    vitrage_info = endpoints.get(vitrage.SERVICE)
    if vitrage_info:
        urls["rca"] = vitrage_info["url"]
    mistral_info = endpoints.get(mistral.MODES[mode]["key"])
    if mistral_info:
        urls["workflowv2"] = mistral_info["url"]
    config = {"endpoints": urls, "headers": headers, "verify": False}
    prometheus_info = endpoints.get(prometheus.KEY)
    if prometheus_info:
        config["prometheus"] = {"url": prometheus_info["url"],
                                "query": f'up{{job="{prometheus.JOB}"}}'}
    bmc_info = endpoints.get(bmc.KEY)
    if bmc_info:  # the BMC passwords stay in that 0600 file, never here
        config["fencing_inventory"] = bmc_info["inventory"]
    return config


def write_cloud_config(nova_info, mode=None):
    """The explicit endpoint file the actions read in a Mistral without Keystone
    (:func:`render_cloud_config`), one per Mistral mode.

    The actions read it on every call, so adding services later needs no
    Mistral restart. JSON is valid YAML, so the stdlib writes what the
    actions parse.

    :param mode: the Mistral mode whose file to write; None: the embedded
        one's, and the distributed one's when that Mistral runs or ran.
    :returns: the path of ``mode``'s file (the embedded one's for None).
    """
    endpoints = state.read_endpoints()
    modes = [mode] if mode else [
        m for m in CLOUD_CONFIGS
        if m == "embedded" or mistral.MODES[m]["key"] in endpoints
        or cloud_config_path(m).exists()]
    for m in modes:
        path = cloud_config_path(m)
        text = json.dumps(render_cloud_config(nova_info, endpoints, m), indent=2,
                          sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return cloud_config_path(mode or "embedded")


def cloud_configs():
    """What the cloud config files name now, for ``selfheal-lab status``:
    ``{mode: {"path", "workflowv2", "prometheus"}}`` for each file written."""
    shown = {}
    for mode in CLOUD_CONFIGS:
        path = cloud_config_path(mode)
        try:
            config = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            continue
        shown[mode] = {"path": str(path),
                       "workflowv2": config.get("endpoints", {}).get("workflowv2"),
                       "prometheus": config.get("prometheus")}
    return shown


def load_workbooks(url, token=None):
    """Create or update every shipped workbook in the Mistral at ``url``.

    :param token: for a Mistral with Keystone auth; the workbooks are then
        made public, so that every project can run them.
    """
    from selfheal_tools import data

    names = []
    for path in data.workbook_paths():
        mistral_client.create_or_update_workbook(url, path.read_text(), token=token,
                                                 scope="public" if token else None)
        names.append(path.name)
    return names


def up(hosts=nova.DEFAULT_HOSTS, mode="embedded", driver=nova.DEFAULT_DRIVER,
       report_interval=None, service_down_time=None):
    """Start (or keep) Nova and Mistral; return the endpoints of both.

    :param hosts: compute host names for a fresh Nova (a running one keeps
        its hosts).
    :param mode: ``embedded`` (one process, sqlite) or ``distributed``
        (mistral-server api/engine/executor over RabbitMQ and PostgreSQL).
    :param report_interval: Nova's heartbeat interval, seconds (None: the
        lab's 1 s, or ``SELFHEAL_LAB_REPORT_INTERVAL``).
    :param service_down_time: Nova's down time, seconds (None: the lab's
        6 s, or ``SELFHEAL_LAB_SERVICE_DOWN_TIME``). A running Nova with other
        timings is replaced.
    """
    nova_info = nova.up(hosts=hosts, driver=driver, report_interval=report_interval,
                        service_down_time=service_down_time)
    config = write_cloud_config(nova_info, mode)
    # the lab's clocks are one: a short margin lets the tests reach the cases
    # that happen after it in seconds instead of minutes
    mistral_info = mistral.up(mode=mode, env={"SELFHEAL_CLOUD_CONFIG": str(config),
                                              "SELFHEAL_CLOCK_MARGIN": str(LAB_CLOCK_MARGIN)})
    write_cloud_config(nova_info, mode)  # now with Mistral's own URL (workflowv2)
    loaded = load_workbooks(mistral_info["url"])
    progress.step(f"workbooks loaded into Mistral ({mode}): {', '.join(loaded)}")
    return {"nova": nova_info, "mistral": mistral_info, "cloud_config": str(config)}


def up_vitrage(templates_dir=None, **up_kwargs):
    """Start (or keep) the lab as :func:`up` does, then Vitrage on it.

    :param templates_dir: Vitrage templates folder (default the project's
        ``vitrage_templates``); Vitrage restarts when a file in it changed.
    :param up_kwargs: passed to :func:`up`.
    :returns: :func:`up`'s result plus ``"vitrage"`` (its endpoints).
    """
    result = up(**up_kwargs)
    result["vitrage"] = vitrage.up(templates_dir=templates_dir)
    write_cloud_config(result["nova"])  # now with Vitrage's endpoint (rca)
    return result


def up_autoheal(**up_kwargs):
    """Start (or keep) the lab as :func:`up` does, plus Heat and Zaqar (the
    Heat autohealing flow). Their backends (RabbitMQ, MariaDB, Redis) are the
    machine's when they answer, else private ones.

    :returns: :func:`up`'s result plus ``"heat"`` and ``"zaqar"``.
    """
    heat_info = heat.up()
    zaqar_info = zaqar.up()
    result = up(**up_kwargs)  # rewrites the cloud config with Heat in it
    result.update(heat=heat_info, zaqar=zaqar_info)
    return result


def up_with(services=(), bmc_tls=None, **up_kwargs):
    """Start (or keep) the lab as :func:`up` does, plus the optional services
    named: ``heat`` (Heat and Zaqar, :func:`up_autoheal`), ``vitrage``,
    ``prometheus`` (:func:`up_prometheus`), ``bmc`` (:func:`up_bmc`;
    ``bmc_tls``: its Redfish emulator over HTTPS) and ``masakari``
    (:func:`up_masakari`, with Masakari's default options).

    :raises ValueError: for a service name the lab does not know.
    :returns: :func:`up`'s result plus an entry per service started.
    """
    unknown = sorted(set(services) - set(OPTIONAL_SERVICES))
    if unknown:
        raise ValueError(f"unknown lab service(s) {unknown}: use "
                         f"{', '.join(OPTIONAL_SERVICES)}")
    result = up_autoheal(**up_kwargs) if "heat" in services else up(**up_kwargs)
    if "vitrage" in services:
        result["vitrage"] = vitrage.up()
        write_cloud_config(result["nova"])  # now with Vitrage's endpoint (rca)
    if "prometheus" in services:
        result["prometheus"] = up_prometheus(result["nova"])
    if "bmc" in services:
        result["bmc"] = up_bmc(result["nova"], tls=bmc_tls)
    if "masakari" in services:
        result["masakari"] = up_masakari()
    return result


def up_masakari(**options):
    """Masakari's API and engine on the running lab's Nova, behind the lab's
    Keystone (started, with the Nova box's Keystone door, when they are not).

    :param options: Masakari options (:data:`masakari.OPTIONS`); the others
        keep Masakari's defaults. A Masakari running with others restarts.
    :returns: the masakari endpoints entry (``url``, ``options``, ...).
    """
    return masakari.up(**options)


def _running_hosts(nova_info):
    """The lab's compute hosts running now (a kept box also remembers hosts
    tests removed)."""
    running = {h["host"] for h in nova.hosts() if h["running"]}
    return [h for h in nova_info["hosts"] if h in running]


def up_prometheus(nova_info):
    """Prometheus and a node exporter for every running compute host of the
    lab (:mod:`selfheal_lab.services.prometheus`); the cloud config names it
    (``prometheus: {url}``). Returns once every host was scraped.

    :returns: the prometheus endpoints entry.
    """
    info = prometheus.up(_running_hosts(nova_info))
    write_cloud_config(nova_info)
    return info


def down_prometheus(nova_info):
    """Stop Prometheus and the exporters; the cloud config no longer names it."""
    prometheus.down()
    write_cloud_config(nova_info)


def up_bmc(nova_info, ipmi_hosts=None, tls=None):
    """The BMCs (:mod:`selfheal_lab.services.bmc`) for every running compute
    host of the lab, Redfish for all but the last, which gets an IPMI BMC (unless
    ``ipmi_hosts`` names others); the cloud config names their inventory.

    :param tls: True: the Redfish emulator serves HTTPS with a CA of the
        lab's, which the inventory names; None: as it is.
    :returns: the bmc endpoints entry.
    """
    hosts = _running_hosts(nova_info)
    ipmi = list(hosts[-1:] if ipmi_hosts is None else ipmi_hosts)
    info = bmc.up([h for h in hosts if h not in ipmi], ipmi, tls=tls)
    write_cloud_config(nova_info)
    return info


def down_bmc(nova_info):
    """Stop the BMCs; the cloud config no longer names an inventory."""
    bmc.down()
    write_cloud_config(nova_info)


def up_authenticated(hosts=nova.DEFAULT_HOSTS, driver=nova.DEFAULT_DRIVER, with_alarms=False):
    """Start (or keep) the authenticated lab: Keystone, Nova in a box with its
    Keystone door, and Mistral in ``authenticated`` mode with the workbooks
    (public, loaded as the lab's admin). Catalog: ``identity``, ``compute``
    (the Keystone door) and ``workflowv2``.

    The Mistral gets no explicit endpoint file: the actions use the caller's
    token and the catalog in it, as in production.

    :param with_alarms: also the alarm chain: Heat and Zaqar behind Keystone
        (catalog ``orchestration``, ``messaging``) and Aodh (``alarming``).
    :returns: ``{"keystone", "nova", "mistral"}`` endpoints entries (and
        ``"heat"``, ``"zaqar"``, ``"aodh"`` with alarms).
    """
    identity = keystone.up()
    result = {"keystone": identity}
    if with_alarms:
        result.update(heat=heat.up(authenticated=True), zaqar=zaqar.up(with_keystone=True),
                      aodh=aodh.up())
    nova_info = nova.up(hosts=hosts, driver=driver)
    nova.open_keystone_door()
    mistral_info = mistral.up(mode="authenticated")
    keystone.register_endpoint("workflowv2", "mistral", mistral_info["url"])
    loaded = load_workbooks(mistral_info["url"], token=keystone.token()[0])
    progress.step(f"workbooks loaded into Mistral (authenticated): {', '.join(loaded)}")
    result.update(nova=state.read_endpoints()[nova.SERVICE], mistral=mistral_info,
                  hosts=nova_info["hosts"])
    return result


def down_mistral(mode):
    """Stop only Mistral in ``mode`` (the rest of the lab keeps running)."""
    mistral.down(mode=mode)


def down():
    """Stop every lab process (by the PIDs the lab recorded) and the private
    backends, then drop what the lab created on the machine's shared ones
    (databases, virtual hosts, a Redis database: :mod:`selfheal_lab.ledger`).
    One that cannot be dropped is reported, with how to drop it by hand, and
    kept in the ledger for the next ``down``."""
    from selfheal_lab import ledger

    vitrage.down()
    masakari.down()
    bmc.down()
    prometheus.down()
    aodh.down()
    zaqar.down()
    heat.down()
    keystone.down()
    for mode in ("authenticated", "distributed", "embedded"):
        mistral.down(mode=mode)
    nova.down()
    for mode in CLOUD_CONFIGS:  # they would name stopped services; up writes them anew
        cloud_config_path(mode).unlink(missing_ok=True)
    stopped = backends.down()
    if stopped:
        progress.step(f"private backends stopped: {', '.join(stopped)}")
    ledger.drop_all({ledger.POSTGRES_DATABASE: mistral.drop_database,
                     ledger.MARIADB_DATABASE: heat.drop_database,
                     ledger.RABBITMQ_VHOST: backends.drop_vhost,
                     ledger.REDIS_DATABASE: zaqar.drop_redis_db})
    progress.step("lab stopped")


def status():
    return {"nova": nova.status(), "mistral": mistral.status(),
            "vitrage": vitrage.status(), "heat": heat.status(), "zaqar": zaqar.status(),
            "keystone": keystone.status(), "aodh": aodh.status(), "bmc": bmc.status(),
            "prometheus": prometheus.status(), "masakari": masakari.status(),
            "cloud_config": cloud_configs(),
            "heat_authenticated": heat.status(authenticated=True),
            "private_backends": backends.running_private(),
            "endpoints": state.read_endpoints()}
