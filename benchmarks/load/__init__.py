"""The load generators, one per kind: closed loop with wrk (wrk.py, with the workloads' Lua scripts),
open loop at a fixed rate (open_loop.py, in a process of its own), and Python clients that stream
(sse.py) driven in closed or open loop (drivers.py)."""
