"""Two gateway processes on one store behind a real nginx (Debian's package) on loopback: the
load balancer spreads the calls over both, and every answered call is stored once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from fledgling.gateway.server import ServerThread
from fledgling.store import Store

from .conftest import FaultyUpstream, GatewayProcess, free_port, write_config

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "my order is late"}]}

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def _nginx(tmp: Path, port: int, backends: list[int]) -> subprocess.Popen:
    d = tmp / "nginx"
    d.mkdir()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in backends)
    (d / "nginx.conf").write_text(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  upstream gateways {{
{servers}    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;  # the gateway checks the Host (DNS rebinding guard)
    }}
  }}
}}
""")
    assert NGINX is not None
    proc = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"nginx did not start: {proc.communicate()[1].decode()[-2000:]}") from None
            time.sleep(0.05)


def test_two_gateways_behind_nginx_store_each_call_once(store_url: str, tmp_path: Path) -> None:
    with ServerThread(FaultyUpstream()) as up:
        gateways = []
        for i in range(2):  # each gateway its own spool directory, as on two hosts; one store
            config = write_config(tmp_path / f"fledgling-{i}.toml", up + "/v1", store_url, tmp_path / f"spool-{i}")
            gateways.append(GatewayProcess(config, free_port(), tmp_path))
        lb_port = free_port()
        lb = _nginx(tmp_path, lb_port, [g.port for g in gateways])
        try:
            with httpx.Client(timeout=10) as client:
                ids = []
                for _ in range(200):
                    r = client.post(f"http://127.0.0.1:{lb_port}/v1/chat/completions", json=BODY)
                    assert r.status_code == 200, r.text
                    ids.append(r.headers["x-fledgling-call-id"])
            served = [g.health()["recorder"]["appended"] for g in gateways]
        finally:
            lb.send_signal(signal.SIGQUIT)
            lb.wait(20)
            for g in gateways:
                g.proc.send_signal(signal.SIGTERM)
                g.proc.wait(30)
    assert all(n >= 20 for n in served), served  # nginx spread the calls over both gateways
    assert sum(served) == len(ids) == len(set(ids)) == 200
    assert all(g.proc.returncode == 0 for g in gateways)
    with Store(store_url) as store:
        with store.engine.connect() as conn:
            rows, distinct = conn.execute(text("select count(*), count(distinct id) from calls")).one()
        stored = {c.id for c in store.iter_calls()}
    assert rows == distinct == len(stored) == 200 and stored == set(ids)
