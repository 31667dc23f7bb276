# SPDX-License-Identifier: Apache-2.0
"""Clients for the OpenStack services, built from what Mistral hands over.

Two ways in, chosen per call:

* **Keystone (production).** Mistral puts the caller's token and the whole
  token body (``service_catalog``) in ``context.security``. We wrap them in a
  keystoneauth1 ``AccessInfoPlugin``: endpoints come from that catalog and the
  token is used as it is. We never re-scope it, because a trust-scoped token
  (Zaqar and Aodh deliveries) cannot be re-scoped.
* **Explicit endpoints (a Mistral without Keystone, like the lab).** The
  security context is empty, so the endpoints come from a YAML file named by
  ``$SELFHEAL_CLOUD_CONFIG`` (see ``etc/selfheal/cloud.yaml.sample``), or from
  ``$SELFHEAL_COMPUTE_ENDPOINT`` for a quick try::

      endpoints:
        compute: http://nova.example:8774/v2.1
        orchestration: http://heat.example:8004/v1/<project id>
        rca: http://vitrage.example:8999  # optional (selfheal[vitrage])
      token: optional-static-token      # sent as X-Auth-Token
      headers: {X-Auth-User: admin}      # extra headers on every request
      region_name: RegionOne
      verify: true                       # or false, or a CA bundle path
      timeout: 30                        # seconds per HTTP request (default 30)

Every request has a timeout (30 s by default, well below the 60 s after
which a silent host claim is taken over): a hung API call fails, and the
actions retry the idempotent ones (:func:`compute.retried`).

The Nova microversion is negotiated with the server (the highest both sides
speak) unless a caller pins one.
"""

import os
import time

import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from keystoneauth1.access import access
from keystoneauth1.identity import access as access_plugin

from selfheal_actions.common.results import ActionFailure

CLOUD_CONFIG_ENV = "SELFHEAL_CLOUD_CONFIG"
#: seconds an HTTP request may take (connect and read); the cloud config's
#: ``timeout`` overrides it
HTTP_TIMEOUT = 30.0


def verify_setting(config):
    """TLS verification of the explicit config: true, false or a CA bundle."""
    return _verify(None, config)


def timeout_setting(config):
    """Seconds per request of the explicit config (30 by default)."""
    return _timeout(config)


def _security(context):
    return getattr(context, "security", None)


def explicit_config():
    """Return the explicit endpoint configuration ({} when none is set)."""
    path = os.environ.get(CLOUD_CONFIG_ENV)
    config = {}
    if path:
        try:
            with open(path) as f:
                config = yaml.safe_load(f) or {}
        except OSError as e:
            raise ActionFailure(
                "configuration_error",
                f"cannot read {CLOUD_CONFIG_ENV}={path}: {e.strerror}. Fix the path in the "
                "environment of the Mistral executor.") from None
    endpoints = dict(config.get("endpoints") or {})
    if os.environ.get("SELFHEAL_COMPUTE_ENDPOINT"):
        endpoints["compute"] = os.environ["SELFHEAL_COMPUTE_ENDPOINT"]
    config["endpoints"] = endpoints
    return config


def _timeout(config):
    try:
        value = float(config.get("timeout", HTTP_TIMEOUT))
    except (TypeError, ValueError):
        value = HTTP_TIMEOUT
    return value if 1 <= value <= 600 else HTTP_TIMEOUT


def _verify(security, config):
    if security is not None and getattr(security, "insecure", False):
        return False
    if security is not None and getattr(security, "auth_cacert", None):
        return security.auth_cacert
    return config.get("verify", True)


