"""The DJ console and the open live API (issue 12): a FastAPI app over one data home.

``app`` builds it (:func:`flowaudit.console.app.create_app`), ``keys`` issues and checks the
API keys, ``reader`` turns what the live workers commit into the /v1 shapes, ``stream`` is the
multiplexed server-sent-events stream, ``controls`` the override / veto / pin endpoints' rules,
``scorers`` the third-party scorer feed. This is the composition layer: it may use
``pipeline``, ``retention`` and ``audit``.
"""
