"""Phone numbers read and written as E.164 with ``phonenumbers`` (Google's libphonenumber)."""

from __future__ import annotations

import phonenumbers

from atelier_ports.problems import InvalidArgument

MAX_PHONE_INPUT = 32  # longer than any phone number written with spaces and punctuation


class LibPhoneNumbers:
    """The ``PhoneNumbers`` port. A number without ``+`` and country code is read in
    ``default_region`` (mainland China: ``13800138000`` → ``+8613800138000``)."""

    def __init__(self, default_region: str = "CN") -> None:
        self._region = default_region

    def normalise(self, raw: str) -> str:
        text = raw.strip()
        if not text or len(text) > MAX_PHONE_INPUT:
            raise InvalidArgument("not a valid phone number", field="phone")
        try:
            number = phonenumbers.parse(text, self._region)
        except phonenumbers.NumberParseException:
            raise InvalidArgument("not a valid phone number", field="phone") from None
        if not phonenumbers.is_valid_number(number):
            raise InvalidArgument("not a valid phone number", field="phone")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
