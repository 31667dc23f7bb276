"""Every shipped workbook is parsed by Mistral's own DSL parser.

The parser runs in the lab's Mistral virtual environment (Mistral's pins
conflict with Nova's, so it is not in the test environment), and the
running lab Mistral validates the same text through its API.
"""

import json
import subprocess

import pytest

from selfheal_actions import data
from selfheal_lab import mistral_client
from selfheal_lab import venvs

PARSE = """
import json, sys
from mistral.lang import parser
try:
    spec = parser.get_workbook_spec_from_yaml(open(sys.argv[1]).read())
    print(json.dumps({"ok": True, "workflows": sorted(w.get_name() for w in spec.get_workflows())}))
except Exception as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
"""


def parse_with_mistral(path):
    out = subprocess.run([str(venvs.python("mistral")), "-c", PARSE, str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", data.workbook_paths(), ids=lambda p: p.name)
def test_mistral_parser_accepts_workbook(lab_info, path):
    parsed = parse_with_mistral(path)
    assert parsed["ok"], parsed
    assert parsed["workflows"]
    assert mistral_client.validate_workbook(lab_info["mistral"]["url"], path.read_text())["valid"]


def test_mistral_parser_rejects_a_broken_copy(lab_info, tmp_path):
    text = (data.workbooks_dir() / "host_failure.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("on-error:\n          - fail", "on-eror:\n          - fail", 1))
    parsed = parse_with_mistral(broken)
    assert not parsed["ok"]
    assert "on-eror" in parsed["error"]
