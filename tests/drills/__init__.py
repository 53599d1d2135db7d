"""Reliability drills: the real server in subprocesses, under load, crashes, corruption, outages."""
