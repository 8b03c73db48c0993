"""The Dockerfile, compose.yaml and deploy/config.example.yaml, checked without Docker:
the invariants a deployment relies on (non-root, healthcheck on /healthz with the
standard library, no secret in the image or the compose file, the services and the
environment names the config schema reads), the compose file against the Compose
schema, the image's install step (only what .dockerignore lets in) in a temporary
directory, and the healthcheck command against a live proxy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
EXAMPLE = ROOT / "deploy" / "config.example.yaml"
SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|DSN|DATABASE_URL)", re.I)


# ------------------------------------------------------------------ a small Dockerfile reader

def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "a trailing continuation line"
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (global ARGs before the first FROM are dropped)."""
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", rest):
                env[k] = v
    return env


def exec_form(rest: str) -> list[str]:
    assert rest.startswith("["), f"use the exec (JSON) form: {rest}"
    return json.loads(rest)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


# ------------------------------------------------------------------ Dockerfile

def test_the_image_is_slim_python_311_and_runs_as_a_non_root_user() -> None:
    glob_args = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            glob_args[k] = v
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2  # build stage + runtime stage: no compiler or pip cache in the image
    for f in froms:
        image = f.split()[0].replace("${PYTHON_VERSION}", glob_args.get("PYTHON_VERSION", "?"))
        assert image == "python:3.11-slim", f
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)
    assert [w for w, _ in final].index("USER") > max(i for i, (w, _) in enumerate(final) if w in ("RUN", "COPY"))


def test_healthcheck_expose_volume_and_entrypoint() -> None:
    final = stages()[-1]
    env = env_of(final)
    checks = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = exec_form(checks[0].split("CMD", 1)[1].strip())
    assert cmd[0] == "python" and "/healthz" in cmd[-1] and "urllib.request" in cmd[-1]  # no curl in a slim image
    assert not any(tool in checks[0] for tool in ("curl", "wget"))
    assert ("EXPOSE", "4000") in final
    assert env["QUOTAROUTE_HOME"] == "/data"
    volumes = [v for word, rest in final if word == "VOLUME" for v in exec_form(rest)]
    assert env["QUOTAROUTE_HOME"] in volumes
    assert env["QUOTAROUTE_CONFIG"].startswith("/etc/quotaroute/")  # a mounted file, outside the volume
    entry = [exec_form(rest) for word, rest in final if word == "ENTRYPOINT"][-1]
    cmd_line = [exec_form(rest) for word, rest in final if word == "CMD"][-1]
    assert entry == ["quotaroute", "serve"]
    assert cmd_line == ["--host", "0.0.0.0", "--port", "4000"]  # keys are then required (see docs/security.md)


def test_no_secret_is_baked_into_the_image() -> None:
    for word, rest in instructions():
        if word in ("ENV", "ARG"):
            for name in re.findall(r"(\w+)=", rest) or [rest.split("=")[0]]:
                assert not SECRETISH.search(name), f"{word} {rest}: secrets come from the environment at run time"
        if word in ("COPY", "ADD") and "--from=" not in rest:
            sources = rest.split()[:-1]
            for s in sources:
                assert s in ("pyproject.toml", "README.md", "router", "providers"), f"{word} {rest}"
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*"  # deny by default, then let in only the sources
    assert {ln for ln in ignore if ln.startswith("!")} == {"!pyproject.toml", "!README.md", "!router/", "!providers/"}
    for pattern in ("**/.env", "**/*.sqlite"):
        assert pattern in ignore


def test_the_image_installs_extras_the_project_declares_or_a_deployment_needs() -> None:
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("optional-dependencies", {}))
    args = [rest for word, rest in stages()[0] if word == "ARG" and rest.startswith("EXTRAS=")]
    wanted = set(args[0].split("=", 1)[1].split(","))
    assert wanted <= extras | {"postgres"}, wanted - extras  # postgres: the PostgreSQL store's extra
    assert not wanted & {"test", "bench", "demo"}  # no test or plotting dependencies in the image


