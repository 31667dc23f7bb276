# SPDX-License-Identifier: Apache-2.0
"""Host faults wired like hardware and networks are: what Nova sees and what
Prometheus sees change together.

Each compute host of the lab has a nova-compute in Nova in a box and, when
the lab runs Prometheus (:mod:`selfheal_lab.services.prometheus`), a node
exporter of its own. A real failure silences one, the other or both:

==================================  ====================  ===================
fault                               nova-compute          exporter (``up``)
==================================  ====================  ===================
:func:`kill_host`                   crashed (down)        dark (0)
BMC power Off / On                  crashed / started     dark / lit
:func:`cut_management_network`      stopped (down)        dark (0)
:func:`kill_nova_compute`           crashed or stopped    lit (1)
:func:`switch_blip`                 stopped, started      dark, lit N s later
                                    N s later
:func:`restore_host`                started (up)          lit (1)
==================================  ====================  ===================

The BMC's power stays On in every fault here; powering a host Off through
its BMC (Redfish or IPMI: :mod:`selfheal_lab.services.bmc`) crashes it in
Nova and darkens its exporter, and powering it On starts both again: the BMC
box does that itself.

Nova reports a silenced service ``down`` after its ``service_down_time``
(6 s in the lab); Prometheus's ``up`` drops to 0 within a scrape (1 s).
Without Prometheus in the lab the exporter half is skipped, so these work
on any lab. Stdlib only: this module runs in the test runner's Python.
"""

import threading

from selfheal_lab.services import nova
from selfheal_lab.services import prometheus


def kill_host(host):
    """The host dies (kernel panic, power supply, ...) while its BMC stays On:
    nova-compute crashes (nothing in flight completes) and the exporter goes
    dark (scrapes refused, ``up`` 0).

    :returns: ``{"nova": <box answer>, "exporter": <box answer> | None}``.
    """
    return {"exporter": prometheus.set_exporter(host, False), "nova": nova.crash_host(host)}


def kill_nova_compute(host, graceful=False):
    """Only nova-compute dies; the host and its exporter stay up (``up`` 1).

    :param graceful: stop it (the work in flight finishes) instead of
        crashing it.
    :returns: ``{"nova": <box answer>, "exporter": None}``.
    """
    answer = nova.stop_host(host) if graceful else nova.crash_host(host)
    return {"nova": answer, "exporter": None}


def cut_management_network(host):
    """The host's management network fails: nova-compute stops reporting
    (a graceful stop, as its guests keep running) and the exporter cannot be
    scraped (dark); the power stays On.

    :returns: ``{"nova": <box answer>, "exporter": <box answer> | None}``.
    """
    return {"exporter": prometheus.set_exporter(host, False), "nova": nova.stop_host(host)}


def restore_host(host):
    """Bring a host back from any of these faults: nova-compute started again
    (a restart, like a rebooted host's) and the exporter lit. It does not
    touch the BMC: a host powered Off there comes back with a power On.

    :returns: ``{"nova": <box answer>, "exporter": <box answer> | None}``.
    """
    return {"nova": nova.start_host(host), "exporter": prometheus.set_exporter(host, True)}


def silence_hosts(hosts):
    """Nothing gets through to or from ``hosts``: nova-compute stops
    reporting and the exporters go dark (the first half of a blip)."""
    return {h: cut_management_network(h) for h in hosts}


class Blip:
    """A running :func:`switch_blip`: :meth:`wait` until the hosts are back."""

    def __init__(self, hosts, seconds):
        self.hosts, self.seconds = list(hosts), seconds
        self.restored = {}
        self._timer = threading.Timer(seconds, self._restore)
        self._timer.daemon = True

    def _restore(self):
        for host in self.hosts:
            self.restored[host] = restore_host(host)

    def wait(self, timeout=None):
        """Wait for the restore; returns ``{host: restore_host answer}``."""
        self._timer.join(timeout)
        return dict(self.restored)

    def cancel_and_restore(self):
        """Restore the hosts now (a test cleaning up early)."""
        self._timer.cancel()
        self._timer.join()  # a restore already under way finishes first
        if len(self.restored) < len(self.hosts):
            self._restore()
        return dict(self.restored)


def switch_blip(hosts, seconds, wait=False):
    """A switch blip: ``hosts`` go silent together (nova-compute not
    reporting, exporters dark), and are restored ``seconds`` later
    (nova-compute started again, exporters lit), as when a top-of-rack
    switch reboots.

    Nova sees them ``down`` only if ``seconds`` outlasts its
    ``service_down_time`` (6 s in the lab); Prometheus sees ``up`` 0 within
    a scrape.

    :param wait: block until they are restored; by default return at once
        with a :class:`Blip` whose ``wait()`` does (the restore runs in a
        background thread of this process).
    :returns: the :class:`Blip`.
    """
    blip = Blip(hosts, seconds)
    silence_hosts(blip.hosts)
    blip._timer.start()
    if wait:
        blip.wait()
    return blip
