# SPDX-License-Identifier: Apache-2.0
"""Nova in a box counts its API requests per route and per client (the
``X-Bench-Client`` header): benchmarks attribute requests to who sent them
by differences of snapshots, so the per-client counts are never reset."""

import importlib.util

from selfheal_lab.services import nova


def box_module():
    spec = importlib.util.spec_from_file_location("nova_box_script", nova.BOX_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(counter, method, path, client=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if client:
        environ["HTTP_X_BENCH_CLIENT"] = client
    return counter(environ, lambda status, headers: None)


def test_requests_are_counted_per_route_and_per_client():
    counter = box_module().RequestCounter(lambda environ, start_response: [b"ok"])
    call(counter, "GET", "/v2.1/servers/detail", "harness")
    call(counter, "POST", "/v2.1/servers/0b9bd3b4-4a36-4d4c-9d77-2c5bb3b9a8a0/action", "floor")
    call(counter, "POST", "/v2.1/servers/5c1e7f3a-2d2b-4b0f-8a8e-9e6a3c1f0d11/action", "floor")
    call(counter, "GET", "/v2.1/os-migrations")
    snap = counter.snapshot()
    assert snap["total"] == 4
    assert snap["by_client"] == {"-": {"GET /os-migrations": 1},
                                 "floor": {"POST /servers/{id}/action": 2},
                                 "harness": {"GET /servers/detail": 1}}
    counter.reset()  # the global counter starts again; the per-client one does not
    assert counter.snapshot()["total"] == 0
    assert counter.snapshot()["by_client"]["floor"] == {"POST /servers/{id}/action": 2}
