"""Keyed pseudonyms: the same original always becomes the same replacement under one key.

PS3.15 E.1.1 asks that replaced UIDs stay internally consistent across a set of instances,
and a research archive de-identifies the same study again later (new series arrive, a request
is repeated): so replacements are not drawn at random and remembered, they are derived from
the original by HMAC-SHA-256 under the archive's secret. Without the key, a pseudonym says
nothing of its original; with another key, every pseudonym differs.

- A UID becomes ``2.25.`` and the decimal of 128 bits of the HMAC (PS3.5 B.2: a UUID-derived
  UID; at most 44 characters). The HMAC also covers the ``variant``: what the request asked
  for beyond the Basic Profile (its options and given values). A copy made under other options
  holds other values, so it must be other instances, with UIDs of its own (PS3.5 9.1): two
  copies of one study under different requests then sit side by side in an archive instead of
  colliding. The same request always gives the same UIDs.
- A Patient ID becomes a 20-character code of the same HMAC, upper-case hex.
- A patient's dates move by one offset of whole days, the same for all of that patient's
  dates, so intervals are kept: between 365 and 3,650 days into the past.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

MIN_OFFSET_DAYS, MAX_OFFSET_DAYS = 365, 3650


@dataclass
class Pseudonyms:
    """Pseudonyms under one secret; UIDs memoised (an instance repeats its references)."""

    secret: bytes
    variant: str = ""
    _uids: dict[str, str] = field(default_factory=dict, repr=False)

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        known = self._uids.get(original)
        if known is None:
            salted = f"{self.variant}\x00{original}" if self.variant else original
            number = int.from_bytes(self._digest("uid", salted)[:16], "big")
            known = self._uids[original] = f"2.25.{number}"
        return known

    def patient_id(self, original: str) -> str:
        return self._digest("patient-id", original).hex()[:20].upper()

    def date_offset_days(self, patient_id: str) -> int:
        """Days to subtract from every date of this patient (identified by the original
        Patient ID)."""
        span = MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1
        number = int.from_bytes(self._digest("date-offset", patient_id)[:8], "big")
        return MIN_OFFSET_DAYS + number % span
