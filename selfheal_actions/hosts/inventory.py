# SPDX-License-Identifier: Apache-2.0
"""The fencing inventory: which BMC powers each compute host, and how to log in.

Credentials never travel through workflow inputs, outputs or published
variables (Mistral keeps those in its database and shows them through its
API). The actions read the inventory on the executor node instead, from the
cloud config (``$SELFHEAL_CLOUD_CONFIG``, :mod:`selfheal_actions.common.clients`):

* ``fencing_inventory: /etc/selfheal/fencing.yaml``: a YAML file of its own,
  or
* ``fencing: {defaults: ..., hosts: ...}``: a section of the cloud config.

Either file must be readable and writable by its owner only (mode 0600):
a file others may read is refused (``configuration_error``), whatever it
holds. The inventory::

    defaults:                        # merged into every host entry
      driver: redfish
      username: fencer
      password: {env: SELFHEAL_BMC_PASSWORD}
      verify: /etc/ssl/bmc-ca.pem    # true (default), false or a CA bundle
                                     # (relative: to this file's folder)
    hosts:
      compute-1:
        address: https://10.0.0.11   # redfish: base URL of the BMC
        system_id: 1                 # the system, where the BMC has several
      compute-2:
        driver: ipmi
        address: 10.0.1.12
        port: 623
        username: admin
        password: {barbican: https://barbican:9311/v1/secrets/<uuid>}

A secret (``password``, also ``username``) is a string (inline), ``{env:
NAME}`` (an environment variable of the executor) or ``{barbican: REF}``
(a Barbican secret href or id, fetched with the caller's session; without
Keystone through the cloud config's ``key-manager`` endpoint).

Nothing here puts a secret into a result, a log line or an error:
:func:`public` is what results may show of an entry.
"""

import os
import stat

import yaml

from selfheal_actions.common import clients
from selfheal_actions.common.results import ActionFailure

DRIVERS = ("redfish", "ipmi")
#: the keys an entry may have
KEYS = {"driver", "address", "system_id", "port", "username", "password", "verify"}


def _refuse(what, message, **details):
    return ActionFailure("configuration_error", f"fencing inventory {what}: {message}",
                         **details)


def _read_private(path):
    try:
        mode = os.stat(path).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise _refuse(path, f"mode {stat.S_IMODE(mode):04o} lets others read or change it; "
                          "it may hold BMC credentials, so it must be 0600 (chmod 600 "
                          f"{path}). Nothing was fenced.", path=str(path))
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except OSError as error:
        raise _refuse(path, f"cannot read it ({error.strerror}). Fix the path in the cloud "
                      "config, or the file's owner (the Mistral executor's user).",
                      path=str(path)) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        raise _refuse(path, "not valid YAML" + (f" (line {where.line + 1})" if where else ""),
                      path=str(path)) from None


def source():
    """Where the inventory comes from: ``(path, inventory dict)``, or
    ``(None, None)`` when none is configured."""
    path = os.environ.get(clients.CLOUD_CONFIG_ENV)
    if not path:
        return None, None
    config = clients.explicit_config()
    if config.get("fencing_inventory"):
        inventory_path = os.path.join(os.path.dirname(path), str(config["fencing_inventory"]))
        return inventory_path, _read_private(inventory_path)
    if config.get("fencing") is not None:
        # the cloud config holds the inventory itself: it must be private too
        return path, (_read_private(path).get("fencing") or {})
    return None, None


def configured():
    """Whether the executor has a fencing inventory at all."""
    return source()[0] is not None


def _checked(host, entry, path):
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise _refuse(path, f"the entry of '{host}' has unknown keys {unknown}; known: "
                      f"{sorted(KEYS)}", host=host)
    if entry.get("driver") not in DRIVERS:
        raise _refuse(path, f"the entry of '{host}' needs a driver, one of {list(DRIVERS)}",
                      host=host)
    if not isinstance(entry.get("address"), str) or not entry["address"].strip():
        raise _refuse(path, f"the entry of '{host}' needs an address", host=host)
    if entry["driver"] == "redfish" and not entry["address"].startswith(("http://",
                                                                          "https://")):
        raise _refuse(path, f"the redfish address of '{host}' must be a URL (https://...)",
                      host=host)
    if entry["driver"] == "redfish" and "verify" in entry:
        entry["verify"] = _verify(host, entry["verify"], path)
    return entry


