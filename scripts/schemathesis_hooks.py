"""Schemathesis hooks for scripts/schemathesis: bearer tokens for the operations that need one.

Requests carry the token of the user the driver signed up (CHIRP_FUZZ_TOKEN), with two
exceptions. `DELETE /sessions` revokes the token it is sent with, so it gets a session of its
own and the shared token stays valid for the rest of the run. And a user the stateful phase
signs up is logged in at once, so that a request acting on that user's `{userId}` (following
someone, editing the profile: the OpenAPI links chain these to `POST /users`) is sent as them
and reaches the handler's logic instead of stopping at 403.
"""

import json
import os
import threading
import urllib.request

import schemathesis

BASE = os.environ["CHIRP_FUZZ_BASE"]
TOKEN = os.environ["CHIRP_FUZZ_TOKEN"]
LOGIN = json.loads(os.environ["CHIRP_FUZZ_LOGIN"])

_tokens = {}
_lock = threading.Lock()


def log_in(handle, password):
    req = urllib.request.Request(
        BASE + "/sessions", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"handle": handle, "password": password}).encode(),
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["token"]


@schemathesis.hook
def after_call(context, case, response):
    if case.operation.method.upper() != "POST" or case.operation.path != "/users":
        return
    if response.status_code != 201 or not isinstance(case.body, dict):
        return
    user = response.json()
    try:
        token = log_in(user["handle"], case.body["password"])
    except OSError:
        return
    with _lock:
        _tokens[user["id"]] = token


@schemathesis.auth(refresh_interval=None)
class ChirpAuth:
    def get(self, case, ctx):
        op = ctx.operation
        if op.method.upper() == "DELETE" and op.path == "/sessions":
            return log_in(LOGIN["handle"], LOGIN["password"])
        with _lock:
            return _tokens.get(str((case.path_parameters or {}).get("userId")), TOKEN)

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
