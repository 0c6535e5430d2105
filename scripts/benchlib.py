"""What the Python benchmarks share: a free port, a JSON call, a server started on a fresh data
dir with open registration and rate limits off, and a signed-up user."""
import http.client, json, os, socket, subprocess, time

PASSWORD = "a long and unusual passphrase"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(port, method, path, token=None, body=None, timeout=600):
    """One JSON request; the decoded answer, or the script stops naming the failed call."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def serve(binary, data, **extra_env):
    """`binary serve` on a free port with data dir `data` (open registration, rate limits off,
    plus `extra_env`), once it answers `/health/ready`: the process and its port."""
    port = free_port()
    env = dict(os.environ)
    env.update({
        "CONCLAVE_LISTEN": f"127.0.0.1:{port}",
        "CONCLAVE_DATA_DIR": data,
        "CONCLAVE_REGISTRATION": "open",
        "CONCLAVE_RATE_LIMITS": "off",
        "RUST_LOG": "warn",
    })
    env.update(extra_env)
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            call(port, "GET", "/health/ready", timeout=5)
            return server, port
        except (OSError, SystemExit):
            time.sleep(0.05)
    server.terminate()
    raise SystemExit("the server did not become ready")


def sign_up(port, username):
    """Registers `username` and signs in: (token, user id)."""
    me = call(port, "POST", "/api/v1/auth/register", body={"username": username, "password": PASSWORD})
    token = call(port, "POST", "/api/v1/auth/login", body={"username": username, "password": PASSWORD})["token"]
    return token, me.get("id") or me["user"]["id"]


def org_with_group(port, token, org_name, group_name):
    """A new org of the caller with one private group: (org id, conversation id)."""
    org = call(port, "POST", "/api/v1/orgs", token, {"name": org_name})["id"]
    body = {"kind": "group", "name": group_name, "visibility": "private", "participant_ids": []}
    return org, call(port, "POST", f"/api/v1/orgs/{org}/conversations", token, body)["id"]
