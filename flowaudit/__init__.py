"""flowaudit: privacy compliance and data retention for a live-event audio pipeline.

This package holds the CLI and the wiring; the work is done by `pipeline`, `retention` and
`audit`.
"""

import logging

from retention.errors import FlowauditError

__all__ = ["FlowauditError", "__version__"]
__version__ = "0.1.0"

logging.getLogger("flowaudit").addHandler(logging.NullHandler())
