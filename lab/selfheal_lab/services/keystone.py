# SPDX-License-Identifier: Apache-2.0
"""The lab's Keystone 30: identity for the authenticated lab (stdlib only).

sqlite and fernet tokens, served by ``wsgi_server.py`` in the keystone
venv. ``up()`` bootstraps it once with what the authenticated lab needs:

* ``admin`` (role admin on project ``admin``), from ``keystone-manage
  bootstrap``, with the identity endpoint in the catalog;
* project ``service`` and one service user per lab service that validates
  tokens (``mistral``, ``nova``, ``heat``, ``zaqar``, ``aodh``, ``masakari``),
  admin there;
* a non-admin ``member`` user, role ``member`` on its own project ``demo``,
  and a second tenant, ``member2`` on ``demo2`` (:data:`TENANTS`: two
  projects owning instances on the same hosts); ``admin`` has the role
  ``member`` on both, as an operator who notifies the projects of a planned
  maintenance needs (selfheal posts on each project's queue with the
  caller's token re-scoped to that project).

Passwords are generated per lab folder and kept in ``passwords.json`` in
the service folder (mode 0600); they are never printed. ``endpoints.json``
(key ``keystone``) holds the URL and the names, not the passwords: read
those with :func:`password`.

:func:`register_endpoint` adds a service to the catalog (idempotent).
"""

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request

from selfheal_lab import http_json
from selfheal_lab import processes
from selfheal_lab import progress
from selfheal_lab import state
from selfheal_lab import venvs
from selfheal_lab.services import managed

SERVICE = "keystone"
KEY = "keystone"
NAMES = ("server",)
SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgi_server.py")
REGION = "RegionOne"
SERVICE_USERS = ("mistral", "nova", "heat", "zaqar", "aodh", "masakari")
MEMBER = {"user": "member", "project": "demo", "role": "member"}
#: the tenant projects (each with its own user, role member)
TENANTS = (MEMBER, {"user": "member2", "project": "demo2", "role": "member"})
START_TIMEOUT = 90.0
#: bcrypt cost of the lab's password hashes (Keystone's default is 12). A
#: login at 12 costs the one-process lab Keystone about 0.25 s of a core it
#: shares with Nova; a client that logs in per call (Masakari 22 does, per
#: Nova call) then makes Keystone the bottleneck, which a production
#: Keystone, on its own controllers with many workers, is not
PASSWORD_HASH_ROUNDS = 4
ROUNDS_MARKER = "password-hash-rounds"
REVOCATION_SECOND = 1.5


class KeystoneError(RuntimeError):
    pass


def _config_text(sdir):
    return f"""\
[DEFAULT]
debug = False
use_stderr = True

[database]
connection = sqlite:///{sdir / 'keystone.sqlite'}

[identity]
password_hash_rounds = {PASSWORD_HASH_ROUNDS}

[cache]
# what production runs with memcached: tokens, roles and the catalog cached
# (in-process here: the lab's Keystone is one process)
enabled = true
backend = dogpile.cache.memory

[token]
provider = fernet
expiration = 14400

[fernet_tokens]
key_repository = {sdir / 'fernet-keys'}

[credential]
key_repository = {sdir / 'credential-keys'}
"""


def passwords_file():
    return state.service_dir(SERVICE) / "passwords.json"


def _passwords():
    """Every lab user's password, made once per lab folder; a user added to
    the lab later (a new service user) gets one too, the others are kept."""
    path = passwords_file()
    chosen = json.loads(path.read_text()) if path.exists() else {}
    users = ("admin",) + tuple(t["user"] for t in TENANTS) + SERVICE_USERS
    missing = [user for user in users if user not in chosen]
    if missing:  # a new lab, or users added since this one was made
        chosen.update({user: secrets.token_urlsafe(18) for user in missing})
        state.write_private(path, json.dumps(chosen))
    return chosen


def password(user):
    """The lab password of ``user`` (admin, member or a service user)."""
    return _passwords()[user]


def _url(info=None):
    info = info or state.read_endpoints().get(KEY) or {}
    return info.get("url")


def url():
    """The identity URL of the running lab Keystone (None when it is not up)."""
    return _url()


def auth_options(user, project="service"):
    """The option lines of a keystoneauth password section for lab ``user``
    (scoped to ``project``; None for an unscoped one, as ``[trustee]``).

    They hold the password: write them only into a 0600 file
    (:func:`selfheal_lab.state.write_private`).
    """
    lines = ["auth_type = password", f"auth_url = {_url()}", f"username = {user}",
             f"password = {password(user)}", "user_domain_id = default"]
    if project:
        lines += [f"project_name = {project}", "project_domain_id = default"]
    return "\n".join(lines) + "\n"


