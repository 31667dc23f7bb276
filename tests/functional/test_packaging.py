"""The built wheel carries what Mistral needs: actions, entry points, YAML."""

import subprocess
import sys
import zipfile

from selfheal_lab import state


def test_wheel_ships_entry_points_workbooks_and_lab_requirements(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(state.SOURCE_ROOT)], check=True)
    (wheel,) = tmp_path.glob("selfheal-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("workbooks/host_failure.yaml", "workbooks/autoheal.yaml",
                    "vitrage_templates/host_failure.yaml", "heat_templates/autohealing_group.yaml",
                    "heat_templates/autohealing_member.yaml"):
        assert any(n.endswith(f"data/share/selfheal/{shipped}") for n in names), shipped
    assert "selfheal_actions/evacuation.py" in names
    assert "selfheal_lab/requirements/nova.txt" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[mistral.actions]" in text
    assert "selfheal.evacuate_and_verify = selfheal_actions.evacuation:EvacuateAndVerifyAction" \
        in text
    assert "selfheal.mark_unhealthy = selfheal_actions.autoheal:MarkUnhealthyAction" in text
    assert "[mistral.expression.functions]" in text
    assert "selfheal_alarm = selfheal_actions.yaql_functions:selfheal_alarm" in text