def session_for(context, service_type):
    """Return ``(session, endpoint_override, region_name)`` for a service.

    :param context: the Mistral action context (may be None in tools).
    :param service_type: catalog type, e.g. ``compute``.
    :raises ActionFailure: ``configuration_error`` when neither a token nor
        an explicit endpoint is available.
    """
    security = _security(context)
    config = explicit_config()
    token = getattr(security, "auth_token", None) if security is not None else None
    if token:
        body = getattr(security, "service_catalog", None) or {}
        if isinstance(body, list):  # a bare catalog, as older Mistrals send
            body = {"catalog": body}
        auth_ref = access.create(body={"token": body}, auth_token=token)
        plugin = access_plugin.AccessInfoPlugin(
            auth_ref, auth_url=getattr(security, "auth_uri", None))
        sess = ks_session.Session(auth=plugin, verify=_verify(security, config),
                                  timeout=_timeout(config))
        region = getattr(security, "region_name", None) or config.get("region_name")
        # An explicit endpoint still wins: some clouds publish internal URLs
        # that the executor cannot reach.
        return sess, config["endpoints"].get(service_type), region
    endpoint = config["endpoints"].get(service_type)
    if not endpoint:
        raise ActionFailure(
            "configuration_error",
            f"no credentials and no {service_type} endpoint: Mistral passed no token (is "
            f"Keystone auth disabled?), and {CLOUD_CONFIG_ENV} names no '{service_type}' "
            "endpoint. Enable Keystone auth in Mistral, or set the endpoint file in the "
            "executor's environment.")
    plugin = token_endpoint.Token(endpoint, config.get("token") or "selfheal-noauth")
    sess = ks_session.Session(auth=plugin, verify=_verify(None, config),
                              additional_headers=config.get("headers") or {},
                              timeout=_timeout(config))
    return sess, endpoint, config.get("region_name")


def nova(context, microversion=None):
    """A python-novaclient client at the negotiated (or pinned) microversion.

    :param microversion: e.g. ``"2.60"``; None negotiates the highest version
        both novaclient and the server support.
    """
    from novaclient import api_versions
    from novaclient import client as nova_client
    from novaclient import exceptions as nova_exc

    sess, endpoint, region = session_for(context, "compute")

    def make(version):
        return nova_client.Client(api_versions.APIVersion(version), session=sess,
                                  endpoint_override=endpoint, region_name=region)

    try:
        if microversion:
            client = make(microversion)
            api_versions.discover_version(client, client.api_version)
            return client
        return make(_negotiated(make, sess, endpoint, region))
    except nova_exc.UnsupportedVersion as e:
        raise ActionFailure("unsupported_microversion", f"Nova cannot speak microversion "
                            f"{microversion}: {e}. Leave 'microversion' empty to negotiate.",
                            ) from None
    except Exception as e:  # keystoneauth connection and catalog errors
        raise ActionFailure("service_unreachable",
                            f"cannot reach the compute API: {type(e).__name__}: {e}. Check the "
                            "catalog or the explicit endpoint.") from None


def heat(context):
    """A python-heatclient client (orchestration API v1).

    Without Keystone the explicit ``orchestration`` endpoint includes the
    project, e.g. ``http://heat.example:8004/v1/<project id>``.
    """
    from heatclient import client as heat_client

    sess, endpoint, region = session_for(context, "orchestration")
    kwargs = {"session": sess, "service_type": "orchestration"}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
    if region:
        kwargs["region_name"] = region
    return heat_client.Client("1", **kwargs)


#: compute endpoint -> (negotiated microversion, monotonic expiry); an
#: executor runs many actions per healing, and each would ask Nova again
_NEGOTIATED = {}
NEGOTIATION_TTL = 300.0


def _negotiated(make, sess, endpoint, region):
    """The highest microversion novaclient and the server share, cached per
    endpoint for a few minutes."""
    from novaclient import api_versions

    url = endpoint or sess.get_endpoint(service_type="compute", region_name=region)
    cached = _NEGOTIATED.get(url)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    version = api_versions.discover_version(
        make("2.1"), api_versions.APIVersion("2.latest")).get_string()
    _NEGOTIATED[url] = (version, time.monotonic() + NEGOTIATION_TTL)
    return version


def execution_id(context):
    """The workflow execution that runs the action ("manual" outside Mistral)."""
    execution = getattr(context, "execution", None)
    return getattr(execution, "workflow_execution_id", None) or "manual"


def run_owner(context):
    """Who this action run is, unique per run: ``<workflow execution>/<action
    execution>`` inside a workflow, the action execution alone for an ad-hoc
    ``run-action``, else ``manual-<uuid>`` (scripts, tests). Two runs never
    share an owner, so a claim (:mod:`host_claim`) is never held by two."""
    import uuid

    execution = getattr(context, "execution", None)
    workflow = getattr(execution, "workflow_execution_id", None)
    action = getattr(execution, "action_execution_id", None)
    if action:
        return f"{workflow}/{action}" if workflow else action
    return f"manual-{uuid.uuid4()}"
