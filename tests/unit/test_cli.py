from selfheal_actions import cli
from selfheal_actions import data


def test_check_passes_on_the_shipped_files(capsys):
    assert cli.main(["check"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_check_names_the_file_and_the_fix_and_fails(tmp_path, capsys):
    broken = tmp_path / "host_failure.yaml"
    text = (data.workbooks_dir() / "host_failure.yaml").read_text()
    broken.write_text(text.replace("action: selfheal.fence_host", "action: selfheal.fense_host"))
    assert cli.main(["check", str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"{broken}: workflow evacuate_host, task fence: unknown action 'selfheal.fense_host'" \
        in out
