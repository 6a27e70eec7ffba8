"""A web process that answers with what the worker last wrote."""

import http.server
import os
import pathlib

STATE = pathlib.Path("/tmp/worker-beat")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"web {os.environ.get('DYNO', '?')} up; worker beats in this dyno: {STATE.read_text() if STATE.exists() else 'none'}\n"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