def _verify(host, value, path):
    """The ``verify`` of a Redfish entry: True, False or the absolute path of
    a CA bundle (a PEM file, or a folder of them), relative paths being
    relative to the inventory file's folder. IPMI entries have no TLS and
    ignore it (it may come from ``defaults``)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _refuse(path, f"the verify of '{host}' must be true, false or the path of a CA "
                      f"bundle (PEM), got {type(value).__name__} {value!r}. Nothing was "
                      "contacted.", host=host)
    bundle = os.path.join(os.path.dirname(str(path)), os.path.expanduser(value.strip()))
    if os.path.isdir(bundle):
        return bundle
    try:
        with open(bundle, "rb") as f:
            text = f.read(1 << 20)
    except FileNotFoundError:
        raise _refuse(path, f"the verify of '{host}' names the CA bundle {bundle}, which does "
                      "not exist on this executor. Copy the BMCs' CA certificate there (or "
                      "fix the path); true uses the system's CAs. Nothing was contacted.",
                      host=host, verify=bundle) from None
    except OSError as error:
        raise _refuse(path, f"the verify of '{host}' names the CA bundle {bundle}, which the "
                      f"executor cannot read ({error.strerror}). Nothing was contacted.",
                      host=host, verify=bundle) from None
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise _refuse(path, f"the verify of '{host}' names {bundle}, which holds no PEM "
                      "certificate (-----BEGIN CERTIFICATE-----): give the CA bundle that "
                      "signed the BMC's certificate. Nothing was contacted.",
                      host=host, verify=bundle)
    return bundle


def lookup(host):
    """The raw entry of ``host`` (secrets unresolved), or None.

    :returns: ``(path, entry)``; ``(None, None)`` when no inventory is
        configured, ``(path, None)`` when it has no entry for the host.
    :raises ActionFailure: ``configuration_error`` for an unsafe or broken file.
    """
    path, inventory = source()
    if path is None:
        return None, None
    if not isinstance(inventory, dict) or not isinstance(inventory.get("hosts") or {}, dict):
        raise _refuse(path, "it must be a mapping with 'hosts' (and optional 'defaults')")
    own = (inventory.get("hosts") or {}).get(host)
    if own is None:
        return path, None
    entry = dict(inventory.get("defaults") or {})
    entry.update(own)
    return path, _checked(host, entry, path)


def _secret(host, name, value, context):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"env"}:
        found = os.environ.get(str(value["env"]))
        if found is None:
            raise ActionFailure(
                "secret_unavailable", f"the {name} of the BMC of '{host}' is the environment "
                f"variable {value['env']}, which the Mistral executor does not have. Set it in "
                "the executor's environment and restart it. Nothing was fenced.", host=host)
        return found
    if isinstance(value, dict) and set(value) == {"barbican"}:
        return barbican_secret(context, str(value["barbican"]), host, name)
    raise ActionFailure("configuration_error", f"the {name} of the BMC of '{host}' must be a "
                        "string, {env: NAME} or {barbican: REF}", host=host)


def barbican_secret(context, ref, host, name="password", session=None):
    """The payload of a Barbican secret (an href or an id), read with the
    caller's session (or the cloud config's ``key-manager`` endpoint).

    :raises ActionFailure: ``secret_unavailable`` (never with the payload).
    """
    try:
        if session is None:
            session, endpoint, region = clients.session_for(context, "key-manager")
        else:
            endpoint, region = None, None
        kwargs = {"headers": {"Accept": "text/plain"}, "raise_exc": True}
        if ref.startswith(("http://", "https://")):
            url = ref.rstrip("/") + "/payload"
        else:
            url = f"/v1/secrets/{ref}/payload"
            if endpoint:
                kwargs["endpoint_override"] = endpoint
            else:
                kwargs["endpoint_filter"] = {"service_type": "key-manager",
                                             "region_name": region}
        response = session.get(url, **kwargs)
        return response.text
    except ActionFailure as failure:
        raise ActionFailure("secret_unavailable", f"the {name} of the BMC of '{host}' is a "
                            f"Barbican secret, but Barbican cannot be reached: "
                            f"{failure.message}", host=host) from None
    except Exception as error:
        status = getattr(error, "http_status", None)
        raise ActionFailure(
            "secret_unavailable", f"cannot read the Barbican secret holding the {name} of the "
            f"BMC of '{host}' ({type(error).__name__}"
            + (f", HTTP {status}" if status else "") + "). Check that the secret exists and "
            "that the caller may read it (its ACL). Nothing was fenced.", host=host) from None


def entry_for(host, context=None):
    """The entry of ``host`` with its secrets resolved, ready for a driver.

    :returns: the entry dict, or None when there is no inventory or no
        entry for the host (:func:`lookup` tells which).
    """
    _, entry = lookup(host)
    if entry is None:
        return None
    resolved = dict(entry)
    for name in ("username", "password"):
        resolved[name] = _secret(host, name, entry.get(name), context)
    return resolved


def tls_verify(entry):
    """How the executor checks the certificate of a Redfish BMC over HTTPS:
    ``system_ca`` (``verify`` true or absent: the default), ``ca_bundle``
    (``verify`` names one) or ``off`` (``verify: false``); None without TLS
    (IPMI, or a plain ``http://`` address)."""
    if entry["driver"] != "redfish" or not entry["address"].startswith("https://"):
        return None
    verify = entry.get("verify", True)
    if verify is False:
        return "off"
    return "system_ca" if verify is True else "ca_bundle"


def tls_warnings(entry, host):
    """The warning a result carries when TLS verification is off."""
    if tls_verify(entry) != "off":
        return []
    return [f"TLS verification is off for the Redfish BMC {entry['address']} of '{host}' "
            "(verify: false in the fencing inventory): anyone on the management network "
            "could impersonate it and learn its credentials. Give its CA bundle instead "
            "(verify: /path/ca.pem)."]


def public(entry):
    """What a result may show of an entry: driver, address, system, port,
    and for HTTPS how the BMC's certificate is checked (``tls_verify``)."""
    if not entry:
        return None
    shown = {"driver": entry["driver"], "address": entry["address"]}
    if entry.get("system_id"):
        shown["system_id"] = str(entry["system_id"])
    if entry["driver"] == "ipmi":
        shown["port"] = int(entry.get("port") or 623)
    if tls_verify(entry):
        shown["tls_verify"] = tls_verify(entry)
    return shown
