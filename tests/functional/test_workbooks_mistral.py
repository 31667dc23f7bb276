# SPDX-License-Identifier: Apache-2.0
"""Every shipped workbook is parsed by Mistral's own DSL parser.

The parser runs in the lab's Mistral virtual environment (Mistral's pins
conflict with Nova's, so it is not in the test environment), through the
same code as ``selfheal validate``; the running lab Mistral validates the
same text through its API.
"""

import pytest

from selfheal_lab import mistral_client
from selfheal_lab import venvs
from selfheal_tools import cli
from selfheal_tools import data
from selfheal_tools import platform_parsers


@pytest.mark.parametrize("path", data.workbook_paths(), ids=lambda p: p.name)
def test_mistral_parser_accepts_workbook(lab_info, path):
    parsed = platform_parsers.run("mistral", str(venvs.python("mistral")), [path])[str(path)]
    assert parsed["ok"], parsed
    assert parsed["workflows"]
    assert mistral_client.validate_workbook(lab_info["mistral"]["url"], path.read_text())["valid"]


def test_mistral_parser_rejects_a_broken_copy(lab_info, tmp_path):
    text = (data.workbooks_dir() / "host_failure.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("on-error:\n          - fail", "on-eror:\n          - fail", 1))
    parsed = platform_parsers.run("mistral", str(venvs.python("mistral")), [broken])[str(broken)]
    assert not parsed["ok"]
    assert "on-eror" in parsed["error"]


def test_validate_runs_both_real_parsers(lab_info, tmp_path, capsys):
    """`selfheal validate` with the lab's venvs: Mistral's parser and Vitrage's validator."""
    venvs.ensure("vitrage")
    workbook = tmp_path / "workbook.yaml"
    workbook.write_text((data.workbooks_dir() / "host_failure.yaml").read_text().replace(
        "on-error:\n          - fail", "on-eror:\n          - fail", 1))
    template = tmp_path / "template.yaml"
    template.write_text((data.vitrage_templates_dir() / "host_failure.yaml").read_text()
                        .replace("[on] host AND NOT", "[on] hots AND NOT", 1))

    code = cli.main(["validate", str(workbook), str(template),
                     "--mistral-python", str(venvs.python("mistral")),
                     "--vitrage-python", str(venvs.python("vitrage"))])

    out = capsys.readouterr().out
    assert code == 1
    assert "mistral parser" in out and "0 of 1 valid" in out
    assert f"{workbook}: " in out and "on-eror" in out
    assert f"{template}: Vitrage code 10200" in out
