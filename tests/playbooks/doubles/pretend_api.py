"""The pretend API server the kubelet and kubectl TEST DOUBLES share (runs in the test process, on the testbed).

There is no kube-apiserver on a test host. This keeps just the Node objects: the kubelet double registers its
node here when it starts (name, labels from --node-labels, taints from --register-with-taints, as a real kubelet
does), and the kubectl double reads and changes them. Tests read the same state to check what the playbooks did.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PretendApi:
    """Nodes by name, served as JSON on ``address:port``: GET/PUT /nodes (all), POST /nodes/<name> (register)."""

    def __init__(self, address: str, port: int) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")

            def do_GET(self) -> None:
                with api.lock:
                    self._reply(200, api.nodes)

            def do_PUT(self) -> None:
                body = self._body()
                with api.lock:
                    api.nodes = body
                    self._reply(200, api.nodes)

            def do_POST(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                body = self._body()
                with api.lock:
                    # A kubelet registers once; a Node that exists keeps its labels, taints and cordon.
                    created = name not in api.nodes
                    api.nodes.setdefault(name, body)
                    self._reply(201 if created else 200, api.nodes[name])

        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.url = f"http://{address}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> PretendApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
