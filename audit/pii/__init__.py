"""Personal data in free text: presidio, French and English, fully offline.

- :mod:`audit.pii.scanner` finds and redacts PII in texts and records;
- :mod:`audit.pii.recognizers` holds one recognizer per file (FR NIR, phones, IBAN, …);
- :mod:`audit.pii.store` scans the store's free-text metadata, :mod:`audit.pii.files` a
  CSV or JSON Lines file a user brings.

Nothing is imported here: loading presidio and spaCy takes seconds, and only the commands
that scan text should pay for it.
"""
