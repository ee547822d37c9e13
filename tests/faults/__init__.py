"""Fault tests: workers killed mid-task, the broker restarted with work queued."""
