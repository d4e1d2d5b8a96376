"""The request path: the one handler every inference request enters (`/v1/*`, `/api/*`, coaching), the
pipeline of stages (authorize, choose model, cache, admit, forward, settle and fill, capture), worker
slots, and the process lifecycle the forwarder obeys at shutdown."""
