"""Serve Keystone's public WSGI application on 127.0.0.1 (runs in the
keystone venv; Keystone 30 ships no server script of its own).

    python keystone_server.py --config-file keystone.conf --port P
"""

import argparse
import os
import socketserver
import sys
from wsgiref import simple_server

# This folder holds the lab's keystone.py: keep it from shadowing Keystone.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request is noise
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = args.config_file
    sys.argv = sys.argv[:1]  # keystone parses the command line itself
    from keystone.server import wsgi

    application = wsgi.initialize_public_application()
    server = simple_server.make_server("127.0.0.1", args.port, application,
                                       server_class=_Server, handler_class=_QuietHandler)
    print(f"READY {{\"port\": {args.port}}}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
