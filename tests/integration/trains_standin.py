"""A STAND-IN for one of trains-server's servers, for the health tests: trains-server's
containers cannot run on the test bed (no Kubernetes runs pods there), so this small HTTP server,
started inside a test-bed node's network namespace on the server's NodePort, answers what the
real one answers to trains-nodeprep's probes. It is not trains-server.

    python3 trains_standin.py api|web|files PORT

- api: `GET /debug.ping` 200 with a JSON body like the API server's; any other path 404.
- web: 200 with a small HTML page for any path.
- files: 404 for `/` (as the file server answers a path that is no file): any HTTP answer is up.

Standard library only: it runs with the node's /usr/bin/python3.
"""

from __future__ import annotations

import http.server
import json
import sys


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = f"trains-standin-{kind}"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if kind == "api":
                if self.path.split("?")[0] == "/debug.ping":
                    meta = {"endpoint": {"name": "debug.ping"}, "result_code": 200}
                    self.answer(200, "application/json", json.dumps({"meta": meta, "data": {}}))
                else:
                    self.answer(404, "application/json", '{"meta": {"result_code": 404}}')
            elif kind == "web":
                self.answer(200, "text/html", "<html><title>stand-in web app</title></html>")
            else:
                self.answer(404, "text/html", "<html>Not Found</html>")

        def answer(self, status: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
