"""What every benchmark suite runs on: child processes and what /proc says about them, the nginx
upstream, the one gateway launcher and its configurations, the machine's noise and CPU shares, py-spy
profiles, and where results go (the runs folder, RESULTS.md's sections)."""
