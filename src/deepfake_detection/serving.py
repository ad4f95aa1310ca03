"""``serve``: MLflow's own scoring server for a detector, with two guards in front of it.

Same REST API as ``mlflow models serve`` (``POST /invocations``, ``GET /ping``, ``/health``,
``/version``), built from ``mlflow.pyfunc.scoring_server``. Additionally a request whose
``Content-Length`` is over the limit is answered 413 before its body is read, and it binds to
127.0.0.1 unless told otherwise. (Under plain ``mlflow models serve`` the detector itself still
refuses over-large requests with a 400 once they are read.)
"""

from __future__ import annotations

import os

from deepfake_detection.model import DEFAULT_MAX_REQUEST_BYTES

# JSON carries image bytes base64-encoded (4/3 larger) plus a little framing.
_JSON_OVERHEAD = 1.5


def build_app(model_uri: str, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    """The FastAPI app serving ``model_uri``; checks it is a detector before anything listens."""
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from mlflow.pyfunc import scoring_server

    from deepfake_detection.model import load_pyfunc

    os.environ["DEEPFAKE_MAX_REQUEST_BYTES"] = str(max_request_bytes)
    # A missing model or one of the wrong kind fails here, with a clear message, before anything listens.
    app = scoring_server.init(load_pyfunc(model_uri))
    body_limit = int(max_request_bytes * _JSON_OVERHEAD) + 4096

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None and request.url.path == "/invocations":
            return JSONResponse({"error_code": "LENGTH_REQUIRED", "message": "send a Content-Length header"}, 411)
        if length is not None and (not length.isdigit() or int(length) > body_limit):
            return JSONResponse(
                {
                    "error_code": "REQUEST_TOO_LARGE",
                    "message": f"request body of {length} bytes is over the limit of {body_limit:,}; "
                    "send fewer or smaller images per request",
                },
                413,
            )
        return await call_next(request)

    return app


_URI_VARIABLE = "DEEPFAKE_SERVE_MODEL_URI"


def app_from_environment():
    """The app for one of several worker processes (uvicorn imports it by name in each)."""
    return build_app(os.environ[_URI_VARIABLE], int(os.environ["DEEPFAKE_MAX_REQUEST_BYTES"]))


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5001,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    workers: int = 1,
) -> None:
    """Serve until stopped. One request is scored at a time per worker process (the model's
    TensorFlow uses the machine's cores for it); ``workers`` > 1 starts that many processes,
    each with its own copy of the model, behind one port."""
    import uvicorn

    if workers == 1:
        uvicorn.run(build_app(model_uri, max_request_bytes), host=host, port=port, log_level="info")
        return
    from deepfake_detection.model import check_detector

    check_detector(model_uri)  # before anything listens; the model itself is loaded by each worker only
    os.environ[_URI_VARIABLE] = model_uri
    os.environ["DEEPFAKE_MAX_REQUEST_BYTES"] = str(max_request_bytes)
    uvicorn.run(
        "deepfake_detection.serving:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
    )
