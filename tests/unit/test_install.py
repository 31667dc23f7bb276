# SPDX-License-Identifier: Apache-2.0
"""``selfheal install`` finds each of our actions by name, and the README,
the install page and the installer say the same about where to install."""

import pathlib
import re

from selfheal_tools import install
from selfheal_tools import workbook_checks

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Answer:
    def __init__(self, status, body=None):
        self.status_code, self._body, self.text = status, body or {}, str(body)

    def json(self):
        return self._body


class Mistral:
    """Answers like Mistral 23's API: an action by name, or 404. A list
    without paging would return only the first 100 of thousands."""

    def __init__(self, registered, workbooks=None):
        self.registered, self.workbooks, self.calls = set(registered), workbooks or {}, []

    def get(self, url, raise_exc=False, **kwargs):
        self.calls.append(("GET", url, kwargs.get("params")))
        path = url.split("/v2", 1)[1]
        if path == "/actions":
            names = sorted(self.registered | {f"nova.action_{i}" for i in range(3000)})
            return Answer(200, {"actions": [{"name": n} for n in names[:100]]})
        if path.startswith("/actions/"):
            name = path.split("/", 2)[2]
            return Answer(200, {"name": name}) if name in self.registered else Answer(404)
        name = path.split("/", 2)[2]
        if name in self.workbooks:
            return Answer(200, {"definition": self.workbooks[name]})
        return Answer(404)

    def request(self, url, method, data=None, **kwargs):
        self.calls.append((method, url, None))
        return Answer(201)


def test_each_action_is_found_by_name_among_thousands(monkeypatch):
    ours = sorted(workbook_checks.selfheal_actions())
    mistral = Mistral(ours[1:])
    monkeypatch.setattr(install, "mistral_session", lambda url=None: (mistral, "http://m/v2"))
    result = install.install(dry_run=True)
    assert result["missing_actions"] == [ours[0]]
    looked_up = [url for method, url, _ in mistral.calls if "/actions" in url]
    assert looked_up == [f"http://m/v2/actions/{name}" for name in ours]
    assert all(method == "GET" for method, _, _ in mistral.calls), "dry run changed something"


def test_describe_says_which_nodes_need_the_package():
    lines = install.describe({"mistral": "http://m/v2", "workbooks": [], "dry_run": False,
                              "missing_actions": ["selfheal.fence_host"]})
    assert install.WHERE_TO_INSTALL in lines[-1]


def _words(text):
    return re.sub(r"\s+", " ", text)


def test_readme_and_install_page_say_the_same_about_where_to_install():
    for page in ("README.rst", "doc/source/install.rst"):
        assert install.WHERE_TO_INSTALL in _words((ROOT / page).read_text()), page
