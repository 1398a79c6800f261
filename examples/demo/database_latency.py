"""A slow database for the demo.

With SQLite there is no network to slow down, so each new DBAPI connection gets a
``sqlite3`` trace callback that sleeps before every statement while the fault is on: the
wait happens inside the driver's ``execute``, where brownout times statements, just as a
slow disk or an overloaded server would show. (With PostgreSQL the demo uses the TCP
:class:`~examples.demo.fault_proxy.FaultProxy` instead.)
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class SQLiteLatency:
    def __init__(self) -> None:
        self.seconds = 0.0

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.set_trace_callback(self._statement)

    def _statement(self, statement: str) -> None:
        seconds = self.seconds
        if seconds > 0:
            time.sleep(seconds)