def authtoken_section(user):
    """A ``[keystone_authtoken]`` section: keystonemiddleware validating
    tokens as the service user ``user``."""
    return (f"\n[keystone_authtoken]\nwww_authenticate_uri = {_url()}\n"
            f"{auth_options(user)}interface = public\n")


def _probe(info):
    return managed.http_status(info["url"]) == 200


def up(timeout=START_TIMEOUT):
    """Start (or keep) Keystone, bootstrapped; return its endpoints entry."""
    python = venvs.ensure("keystone")
    sdir = state.service_dir(SERVICE)
    fingerprint = managed.fingerprint(managed.source_of(__file__),
                                      managed.source_of(SERVER_SCRIPT), venvs.stamp("keystone"))
    info = managed.running(SERVICE, NAMES, fingerprint, _probe)
    if info:
        return info
    previous = state.read_endpoints().get(KEY) or {}
    # stop an outdated server first, so that it keeps its port: the catalog,
    # the Keystone door of Nova and the authenticated Mistral name it
    managed.stop(SERVICE, KEY, NAMES)
    port = previous.get("port") or processes.free_port()
    if processes.port_open(port):
        port = processes.free_port()
    url = f"http://127.0.0.1:{port}/v3"
    conf = sdir / "keystone.conf"
    conf.write_text(_config_text(sdir))
    _bootstrap(python, conf, url)
    commands = {"server": [str(python), SERVER_SCRIPT, "--app", "keystone",
                           "--config-file", str(conf), "--port", str(port)]}
    info = {"url": url, "port": port, "region": REGION, "admin": {"user": "admin",
            "project": "admin"}, "member": dict(MEMBER),
            "tenants": [dict(t) for t in TENANTS], "service_project": "service",
            "service_users": list(SERVICE_USERS), "config": str(conf)}
    progress.step(f"starting Keystone on port {port}")
    info = managed.start(SERVICE, KEY, commands, fingerprint, info, _probe, timeout, "Keystone")
    _ensure_users(info)
    match_password_hashes()
    register_endpoint("identity", "keystone", url)
    return info


