# SPDX-License-Identifier: Apache-2.0
"""Drive the lab's cloud like an operator would: boot, fail, heal, look.

Used by the functional tests, the demo and the benchmark. Talks to the lab's
real Nova with python-novaclient and to Mistral over its REST API.
"""

import time

from selfheal_lab import mistral_client
from selfheal_lab import state
from selfheal_lab.services import nova as nova_box
from selfheal_lab.services import prometheus

FLAVOR = "m1.tiny"


class LabCloud:
    """The running lab, from ``endpoints.json``.

    :param mistral_key: ``mistral`` (embedded) or ``mistral_distributed``.
    """

    def __init__(self, mistral_key="mistral"):
        endpoints = state.read_endpoints()
        self.nova_info = endpoints["nova"]
        self.mistral_key = mistral_key
        self._clients = {}  # novaclients by microversion
        self._image_id = None

    @property
    def mistral_url(self):
        """Mistral's URL, read each time: a Mistral the lab restarted (a test
        that kills it) may listen on another port."""
        return state.read_endpoints()[self.mistral_key]["url"]

    def nova(self, microversion="2.96"):
        """A novaclient on the lab's Nova at ``microversion``."""
        if microversion not in self._clients:
            from keystoneauth1 import session
            from keystoneauth1 import token_endpoint
            from novaclient import client

            url = self.nova_info["compute_url"]
            sess = session.Session(auth=token_endpoint.Token(url, "lab"),
                                   additional_headers=self.nova_info["headers"])
            self._clients[microversion] = client.Client(microversion, session=sess,
                                                        endpoint_override=url)
        return self._clients[microversion]

    # hosts
    def add_hosts(self, *names):
        """Start compute hosts and wait until Nova sees them up; when the lab
        runs Prometheus, each gets a node exporter, scraped before this returns."""
        for name in names:
            nova_box.add_host(name)
        self.wait_services(names, "up")
        if prometheus.running():
            prometheus.add_hosts(names)
        return list(names)

    def service(self, host):
        return next(s for s in self.nova().services.list(binary="nova-compute")
                    if s.host == host)

    def up_hosts(self):
        """Compute hosts Nova sees up and enabled."""
        return {s.host for s in self.nova().services.list(binary="nova-compute")
                if s.state == "up" and s.status == "enabled"}

    def wait_services(self, hosts, state_wanted, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            states = {s.host: s.state for s in self.nova().services.list(binary="nova-compute")}
            if all(states.get(h) == state_wanted for h in hosts):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"hosts {hosts} not {state_wanted}: {states}")
            time.sleep(0.3)

    def fail_host(self, host, wait_down=True):
        """Stop the host's nova-compute (a host failure); wait until Nova sees it."""
        nova_box.stop_host(host)
        if wait_down:
            self.wait_services([host], "down")

    def revive_host(self, host):
        """Start the host again and put its service back as it was."""
        nova_box.start_host(host)
        svc = self.service(host)
        if svc.forced_down:
            self.nova().services.force_down(svc.id, False)
        if svc.status == "disabled":
            self.nova().services.enable(svc.id)
        self.wait_services([host], "up")

    # servers
    def boot(self, name, host, state="active", metadata=None, wait=True):
        """Boot a server pinned to ``host``; ``state``: active, stopped, error,
        locked or paused (each reached through the real API)."""
        nova = self.nova()
        flavor = nova.flavors.find(name=FLAVOR)
        server = nova.servers.create(name, self.image_id(), flavor.id, nics="none",
                                     availability_zone=f"nova:{host}", meta=metadata or {})
        if wait:
            self.wait_servers([server.id], "ACTIVE")
            self.set_state(server.id, state)
        return server.id

    def boot_many(self, prefix, host, count, metadata=None, batch=20):
        """Boot ``count`` servers on ``host``, ``batch`` at a time; return their ids.

        Batches keep the one-process Nova from drowning in a hundred builds
        and the status polls that watch them.
        """
        ids = []
        for first in range(0, count, batch):
            wave = [self.boot(f"{prefix}-{i:03d}", host, metadata=metadata, wait=False)
                    for i in range(first, min(first + batch, count))]
            self.wait_servers(wave, "ACTIVE", timeout=60 + 4 * len(wave))
            ids.extend(wave)
        return ids

    def set_state(self, server_id, state):
        nova = self.nova()
        if state == "stopped":
            nova.servers.stop(server_id)
            self.wait_servers([server_id], "SHUTOFF")
        elif state == "error":
            nova.servers.reset_state(server_id, "error")
        elif state == "locked":
            nova.servers.lock(server_id)
        elif state == "paused":
            nova.servers.pause(server_id)
            self.wait_servers([server_id], "PAUSED")

    def image_id(self):
        """The id of an image of the lab's Glance stand-in (read once)."""
        if self._image_id is None:
            self._image_id = nova_box.info()["images"][0]["id"]
        return self._image_id

    def wait_servers(self, ids, status, timeout=60):
        deadline = time.monotonic() + timeout
        wanted = set(ids)
        while True:
            # one detailed list per poll; only the wanted ones are looked at
            servers = {s.id: s for s in self.nova().servers.list(
                search_opts={"all_tenants": True}) if s.id in wanted}
            states = {i: getattr(servers.get(i), "status", "MISSING") for i in ids}
            if all(v == status for v in states.values()):
                return
            if "ERROR" in states.values() and status != "ERROR":
                raise RuntimeError(f"servers went to ERROR while waiting for {status}: {states}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"servers not {status}: {states}")
            time.sleep(min(1.0, 0.3 + len(ids) / 50))

    def server(self, server_id):
        return self.nova().servers.get(server_id)

    def evacuations(self, server_id):
        """Every evacuation migration record of a server."""
        return [m for m in self.nova().migrations.list(instance_uuid=server_id,
                                                        migration_type="evacuation")]

    # workflows
    def run_workflow(self, name, workflow_input, timeout=300, max_poll=0.5):
        """Start a workflow and wait for it; return the execution with parsed output.

        :param max_poll: the longest pause between two polls of its state
            (benchmarks poll as often as their baseline does).
        """
        execution = mistral_client.create_execution(self.mistral_url, name, workflow_input)
        return mistral_client.wait_execution(self.mistral_url, execution["id"], timeout=timeout,
                                             max_interval=max_poll)

    def start_workflow(self, name, workflow_input):
        return mistral_client.create_execution(self.mistral_url, name, workflow_input)

    def wait_workflow(self, execution_id, timeout=300):
        return mistral_client.wait_execution(self.mistral_url, execution_id, timeout=timeout)

    def remove_hosts(self, hosts):
        """Delete the servers on ``hosts``, stop them and delete their services."""
        nova = self.nova()
        servers = [s for s in nova.servers.list(search_opts={"all_tenants": True})
                   if getattr(s, "OS-EXT-SRV-ATTR:host", None) in hosts]
        for server in servers:
            nova.servers.delete(server.id)
        deadline = time.monotonic() + 60
        while servers and time.monotonic() < deadline:
            left = {s.id for s in nova.servers.list(search_opts={"all_tenants": True})}
            servers = [s for s in servers if s.id in left]
            time.sleep(0.3)
        for host in hosts:
            nova_box.stop_host(host)
        prometheus.remove_hosts(hosts)
        for svc in nova.services.list(binary="nova-compute"):
            if svc.host in hosts:
                nova.services.delete(svc.id)
