# SPDX-License-Identifier: Apache-2.0
"""Talk to a host's baseboard management controller: read and switch power.

Two drivers, one small surface (``power_state()``, ``power_off()``,
``power_on()``), each mapping its library's errors to :class:`BmcError` with
a stable reason:

* ``redfish`` through ``sushy`` (Ironic's library): HTTP basic auth (no
  session: the session mode tries first and logs a 401), ``ForceOff`` /
  ``On`` resets, ``PowerState`` read after ``refresh()``; TLS verified by
  default (``verify`` in the inventory: true, false or a CA bundle path).
* ``ipmi`` through ``pyghmi``: chassis power off / on, power status.

Reasons: ``bmc_unreachable`` (nothing answers, a timeout),
``bmc_tls_error`` (the BMC's certificate cannot be verified with the
entry's ``verify``, or the TLS handshake fails), ``bmc_auth_failed`` (the BMC
refused the credentials), ``bmc_error`` (the BMC answered, but not as
expected: an unknown system, a refused reset).
No message carries a credential: every text from a library goes through
:func:`redact` with the entry's secrets.
"""

import logging
import re
import ssl

LOG = logging.getLogger(__name__)

#: what :meth:`power_state` returns
ON, OFF, UNKNOWN = "on", "off", "unknown"


class BmcError(Exception):
    """A BMC call failed. ``reason``: ``bmc_unreachable``, ``bmc_tls_error``,
    ``bmc_auth_failed`` or ``bmc_error``; ``message`` has no secret."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def redact(text, secrets):
    """``text`` with every secret value replaced by ``***``."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "***")
    return text[:300]


def _tls_cause(error):
    """The TLS failure behind ``error`` (sushy wraps requests' SSLError in its
    ConnectionError), as a short text, or None when it is not one."""
    chain, seen = [], error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    tls = [e for e in chain if isinstance(e, ssl.SSLError)
           or type(e).__name__ in ("SSLError", "SSLCertVerificationError")]
    text = str(tls[0] if tls else error)
    if not tls and "CERTIFICATE_VERIFY_FAILED" not in text:
        return None
    found = re.search(r"certificate verify failed: (.+?)(?: \(_ssl|$)", text)
    if found:
        return "certificate verify failed: " + found.group(1).strip(" '\")")
    found = re.search(r"\[SSL: ([A-Z_]+)\]", text)
    return f"TLS handshake failed ({found.group(1)})" if found else "TLS handshake failed"