def _manage(python, conf, *argv):
    log = state.service_dir(SERVICE) / f"manage-{argv[0]}.log"
    with open(log, "w") as out:
        result = subprocess.run([str(python.parent / "keystone-manage"), "--config-file",
                                 str(conf), *argv], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise KeystoneError(f"keystone-manage {argv[0]} failed; see {log}")


def _bootstrap(python, conf, url):
    sdir = state.service_dir(SERVICE)
    marker = sdir / "bootstrapped"
    if marker.exists() and marker.read_text() == url:
        return
    progress.step("setting up Keystone (database, fernet keys, admin; first time only)")
    for sub in ("fernet-keys", "credential-keys"):
        (sdir / sub).mkdir(mode=0o700, exist_ok=True)
    user = str(os.getuid())
    group = str(os.getgid())
    _manage(python, conf, "db_sync")
    _manage(python, conf, "fernet_setup", "--keystone-user", user, "--keystone-group", group)
    _manage(python, conf, "credential_setup", "--keystone-user", user,
            "--keystone-group", group)
    # bootstrap reads the password from the environment: never on a command line
    env = dict(os.environ, OS_BOOTSTRAP_PASSWORD=password("admin"))
    log = sdir / "manage-bootstrap.log"
    with open(log, "w") as out:
        result = subprocess.run(
            [str(python.parent / "keystone-manage"), "--config-file", str(conf), "bootstrap",
             "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
             "--bootstrap-internal-url", url, "--bootstrap-region-id", REGION],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise KeystoneError(f"keystone-manage bootstrap failed; see {log}")
    marker.write_text(url)


# --- the identity API, as the lab's admin ---------------------------------------

def token(user="admin", project="admin"):
    """A project-scoped token for a lab user (``(token, body)``).

    :raises KeystoneError: the lab's Keystone is not running (``status``
        probes ask for a token whether it runs or not).
    """
    if not _url():
        raise KeystoneError("the lab's Keystone is not running")
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password(user)}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    req = urllib.request.Request(_url() + "/auth/tokens", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.headers["X-Subject-Token"], json.loads(resp.read())["token"]
    except urllib.error.HTTPError as e:
        raise KeystoneError(f"no token for {user} on {project}: HTTP {e.code}") from None


def _api(method, path, body=None, admin_token=None):
    return http_json.call(_url(), method, path, body, timeout=30, error=KeystoneError,
                          what="Keystone",
                          headers={"X-Auth-Token": admin_token or token()[0]})


def _find(collection, name, admin_token, key=None):
    found = _api("GET", f"/{collection}?name={name}", admin_token=admin_token)
    items = found[key or collection]
    return items[0] if items else None


def _ensure(collection, singular, name, fields, admin_token):
    existing = _find(collection, name, admin_token)
    if existing:
        return existing
    body = {singular: dict(fields, name=name)}
    return _api("POST", f"/{collection}", body, admin_token)[singular]


def _grant(project_id, user_id, role_name, admin_token):
    role = _find("roles", role_name, admin_token)
    if role is None:
        role = _api("POST", "/roles", {"role": {"name": role_name}}, admin_token)["role"]
    _api("PUT", f"/projects/{project_id}/users/{user_id}/roles/{role['id']}",
         admin_token=admin_token)


def _ensure_users(info):
    admin_token = token()[0]
    service = _ensure("projects", "project", "service", {"domain_id": "default"}, admin_token)
    for user in SERVICE_USERS:
        created = _ensure("users", "user", user, {"domain_id": "default",
                                                  "password": password(user)}, admin_token)
        _grant(service["id"], created["id"], "admin", admin_token)
    admin = _find("users", "admin", admin_token)
    for tenant in TENANTS:
        project = _ensure("projects", "project", tenant["project"], {"domain_id": "default"},
                          admin_token)
        user = _ensure("users", "user", tenant["user"], {
            "domain_id": "default", "password": password(tenant["user"]),
            "default_project_id": project["id"]}, admin_token)
        _grant(project["id"], user["id"], tenant["role"], admin_token)
        _grant(project["id"], admin["id"], "member", admin_token)


def match_password_hashes():
    """Set every lab user's password again when the lab was made with other
    bcrypt rounds (Keystone checks a password at its stored hash's rounds,
    so a lab made before :data:`PASSWORD_HASH_ROUNDS` keeps the old cost).

    Once per lab folder, a new one included (``bootstrap`` runs again on an
    existing database when the port changes, so it cannot tell); ``admin``
    last, since its new hash revokes the token used. Other services' cached
    tokens of those users are revoked too: restart a running lab after
    (``selfheal-lab down; selfheal-lab up``).

    :returns: the users set again (none when the hashes already match).
    """
    marker = state.service_dir(SERVICE) / ROUNDS_MARKER
    if marker.exists() and marker.read_text() == str(PASSWORD_HASH_ROUNDS):
        return []
    admin_token = token()[0]
    users = [user for user in _passwords() if user != "admin"] + ["admin"]
    for user in users:
        found = _find("users", user, admin_token)
        if found:
            _api("PATCH", f"/users/{found['id']}", {"user": {"password": password(user)}},
                 admin_token)
    marker.write_text(str(PASSWORD_HASH_ROUNDS))
    # Keystone revokes the users' tokens issued up to the second of the
    # change (whole seconds): a token taken in that same second is refused
    time.sleep(REVOCATION_SECOND)
    progress.step(f"Keystone: lab passwords hashed again at bcrypt cost {PASSWORD_HASH_ROUNDS}")
    return users


def project_id(name):
    """The id of the lab project ``name`` (admin, demo, demo2, service)."""
    found = _find("projects", name, token()[0])
    if not found:
        raise KeystoneError(f"the lab's Keystone has no project {name!r}")
    return found["id"]


def register_endpoint(service_type, name, url):
    """Make ``url`` the public, internal and admin endpoint of ``service_type``
    in the catalog (creating the service; replacing a different URL)."""
    admin_token = token()[0]
    services = _api("GET", f"/services?type={service_type}", admin_token=admin_token)["services"]
    if services:
        service = services[0]
    else:
        service = _api("POST", "/services", {"service": {"type": service_type, "name": name}},
                       admin_token)["service"]
    endpoints = _api("GET", f"/endpoints?service_id={service['id']}",
                     admin_token=admin_token)["endpoints"]
    for interface in ("public", "internal", "admin"):
        current = [e for e in endpoints if e["interface"] == interface]
        if current and current[0]["url"] == url:
            continue
        for stale in current:
            _api("DELETE", f"/endpoints/{stale['id']}", admin_token=admin_token)
        _api("POST", "/endpoints", {"endpoint": {"service_id": service["id"],
                                                 "interface": interface, "url": url,
                                                 "region_id": REGION}}, admin_token)


def down():
    """Stop Keystone (by PID). Returns True if it was running."""
    return managed.stop(SERVICE, KEY, NAMES)


def status():
    return managed.status(SERVICE, KEY, NAMES, _probe)
