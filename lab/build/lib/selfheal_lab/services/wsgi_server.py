# SPDX-License-Identifier: Apache-2.0
"""Serve an OpenStack service's WSGI application on 127.0.0.1 (runs in the
service's venv). Keystone 30 and Aodh 23 ship no server script of their own::

    python wsgi_server.py --app keystone --config-file keystone.conf --port P
    python wsgi_server.py --app aodh --config-file aodh.conf --port P

Prints ``READY {"port": P}`` once it listens.
"""

import argparse
import os
import socketserver
import sys
from wsgiref import simple_server

# This folder holds the lab's keystone.py and aodh.py: keep them from
# shadowing the services' packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request is noise
        pass


def _keystone(config_file):
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config_file
    sys.argv = sys.argv[:1]  # keystone parses the command line itself
    from keystone.server import wsgi

    return wsgi.initialize_public_application()


def _aodh(config_file):
    from aodh.api import app

    return app.build_wsgi_app(argv=["--config-file", config_file])


APPS = {"keystone": _keystone, "aodh": _aodh}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", choices=sorted(APPS), required=True)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    application = APPS[args.app](args.config_file)
    server = simple_server.make_server("127.0.0.1", args.port, application,
                                       server_class=_Server, handler_class=_QuietHandler)
    print(f"READY {{\"port\": {args.port}}}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