@pytest.mark.slow
def test_the_install_step_builds_a_working_package_from_what_dockerignore_lets_in(tmp_path: Path) -> None:
    """What `COPY pyproject.toml README.md router providers` + `pip install .` yields, offline:
    a package without tests or benchmarks that loads the example config and builds the Router."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite*")
    for name in ("router", "providers"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    # setuptools' build step: the package discovery and package data a wheel (pip install .) is made of
    r = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build",
                        "--build-base", str(tmp_path / "build")], cwd=src, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    site = tmp_path / "build" / "lib"
    assert not (site / "benchmarks").exists() and not (site / "tests").exists()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_example_for_this_schema())
    probe = ("import router, router.server.cli as c, asyncio\n"
             "assert router.__file__.startswith(%r), router.__file__\n"
             "cfg, settings = c.load(%r)\n"
             "c.check_config(cfg, None)\n"
             "print('ok', settings.port)\n") % (str(site), str(cfg))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), QUOTAROUTE_HOME=str(tmp_path / "home"), OPENAI_API_KEY="sk-test-not-used",
               QUOTAROUTE_LEDGER_URL="redis://127.0.0.1:1/0", QUOTAROUTE_DATABASE_URL="postgresql://u@127.0.0.1:1/q")
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok 4000"), r.stdout + r.stderr[-2000:]


def test_the_healthcheck_command_tells_up_from_down() -> None:
    from tests.router.server.conftest import LiveServer, free_port, make_app
    from tests.router.server.fakes import FakeRouter

    check = [rest for word, rest in stages()[-1] if word == "HEALTHCHECK"][0]
    code = exec_form(check.split("CMD", 1)[1].strip())[-1]
    import tempfile

    with tempfile.TemporaryDirectory() as d, LiveServer(make_app(FakeRouter(), Path(d) / "spend.sqlite")) as srv:
        up = subprocess.run([sys.executable, "-c", code.replace(":4000/", f":{srv.port}/")], timeout=30)
        assert up.returncode == 0
    down = subprocess.run([sys.executable, "-c", code.replace(":4000/", f":{free_port()}/")],
                          capture_output=True, timeout=30)
    assert down.returncode != 0


# ------------------------------------------------------------------ compose.yaml

def test_compose_file_is_valid_against_the_compose_schema() -> None:
    import jsonschema

    schema = json.loads((ROOT / "tests" / "fixtures" / "deploy" / "compose-spec.json").read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(compose())]
    assert not errors, errors


def test_compose_starts_quotaroute_after_healthy_redis_and_postgres() -> None:
    svc = compose()["services"]
    assert set(svc) == {"quotaroute", "redis", "postgres"}
    q = svc["quotaroute"]
    assert q["depends_on"] == {"redis": {"condition": "service_healthy"},
                               "postgres": {"condition": "service_healthy"}}
    for name, s in svc.items():
        assert s.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    image_check = exec_form([r for w, r in stages()[-1] if w == "HEALTHCHECK"][0].split("CMD", 1)[1].strip())
    assert q["healthcheck"]["test"] == ["CMD", *image_check]
    assert q.get("init") is True  # SIGHUP and SIGTERM reach quotaroute through a real init
    assert q["build"] == "." and "4000" in q["ports"][0].split(":")[-1]
    assert svc["redis"]["image"].startswith("redis:") and svc["postgres"]["image"].startswith("postgres:")
    assert int(q["stop_grace_period"].rstrip("s")) > 30  # longer than --graceful-timeout's default


def test_compose_mounts_the_config_and_home_where_the_image_reads_them() -> None:
    env = env_of(stages()[-1])
    q = compose()["services"]["quotaroute"]
    mounts = {}
    for v in q["volumes"]:
        if isinstance(v, str):
            src, dst = v.split(":")[:2]
            mounts[dst] = {"source": src, "type": "volume"}
        else:
            mounts[v["target"]] = v
    conf = mounts[env["QUOTAROUTE_CONFIG"]]
    assert conf["type"] == "bind" and conf["read_only"] is True and conf["bind"]["create_host_path"] is False
    assert conf["source"] == "./deploy/config.yaml"
    assert mounts[env["QUOTAROUTE_HOME"]]["source"] in compose()["volumes"]
    assert q["environment"]["QUOTAROUTE_CONFIG"] == env["QUOTAROUTE_CONFIG"]
    assert q["environment"]["QUOTAROUTE_HOME"] == env["QUOTAROUTE_HOME"]


def test_compose_holds_no_secret_values() -> None:
    text = COMPOSE.read_text()
    for name, s in compose()["services"].items():
        for k, v in (s.get("environment") or {}).items():
            if SECRETISH.search(k) or "password" in str(v).lower():
                assert "${" in str(v), f"{name}.{k} must come from the environment (.env), not the file"
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?" in text
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)


def test_compose_environment_names_are_the_ones_quotaroute_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.config import effective_store, parse_config
    from router.config.paths import ENV_CONFIG, ENV_HOME
    from router.config.schema import ServerCfg

    env = compose()["services"]["quotaroute"]["environment"]
    assert {ENV_CONFIG, ENV_HOME} <= set(env)
    monkeypatch.setenv("QUOTAROUTE_LEDGER_URL", env["QUOTAROUTE_LEDGER_URL"])
    example = parse_config(yaml.safe_load(_example_for_this_schema()) or {})
    assert effective_store(example) == "redis"  # the ledger is the compose file's Redis service
    assert env["QUOTAROUTE_LEDGER_URL"].startswith("redis://redis:")
    dsn_env = yaml.safe_load(EXAMPLE.read_text())["server"]["dsn_env"]
    assert dsn_env in env and env[dsn_env].startswith("postgresql://") and "@postgres:5432/" in env[dsn_env]
    if "dsn_env" in ServerCfg.model_fields:
        assert ServerCfg.model_fields["dsn_env"].default == dsn_env


def test_the_example_config_is_valid() -> None:
    from router.config import parse_config

    cfg = parse_config(yaml.safe_load(_example_for_this_schema()) or {}, file=str(EXAMPLE))
    assert cfg.ledger.store is None  # the ledger comes from QUOTAROUTE_LEDGER_URL (compose.yaml)
    assert not cfg.server.keys and cfg.server.admin_key is None  # the operator adds hashes; none ship


def _example_for_this_schema() -> str:
    """The example config; without the PostgreSQL store in this version's schema, its
    `store`/`dsn_env` lines are left out (what compose.yaml's header tells users to do)."""
    from router.config.schema import ServerCfg

    text = EXAMPLE.read_text()
    if "store" not in ServerCfg.model_fields:
        text = "\n".join(ln for ln in text.splitlines() if not re.match(r"\s+(store|dsn_env):", ln))
    return text


# ------------------------------------------------------------------ the replicas overlay

class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's `!reset` tag (an override that clears a value)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: [] if isinstance(node, yaml.SequenceNode) else None)


def test_the_replicas_overlay_puts_nginx_before_three_replicas() -> None:
    import jsonschema

    overlay = yaml.load((ROOT / "deploy" / "compose.replicas.yaml").read_text(), Loader=_ComposeLoader)
    schema = json.loads((ROOT / "tests" / "fixtures" / "deploy" / "compose-spec.json").read_text())
    merged = compose()
    for name, svc in overlay["services"].items():
        merged["services"][name] = {**merged["services"].get(name, {}), **svc}
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(merged)]
    assert not errors, errors
    q, lb = merged["services"]["quotaroute"], merged["services"]["lb"]
    assert q["ports"] == [] and q["deploy"]["replicas"] == 3  # only the balancer publishes the port
    assert lb["depends_on"] == {"quotaroute": {"condition": "service_healthy"}}
    conf_mount = lb["volumes"][0]
    assert (ROOT / conf_mount["source"]).is_file() and conf_mount["target"].startswith("/etc/nginx/")
    conf = (ROOT / conf_mount["source"]).read_text()
    assert "server quotaroute:4000;" in conf and "listen 4000;" in conf
    assert "proxy_buffering off;" in conf  # streams pass through as they come
    assert "max_auth_failures_per_minute: 0" in (ROOT / "deploy" / "compose.replicas.yaml").read_text()