class RedfishDriver:
    """Power of one Redfish system (sushy).

    :param entry: the host's fencing entry (:mod:`inventory`): ``address``
        (base URL), ``system_id`` (``/redfish/v1/Systems/<id>`` or ``<id>``;
        empty: the only system), ``username``, ``password``, ``verify``.
    :param timeout: seconds per HTTP request.
    """

    name = "redfish"

    def __init__(self, entry, timeout=10.0):
        self.entry = entry
        self.timeout = timeout
        #: what sushy (requests) gets: True (the system's CAs, the default),
        #: False, or a CA bundle path
        self.verify = entry.get("verify", True)
        self._system = None

    def _fail(self, error):
        import sushy.exceptions as sx

        secrets = [self.entry.get("password")]
        tls = _tls_cause(error)
        if tls:
            how = ("the CA bundle " + str(self.verify) if isinstance(self.verify, str)
                   else "the system's CAs (verify: true, the default)")
            return BmcError("bmc_tls_error", f"the Redfish BMC at {self.entry['address']} "
                            f"failed TLS verification with {how}: {redact(tls, secrets)}. "
                            "Give the CA bundle that signed its certificate in the host's "
                            "fencing inventory entry (verify: /path/ca.pem)")
        text = redact(f"{type(error).__name__}: {error}", secrets)
        if isinstance(error, sx.AccessError):
            return BmcError("bmc_auth_failed", f"the Redfish BMC at {self.entry['address']} "
                            f"refused the credentials of user {self.entry.get('username')!r} "
                            f"({text})")
        if isinstance(error, sx.ConnectionError) or isinstance(error, OSError):
            return BmcError("bmc_unreachable", f"the Redfish BMC at {self.entry['address']} "
                            f"does not answer ({text})")
        if isinstance(error, sx.HTTPError):
            return BmcError("bmc_error", f"the Redfish BMC at {self.entry['address']} "
                            f"answered with an error ({text})")
        return BmcError("bmc_error", f"the Redfish BMC at {self.entry['address']}: {text}")

    def _call(self, fn):
        import sushy.exceptions as sx

        try:
            return fn()
        except (sx.SushyError, OSError) as error:
            self._system = None  # the next attempt connects again
            raise self._fail(error) from None

    def _connect(self):
        import sushy
        from sushy import auth

        def connect():
            basic = auth.BasicAuth(username=self.entry.get("username"),
                                   password=self.entry.get("password"))
            kwargs = dict(auth=basic, verify=self.verify,
                          server_side_retries=1, server_side_retries_delay=1,
                          read_timeout=self.timeout)
            try:
                root = sushy.Sushy(self.entry["address"], connect_timeout=self.timeout,
                                   **kwargs)
            except TypeError:  # an older sushy without connect_timeout
                root = sushy.Sushy(self.entry["address"], **kwargs)
            system_id = self.entry.get("system_id") or None
            if system_id and not system_id.startswith("/"):
                system_id = f"/redfish/v1/Systems/{system_id}"
            return root.get_system(system_id)

        if self._system is None:
            self._system = self._call(connect)
        return self._system

    def power_state(self):
        system = self._connect()

        def read():
            system.refresh()
            state = system.power_state
            return str(getattr(state, "value", state) or "").lower()
        state = self._call(read)
        return {"off": OFF, "on": ON}.get(state.rsplit(".", 1)[-1], UNKNOWN)

    def _reset(self, kind):
        import sushy

        system = self._connect()
        reset = {"off": sushy.ResetType.FORCE_OFF, "on": sushy.ResetType.ON}[kind]
        self._call(lambda: system.reset_system(reset))

    def power_off(self):
        self._reset("off")

    def power_on(self):
        self._reset("on")


class IpmiDriver:
    """Chassis power of one IPMI BMC (pyghmi).

    :param entry: ``address`` (host name or IP), ``port`` (default 623),
        ``username``, ``password``.
    """

    name = "ipmi"

    def __init__(self, entry, timeout=10.0):
        self.entry = entry
        self.timeout = timeout
        self._command = None

    def _fail(self, error):
        text = redact(f"{type(error).__name__}: {error}", [self.entry.get("password")])
        lowered = text.lower()
        where = f"the IPMI BMC at {self.entry['address']}:{self.entry.get('port', 623)}"
        if "password" in lowered or "unauthorized" in lowered or "user" in lowered and (
                "name" in lowered or "invalid" in lowered):
            return BmcError("bmc_auth_failed", f"{where} refused the credentials of user "
                            f"{self.entry.get('username')!r} ({text})")
        if ("timeout" in lowered or "timed out" in lowered or "no longer connected" in lowered
                or "unreachable" in lowered or "disconnected" in lowered
                or isinstance(error, OSError)):
            return BmcError("bmc_unreachable", f"{where} does not answer ({text})")
        return BmcError("bmc_error", f"{where}: {text}")

    def _call(self, fn):
        try:
            return fn()
        except Exception as error:  # pyghmi raises IpmiException and plain errors
            self._command = None  # the next attempt logs in again
            raise self._fail(error) from None

    def _connect(self):
        from pyghmi.ipmi import command

        if self._command is None:
            self._command = self._call(lambda: command.Command(
                bmc=self.entry["address"], userid=self.entry.get("username"),
                password=self.entry.get("password"), port=int(self.entry.get("port") or 623)))
        return self._command

    def power_state(self):
        cmd = self._connect()
        state = self._call(lambda: cmd.get_power()).get("powerstate")
        return {"off": OFF, "on": ON}.get(str(state).lower(), UNKNOWN)

    def power_off(self):
        cmd = self._connect()
        self._call(lambda: cmd.set_power("off", wait=False))

    def power_on(self):
        cmd = self._connect()
        self._call(lambda: cmd.set_power("on", wait=False))


DRIVERS = {"redfish": RedfishDriver, "ipmi": IpmiDriver}


def driver_for(entry, timeout=10.0):
    """The driver object for a fencing entry (its ``driver`` key)."""
    return DRIVERS[entry["driver"]](entry, timeout=timeout)
