"""Leaf helpers both sides share: bounded reads, descriptor-safe paths,
atomic writes, logging, signals, the worker pool, the op CLI client.

Nothing here imports nixseal.age, .engine, .repo or .cli.
"""
