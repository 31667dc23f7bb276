# SPDX-License-Identifier: Apache-2.0
"""Bad input to any shipped workflow, through the real Mistral: a clear error
from the first task, and nothing read or changed in Nova.

The values come from the same generator as the unit test over the rule set
(``tests/unit/test_workflow_inputs.py``); here a few per workflow go
through Mistral itself, where YAQL would have evaluated them.
"""

import pytest
import yaml

from selfheal_lab.services import nova as nova_box
from selfheal_tools import data

#: per input, a value a typo or a wrong tool produces
BAD = {"dry_run": "nope", "timeout": "abc", "concurrency": "NaN", "force": 1,
       "max_down_ratio": "nan", "wait_seconds": 1e12, "instance_ids": [5],
       "fencing_workflow": 5, "require_monitoring": "yes", "host": "x" * 10000}


def cases():
    for path in data.workbook_paths():
        spec = yaml.safe_load(path.read_text())
        for name, workflow in spec["workflows"].items():
            declared = [next(iter(i)) if isinstance(i, dict) else i
                        for i in workflow.get("input") or []]
            required = [i for i in workflow.get("input") or [] if not isinstance(i, dict)]
            for bad in [b for b in BAD if b in declared][:3]:
                yield f"{spec['name']}.{name}", required, bad


CASES = list(cases())


@pytest.mark.parametrize("workflow,required,bad", CASES,
                         ids=[f"{w.split('.', 1)[1]}:{b}" for w, _, b in CASES])
def test_bad_input_ends_at_the_first_task_and_touches_nothing(cloud, workflow, required,
                                                             bad):
    workflow_input = {name: f"some-{name}" for name in required}
    if "instance_ids" in required:
        workflow_input["instance_ids"] = ["00000000-0000-0000-0000-000000000000"]
    workflow_input[bad] = BAD[bad]
    nova_box.reset_request_counts()
    execution = cloud.run_workflow(workflow, workflow_input, timeout=60)
    assert execution["state"] == "ERROR", execution["output"]
    error = execution["output"]["error"]
    assert error["reason"] == "invalid_input" and f"'{bad}'" in error["message"], error
    assert len(error["message"]) < 300 and error["changes"] == []
    if "failed_step" in execution["output"]:
        assert execution["output"]["failed_step"] == "check_inputs"
    assert nova_box.request_counts()["total"] == 0
