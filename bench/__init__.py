"""Benchmarks: wasched against the polling baseline it replaces (`make bench`)."""
