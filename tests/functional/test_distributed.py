# SPDX-License-Identifier: Apache-2.0
"""The host failure flow on Mistral's distributed mode.

Stock ``mistral-server`` runs api, engine, executor, notifier and periodic
as separate processes over RabbitMQ and PostgreSQL; our actions run in the
remote executor. This is how users scale beyond one machine.
"""

import configparser
import json

import pytest

from selfheal_lab import lab
from selfheal_lab import scenario
from selfheal_lab import state
from tests.functional import test_mistral_cron

WF = "selfheal.host_failure.evacuate_host"


@pytest.fixture(scope="module")
def distributed(lab_info):
    info = lab.up(mode="distributed")
    yield info["mistral"]
    lab.down_mistral("distributed")


def test_host_failure_flow_in_distributed_mode(distributed, make_hosts):
    config = configparser.ConfigParser(interpolation=None)
    config.read(distributed["config"])
    assert config["executor"]["type"] == "remote"
    assert config["DEFAULT"]["transport_url"].startswith("rabbit://")
    assert config["database"]["connection"].startswith("postgresql")

    cloud = scenario.LabCloud("mistral_distributed")
    failed, _, _ = make_hosts(3)
    running = cloud.boot("running", failed)
    stopped = cloud.boot("stopped", failed, state="stopped")
    cloud.fail_host(failed)

    execution = cloud.run_workflow(WF, {"host": failed})

    assert execution["state"] == "SUCCESS", execution.get("output")
    for server, status in ((running, "ACTIVE"), (stopped, "SHUTOFF")):
        assert getattr(cloud.server(server), "OS-EXT-SRV-ATTR:host") != failed
        assert cloud.server(server).status == status
        assert len(cloud.evacuations(server)) == 1
    # the actions ran in Mistral's executor process, which logged them
    with open(distributed["log"]) as log:
        assert f"{failed} running: evacuation 1 requested" in log.read()


def test_a_six_field_cron_trigger_fires_in_the_distributed_mistral(distributed):
    # the periodic component runs in its own process here
    executions = test_mistral_cron.cron_fires(distributed["url"])
    test_mistral_cron.check(executions)


def test_the_distributed_mistral_has_its_own_cloud_config_naming_it(distributed):
    config = json.loads(lab.cloud_config_path("distributed").read_text())
    assert config["endpoints"]["workflowv2"] == distributed["url"]
    embedded = json.loads(lab.cloud_config_path("embedded").read_text())
    assert embedded["endpoints"]["workflowv2"] == state.read_endpoints()["mistral"]["url"]
    assert embedded["endpoints"]["workflowv2"] != distributed["url"]
