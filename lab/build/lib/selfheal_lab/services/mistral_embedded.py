# SPDX-License-Identifier: Apache-2.0
"""Mistral in one process: API, engine and periodic server, no message broker.

Run by the Mistral venv's interpreter (it imports Mistral, never selfheal_lab)::

    python mistral_embedded.py --config-file mistral.conf            # serve
    python mistral_embedded.py --config-file mistral.conf --setup-db # schema, exit

``mistral-server --server all`` forks one process per component, so the
in-memory ``fake:/`` transport cannot connect them. Here every component runs
in this one process under oslo.service's threading ``Launcher``; the config
must say ``transport_url = fake:/``, ``[executor] type = local`` and
``[notifier] type = local`` so that actions run inside the engine.

The sqlite schema cannot be built with ``mistral-db-manage upgrade head``
(alembic alters constraints, which sqlite cannot), so ``--setup-db`` creates
it from the models; the caller then stamps it (``mistral-db-manage stamp
head``) and populates the standard actions and workflows.
"""

import os
import sys

# This file sits next to the lab's own ``mistral.py``: drop its folder from
# the import path or ``import mistral`` would find that module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Must come before any other Mistral import: it selects oslo.service's
# threading backend (no eventlet).
import mistral.cmd  # noqa: E402,F401  isort:skip

import signal  # noqa: E402
import threading  # noqa: E402

from mistral import config  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402
from oslo_service import service  # noqa: E402

CONF = cfg.CONF
LOG = logging.getLogger("selfheal.mistral_embedded")


def _parse(argv):
    setup_only = "--setup-db" in argv
    args = [a for a in argv if a != "--setup-db"]
    config.parse_args(args)
    logging.setup(CONF, "Mistral")
    return setup_only


def _check_config():
    problems = []
    if not str(CONF.transport_url or "").startswith("fake:"):
        problems.append("transport_url must be fake:/")
    if CONF.executor.type != "local":
        problems.append("[executor] type must be local")
    if CONF.notifier.type != "local":
        problems.append("[notifier] type must be local")
    if problems:
        sys.exit("mistral_embedded: " + "; ".join(problems))


def setup_db():
    from mistral.db.v2 import api as db_api

    db_api.setup_db()


def serve():
    from mistral.api import service as api_service
    from mistral.engine import engine_server
    from mistral.rpc import base as rpc
    from mistral.services import periodic_server

    rpc.get_transport()  # also registers transport_url
    _check_config()

    launcher = service.Launcher(CONF, restart_method="mutate")
    launcher.launch_service(engine_server.get_oslo_service())
    if CONF.cron_trigger.enabled:
        launcher.launch_service(periodic_server.get_oslo_service())
    launcher.launch_service(api_service.WSGIService("mistral_api"))

    def on_signal(signo, _frame):
        # Stopping from inside the handler deadlocks on the services' own
        # locks, and the threads left behind keep the process alive: stop in
        # a helper thread, give it a few seconds, then leave regardless.
        LOG.info("signal %s: stopping Mistral", signo)
        stopper = threading.Thread(target=launcher.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    LOG.info("Mistral (embedded) serving on http://%s:%s/v2", CONF.api.host, CONF.api.port)
    launcher.wait()
    os._exit(0)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    setup_only = _parse(argv)
    if setup_only:
        setup_db()
        return 0
    setup_db()  # creates missing tables only: harmless on an existing schema
    serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
