# SPDX-License-Identifier: Apache-2.0
"""What the fake services answer: a response shaped like a requests one."""

import json


class Response:
    """``status_code``, ``content``, ``text`` and ``json()`` of a JSON body."""

    def __init__(self, status, body=None):
        self.status_code = status
        self.content = b"" if body is None else json.dumps(body).encode()
        self.text = self.content.decode()

    def json(self):
        return json.loads(self.content)
