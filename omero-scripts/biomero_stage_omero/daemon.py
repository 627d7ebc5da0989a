"""Talking to the biomero-stage daemon from OMERO's script processor.

Where the daemon is and its admin token come from ``/etc/biomero-stage/omero-scripts.ini``
(section ``[biomero-stage]``: ``url``, ``token_file``, ``timeout``, ``mode``,
``poll_seconds``), or from ``BIOMERO_STAGE_URL``, ``BIOMERO_STAGE_TOKEN_FILE``,
``BIOMERO_STAGE_TIMEOUT``, ``BIOMERO_STAGE_MODE`` and ``BIOMERO_STAGE_POLL_SECONDS``,
which win. ``mode`` is ``hand-off`` (the default: the run script returns at once) or
``attended`` (it stays for the run, see ``attended``). Only the standard library is used: OMERO's Python environment needs
nothing besides this package.

The user's OMERO session key travels in the ``X-OMERO-Session-Key`` header, never
in the body, and is never printed: the daemon checks it against OMERO and takes
the user and group from there.
"""

import configparser
import json
import os
import urllib.error
import urllib.request
from urllib.parse import quote

CONFIG_FILE = "/etc/biomero-stage/omero-scripts.ini"
"""Where the scripts read the daemon's address from."""


class DaemonError(Exception):
    """The daemon could not be reached, or refused; ``str()`` is for the user."""

    def __init__(self, message, fields=None, status=None):
        super().__init__(message)
        self.fields = fields or []
        self.status = status

    def __str__(self):
        text = self.args[0]
        if self.fields:
            text += "\n" + "\n".join(f"- {f['field']}: {f['message']}" for f in self.fields)
        return text


MODES = ("hand-off", "attended")
"""How the run script behaves: returns at once, or stays for the run."""


class Settings:
    """The daemon's address, admin token, request timeout, and the run script's mode."""

    def __init__(self, url, token=None, timeout=30.0, mode="hand-off", poll_seconds=15.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.mode = mode
        self.poll_seconds = poll_seconds

    @property
    def attended(self):
        """Whether the run script stays for the run."""
        return self.mode == "attended"

    @classmethod
    def load(cls, path=CONFIG_FILE, env=None):
        """Reads ``path`` (when it exists) and the environment."""
        env = os.environ if env is None else env
        ini = configparser.ConfigParser()
        ini.read(path)
        section = ini["biomero-stage"] if ini.has_section("biomero-stage") else {}
        url = env.get("BIOMERO_STAGE_URL") or section.get("url") or "http://127.0.0.1:8950"
        token_file = env.get("BIOMERO_STAGE_TOKEN_FILE") or section.get("token_file")
        token = None
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as f:
                    token = f.read().strip() or None
            except OSError as e:
                raise DaemonError(
                    f"the biomero-stage admin token file {token_file} cannot be read ({e.strerror}); "
                    "ask your OMERO admin to make it readable by the OMERO server user"
                ) from e
        timeout = float(env.get("BIOMERO_STAGE_TIMEOUT") or section.get("timeout") or 30)
        mode = (env.get("BIOMERO_STAGE_MODE") or section.get("mode") or "hand-off").strip()
        if mode not in MODES:
            raise DaemonError(
                f"mode `{mode}` in {path} (or BIOMERO_STAGE_MODE) is not one of {', '.join(MODES)}; "
                "ask your OMERO admin to correct it")
        try:
            poll = float(env.get("BIOMERO_STAGE_POLL_SECONDS") or section.get("poll_seconds") or 15)
        except ValueError:
            poll = -1.0
        if not 1.0 <= poll <= 600.0:
            raise DaemonError(
                f"poll_seconds in {path} (or BIOMERO_STAGE_POLL_SECONDS) must be a number of seconds "
                "from 1 to 600; ask your OMERO admin to correct it")
        return cls(url, token, timeout, mode, poll)


class Daemon:
    """The daemon's admin API."""

    def __init__(self, settings):
        self.settings = settings

    def _call(self, method, path, body=None, session_key=None, raw=False):
        url = self.settings.url + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.settings.token:
            req.add_header("Authorization", f"Bearer {self.settings.token}")
        if session_key:
            req.add_header("X-OMERO-Session-Key", session_key)
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as r:
                data = r.read()
                return data if raw else json.loads(data or b"null")
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise DaemonError(f"biomero-stage answered {e.code} at {path}", status=e.code) from None
            raise DaemonError(err.get("message", str(e.code)), err.get("fields"), e.code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DaemonError(
                f"biomero-stage cannot be reached at {self.settings.url} ({reason}); "
                "ask your OMERO admin to check that the daemon runs"
            ) from None

    def workflows(self):
        """The configured workflows, in slurm-config.ini's order."""
        return self._call("GET", "/api/v1/workflows")["workflows"]

    def submit_run(self, script, inputs, session_key, group_id=None, run=None, attended=False):
        """Forwards a run: the answer's ``run`` object. ``attended``: this script stays and
        makes the tables and ROIs itself."""
        body = {"version": 1, "script": script, "inputs": inputs, "attended": bool(attended)}
        if group_id is not None:
            body["group_id"] = group_id
        if run is not None:
            body["run"] = run
        return self._call("POST", "/api/v1/biomero/runs", body, session_key)["run"]

    def run(self, run_id):
        """The submissions of a run."""
        return self._call("GET", f"/api/v1/biomero/runs/{run_id}")

    def run_progress(self, run_id):
        """What each submission of a run is doing: state, error, last progress event."""
        return self._call("GET", f"/api/v1/biomero/runs/{quote(run_id)}/progress")["submissions"]

    def results(self, submission_id):
        """What a submission brought home: tables, images and their sources, importer orders."""
        return self._call("GET", f"/api/v1/submissions/{quote(submission_id)}/results")

    def result_file(self, submission_id, path):
        """The bytes of one kept result file."""
        return self._call(
            "GET", f"/api/v1/submissions/{quote(submission_id)}/results/file?path={quote(path, safe='')}", raw=True)

    def report_made(self, submission_id, made, problems):
        """Records in the submission's history what the attended script made, and could not."""
        return self._call("POST", f"/api/v1/submissions/{quote(submission_id)}/results/made",
                          {"made": list(made), "problems": list(problems)})

    def check_setup(self):
        """What ``biomero-stage check-setup`` reports."""
        return self._call("GET", "/api/v1/check-setup")["setup"]

    def init(self, pull=False):
        """What ``biomero-stage init [--pull]`` does."""
        return self._call("POST", "/api/v1/init", {"pull": bool(pull)})["init"]


def jsonable(inputs):
    """``client.getInputs(unwrap=True)`` as JSON: OMERO's longs are ints, its lists
    lists; anything else is refused by the daemon, naming the key."""
    def one(v):
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        if isinstance(v, dict):
            return {str(k): one(x) for k, x in v.items()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)
    return {str(k): one(v) for k, v in inputs.items()}


def run_message(run):
    """The Activities panel's message for an accepted run."""
    lines = [run["message"]]
    for sid, workflow, new in run["submissions"]:
        lines.append(f"  {sid}: {workflow}{'' if new else ' (already queued)'}")
    for kind, cid, name in run.get("created", []):
        lines.append(f"  created {kind} {cid} `{name}` for the results")
    for n in run.get("notices", []):
        lines.append(f"  note: {n}")
    lines.append(f"Follow run {run['run']} in OMERO.biomero.")
    return "\n".join(lines)
