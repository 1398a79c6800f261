"""The retail service's dependencies, started locally for the demo."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from moto.server import ThreadedMotoServer
from sqlalchemy.engine import make_url

from examples.demo.fault_proxy import FaultProxy
from examples.demo.openai_server import OpenAIStandIn
from examples.demo.ports import free_port, wait_for_port
from examples.demo.redis_process import RedisProcess
from examples.demo.redis_standin import RedisStandIn


@dataclass
class Dependencies:
    directory: Path
    cache: RedisProcess | RedisStandIn
    openai: OpenAIStandIn
    moto: ThreadedMotoServer
    s3_proxy: FaultProxy
    database_url: str
    database_proxy: FaultProxy | None

    @classmethod
    def start(cls, stack: contextlib.ExitStack, database_url: str | None) -> Dependencies:
        """Start everything, registering each piece's cleanup on ``stack`` as it starts."""
        directory = Path(tempfile.mkdtemp(prefix="brownout-demo-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        # A real redis-server when there is one; otherwise a stand-in the demo can kill.
        cache: RedisProcess | RedisStandIn = RedisProcess.find() or RedisStandIn()
        stack.callback(cache.close)
        cache.start()
        openai = OpenAIStandIn()
        openai.start()
        stack.callback(openai.close)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        moto_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        wait_for_port(moto_port, 30, "moto S3 server")
        s3_proxy = FaultProxy(moto_port).start()
        stack.callback(s3_proxy.close)
        database_proxy = None
        if database_url is None:
            database_url = f"sqlite:///{directory / 'retail.db'}"
        elif not database_url.startswith("sqlite"):
            url = make_url(database_url)
            database_proxy = FaultProxy(url.port or 5432, url.host or "127.0.0.1").start()
            stack.callback(database_proxy.close)
            proxied = url.set(host="127.0.0.1", port=database_proxy.port)
            database_url = proxied.render_as_string(hide_password=False)
        return cls(directory, cache, openai, moto, s3_proxy, database_url, database_proxy)

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_proxy.port}"

    def environment(self) -> dict[str, str]:
        """``RETAIL_*`` variables pointing the service at these dependencies."""
        return {
            "RETAIL_DATABASE_URL": self.database_url,
            "RETAIL_REDIS_URL": self.cache.url,
            "RETAIL_S3_ENDPOINT": self.s3_endpoint,
            "RETAIL_OPENAI_BASE_URL": self.openai.base_url,
            "RETAIL_OPENAI_API_KEY": "sk-brownout-demo",
            "RETAIL_OPENAI_MODEL": "demo-model",
        }
