"""The composition root: the app factory (every collaborator built and passed in), the server that runs it
(uvicorn, local workers beside it, signals), catalog reload triggers, and garbage-collection tuning."""
