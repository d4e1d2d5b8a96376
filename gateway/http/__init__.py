"""Everything HTTP: the only package (with `gateway.app`) that imports litestar or speaks ASGI.

    request_observer   outermost ASGI layer: request id, metrics, the one log line, header size limit
    fast_path          the inference POSTs as plain ASGI in front of litestar
    replies            the inference handler's reply as a response (ASGI or litestar), stream headers
    routes/            litestar handlers per area (OpenAI, mobile, keys, workers, health, ...)
    error_rendering    every error becomes its surface's error object here
"""
