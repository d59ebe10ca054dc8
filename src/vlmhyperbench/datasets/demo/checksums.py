"""Check digits of Russian identifiers: СНИЛС and ИНН.

Both follow the published algorithms, so generated numbers pass real-world validators.
"""

from __future__ import annotations

import re

SNILS_UNCHECKED_MAX = 1_001_998
"""Numbers up to 001-001-998 were issued before check digits existed; none are valid here."""

_SNILS_RE = re.compile(r"(\d{3})-?(\d{3})-?(\d{3})[ -]?(\d{2})")
_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def snils_check_digits(number: str) -> str:
    """The two check digits of a 9-digit СНИЛС number.

    Digits are weighted 9..1 from the left; a sum under 100 is the check number, 100 and 101
    give "00", a larger sum is taken modulo 101 (and a remainder of 100 gives "00" too).
    """
    if not re.fullmatch(r"\d{9}", number):
        raise ValueError(f"a СНИЛС number has 9 digits, got {number!r}")
    total = sum(int(digit) * weight for digit, weight in zip(number, range(9, 0, -1), strict=True))
    if total > 101:
        total %= 101
    return "00" if total in (100, 101) else f"{total:02d}"


def format_snils(number: str, check: str) -> str:
    """``"123456789", "01"`` → ``"123-456-789 01"``."""
    return f"{number[:3]}-{number[3:6]}-{number[6:]} {check}"


def is_valid_snils(value: str) -> bool:
    """Whether ``value`` (``"123-456-789 01"`` or 11 bare digits) has correct check digits."""
    match = _SNILS_RE.fullmatch(value.strip())
    if not match:
        return False
    number = "".join(match.groups()[:3])
    if int(number) <= SNILS_UNCHECKED_MAX:
        return False
    return snils_check_digits(number) == match.group(4)


def _weighted_digit(digits: str, weights: tuple[int, ...]) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))
    return str(total % 11 % 10)


def inn10_check_digit(first9: str) -> str:
    """The 10th (check) digit of a legal entity's ИНН."""
    if not re.fullmatch(r"\d{9}", first9):
        raise ValueError(f"expected the first 9 digits of an ИНН, got {first9!r}")
    return _weighted_digit(first9, _INN10_WEIGHTS)


def is_valid_inn(value: str) -> bool:
    """Whether a 10-digit (organisation) or 12-digit (person) ИНН has correct check digits."""
    value = value.strip()
    if re.fullmatch(r"\d{10}", value):
        return inn10_check_digit(value[:9]) == value[9]
    if re.fullmatch(r"\d{12}", value):
        n11 = _weighted_digit(value[:10], _INN12_WEIGHTS_11)
        n12 = _weighted_digit(value[:10] + n11, _INN12_WEIGHTS_12)
        return value[10:] == n11 + n12
    return False
