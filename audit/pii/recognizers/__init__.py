"""PII recognizers flowaudit adds to, or adapts from, presidio (one per module).

* ``fr_nir``      French social security number (NIR) with its control key
* ``fr_phone``    French phone numbers (national and +33 forms)
* ``phone_shapes`` numbers written like phone numbers: +CC…, (555) 123-4567, (0161) 496 0000
* ``phone``       validity-checked national formats via libphonenumber (opt-in regions)
* ``email``       email addresses, validated against the *bundled* public suffix list
* ``url``         URLs (regex only, no suffix-list fetch)
* ``iban``        IBANs with their checksum, French context words
* ``credit_card`` card numbers with the Luhn check
* ``ip_address``  IPv4 / IPv6 addresses
* ``person``      PERSON (and LOCATION / ORGANIZATION on request) from the spaCy NER
"""

from audit.pii.recognizers._registry import (
    DEFAULT_PHONE_REGIONS,
    RecognizerConfig,
    build_recognizers,
    recognizer,
    recognizer_names,
)
from audit.pii.recognizers.fr_nir import FrNirRecognizer, is_valid_nir, nir_key

__all__ = [
    "DEFAULT_PHONE_REGIONS",
    "RecognizerConfig",
    "build_recognizers",
    "recognizer",
    "recognizer_names",
    "FrNirRecognizer",
    "is_valid_nir",
    "nir_key",
]
