"""examples/python: a Flask app served by gunicorn (see Procfile)."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return f"Hello from {os.environ.get('DYNO', 'a dyno')} of {os.environ.get('FLEET_APP_NAME', 'fleet')}\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
