"""The REST API over the demo's store, served in-process while the demo is live.

Production runs ``kubetally api`` under gunicorn with several worker processes; the
demo only needs someone to paste a few curl commands, so one threaded werkzeug server
in a thread of the demo's process is enough, and it stops with the demo. The API is
optional here (``api/`` arrived after the demo): without it the demo serves the rest.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

from kubetally.demo_cluster import free_port

__all__ = ["DemoApi", "api_commands", "start_api"]

log = logging.getLogger(__name__)


@dataclass
class DemoApi:
    """A running API server and its thread."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start_api(store: str, host: str, port: int) -> DemoApi | None:
    """Serve the API over ``store`` on ``port`` (ephemeral when taken); None without ``api/``."""
    try:
        from api.app import create_app
        from api.config import ApiConfig
    except ImportError as exc:
        log.info("no API in this checkout (%s): serving exporters and aggregator only", exc)
        return None
    app = create_app(ApiConfig(store=store, host=host, port=port))
    server = make_server(host, free_port(host, port), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-api")
    thread.start()
    return DemoApi(server, thread)


def api_commands(port: int) -> str:
    """Ready-to-paste queries of the API: allocation by namespace, by label, with idle; assets."""
    base = f"localhost:{port}/api/v1"
    pretty = " | python3 -m json.tool | head -40"
    return "\n".join([
        f"  curl -s '{base}/allocation?window=7d&aggregate=namespace&accumulate=true'{pretty}",
        f"  curl -s '{base}/allocation?window=7d&aggregate=label:team&accumulate=true'{pretty}",
        f"  curl -s '{base}/allocation?window=24h&aggregate=node&step=1h&includeIdle=true'"
        f"{pretty}",
        f"  curl -s '{base}/assets?window=7d&accumulate=true'{pretty}",
        f"  curl -s localhost:{port}/readyz",
    ])
