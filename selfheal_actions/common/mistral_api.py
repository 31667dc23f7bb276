# SPDX-License-Identifier: Apache-2.0
"""The few Mistral calls an action makes on its own Mistral (REST API v2).

The host watch starts one host failure execution per failed host, reads the
executions in flight (who is already being healed, how much of the
evacuation budget they hold), reads its kill switch (a Mistral environment)
and deletes its own old executions. Endpoint and token come as for every
other service (:func:`clients.session_for`, catalog type ``workflowv2``, or
``endpoints.workflowv2`` in the explicit cloud config).

Mistral stores ``input``, ``output`` and ``variables`` as JSON inside a
string; this module hands them back decoded.
"""

import json
import urllib.parse

from selfheal_actions.common import clients
from selfheal_actions.common.results import ActionFailure

SERVICE_TYPE = "workflowv2"
_JSON_FIELDS = ("input", "output", "params", "variables")


class MistralApiError(Exception):
    """Mistral answered with an HTTP error."""

    def __init__(self, status, text):
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.http_status = status


class EnvironmentGone(Exception):
    """The environment to update does not exist (any more)."""


def _decoded(resource):
    for key in _JSON_FIELDS:
        value = resource.get(key)
        if isinstance(value, str):
            try:
                resource[key] = json.loads(value)
            except ValueError:
                pass
    return resource


class MistralApi:
    """Mistral's REST API through a keystoneauth session.

    :param session: a keystoneauth1 session (token or catalog auth).
    :param endpoint: the v2 URL (``http://mistral:8989/v2``); None finds it
        in the catalog.
    :param region: region for the catalog lookup.
    """

    def __init__(self, session, endpoint=None, region=None):
        self.session = session
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.region = region

    def _call(self, method, path, body=None, **query):
        query = {k: v for k, v in query.items() if v is not None}
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        kwargs = {"raise_exc": False, "headers": {"Accept": "application/json"}}
        if body is not None:
            kwargs["json"] = body
        if self.endpoint:
            response = self.session.request(self.endpoint + url, method, **kwargs)
        else:
            response = self.session.request(url, method, endpoint_filter={
                "service_type": SERVICE_TYPE, "interface": "public",
                "region_name": self.region}, **kwargs)
        if response.status_code >= 400:
            raise MistralApiError(response.status_code, response.text)
        return response.json() if response.text.strip() else None

    def executions(self, workflow_name, state=None, limit=100, newest_first=False,
                   include_output=False):
        """Executions of ``workflow_name`` (optionally in ``state``), decoded."""
        page = self._call("GET", "/executions", workflow_name=workflow_name, state=state,
                          limit=limit, sort_keys="created_at",
                          sort_dirs="desc" if newest_first else "asc",
                          include_output="true" if include_output else None)
        return [_decoded(e) for e in (page or {}).get("executions", [])]

    def start(self, workflow_name, workflow_input, description=""):
        """Start an execution; returns it (``id``, ``state``, ...)."""
        return _decoded(self._call("POST", "/executions", {
            "workflow_name": workflow_name, "input": json.dumps(workflow_input),
            "description": description[:255]}))

    def execution(self, execution_id):
        """The execution ``execution_id`` (decoded), or None when it does not exist."""
        try:
            return _decoded(self._call("GET", f"/executions/{execution_id}") or {})
        except MistralApiError as error:
            if error.http_status == 404:
                return None
            raise

    def workflow(self, name):
        """The workflow ``name`` (``input`` is its declared inputs as text,
        e.g. ``"host, timeout=60"``), or None when there is none."""
        try:
            return self._call("GET", f"/workflows/{urllib.parse.quote(name, safe='')}")
        except MistralApiError as error:
            if error.http_status == 404:
                return None
            raise

    def delete_execution(self, execution_id):
        self._call("DELETE", f"/executions/{execution_id}")

    def environment(self, name):
        """The variables of the environment ``name``, or None when it does
        not exist."""
        found = self.get_environment(name)
        if found is None:
            return None
        variables = found.get("variables")
        return variables if isinstance(variables, dict) else {}

    # --- environments as claims (selfheal_actions.heat.stack_claim) ---------

    def create_environment(self, name, variables, description=""):
        """Create the environment ``name``; False when the name is taken
        (HTTP 409: Mistral's names are unique per project)."""
        try:
            self._call("POST", "/environments", {
                "name": name, "description": description[:255],
                "variables": json.dumps(variables), "scope": "private"})
        except MistralApiError as error:
            if error.http_status == 409:
                return False
            raise
        return True

    def get_environment(self, name):
        """The environment ``name`` (``variables`` decoded), or None."""
        try:
            found = self._call("GET", f"/environments/{urllib.parse.quote(name, safe='')}")
        except MistralApiError as error:
            if error.http_status == 404:
                return None
            raise
        return _decoded(found or {})

    def update_environment(self, name, variables, description=None):
        """Replace the variables (and the description, when given) of the
        environment ``name``.

        :raises EnvironmentGone: it does not exist (any more).
        """
        body = {"name": name, "variables": json.dumps(variables)}
        if description is not None:
            body["description"] = description[:255]
        try:
            self._call("PUT", "/environments", body)
        except MistralApiError as error:
            if error.http_status == 404:
                raise EnvironmentGone(name) from None
            raise

    def delete_environment(self, name):
        """Delete the environment ``name``; False when it did not exist."""
        try:
            self._call("DELETE", f"/environments/{urllib.parse.quote(name, safe='')}")
        except MistralApiError as error:
            if error.http_status == 404:
                return False
            raise
        return True


def mistral(context):
    """A :class:`MistralApi` on the caller's Mistral.

    With Keystone, the caller's token and catalog (the executions it starts
    run as the caller). Without, the explicit ``workflowv2`` endpoint with
    no token at all but the cloud config's own ``token``: a Mistral without
    Keystone still copies an ``X-Auth-Token`` it is sent into the new
    execution's context, and the actions of that execution would then take
    the placeholder for a Keystone token.

    :raises ActionFailure: ``configuration_error`` when neither a token nor an
        explicit ``workflowv2`` endpoint is known.
    """
    if getattr(getattr(context, "security", None), "auth_token", None):
        session, endpoint, region = clients.session_for(context, SERVICE_TYPE)
        return MistralApi(session, endpoint, region)
    from keystoneauth1 import session as ks_session

    config = clients.explicit_config()
    endpoint = config["endpoints"].get(SERVICE_TYPE)
    if not endpoint:
        raise ActionFailure(
            "configuration_error",
            f"no Mistral endpoint: Mistral passed no token and {clients.CLOUD_CONFIG_ENV} "
            f"names no '{SERVICE_TYPE}' endpoint (the watch starts executions through it). "
            "Add endpoints.workflowv2 to the cloud config of the executors.")
    headers = {"X-Auth-Token": config["token"]} if config.get("token") else {}
    session = ks_session.Session(verify=clients.verify_setting(config),
                                 additional_headers=headers,
                                 timeout=clients.timeout_setting(config))
    return MistralApi(session, endpoint)
