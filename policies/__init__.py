"""The shipped policy profiles (``*.toml``), installed as package data.

This package holds no code: it exists so that :func:`retention.policy.policy_dir` can find the
profiles with :mod:`importlib.resources` in an installed wheel as well as in a checkout.
"""
