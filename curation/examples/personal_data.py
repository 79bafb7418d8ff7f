"""Personal data in a text: email addresses, personal phone numbers and payment card numbers.

The same detectors serve the live check of a draft (curation.examples.checks) and the snapshot
validation (curation.datasets.validation), so an author and a lead see the same findings.
"""

from __future__ import annotations

import re

from schemas import ExampleContent

EMAIL_REGEX = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# US style (555-123-4567, (555) 123-4567, +1 555.123.4567) or international (+44 20 7946 0958).
# Toll-free numbers (800, 833 ... 888) are business lines, not personal data: the sample team's
# answers quote 1-800-555-0142 over a hundred times, which would drown the real findings.
_TOLL_FREE = r"8(?:00|33|44|55|66|77|88)"
PHONE_REGEX = (
    rf"(?<![0-9+])(?:\+?1[ .-]?)?(?:\((?!{_TOLL_FREE}\))[2-9][0-9]{{2}}\) ?|(?!{_TOLL_FREE}[ .-])[2-9][0-9]{{2}}[ .-])"
    r"[0-9]{3}[ .-][0-9]{4}(?![0-9])"
    rf"|(?<![0-9A-Za-z])\+(?!1[ .-]?\(?{_TOLL_FREE})[0-9]{{1,3}}[ .-]?(?:\(0\)[ .-]?)?[0-9](?:[ .-]?[0-9]){{5,13}}(?![0-9])"
)
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")


def card_number(text: str | None) -> str | None:
    """'card ending 1111' when text holds a 13-19 digit number (spaces/dashes allowed) passing Luhn."""
    for run in _DIGIT_RUN.finditer(text or ""):
        groups = re.split(r"[ -]", run.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and digits.strip("0") and _luhn(digits):
                    return f"card ending {digits[-4:]}"  # never copy a card number into a report
    return None


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def personal_data_warnings(content: ExampleContent) -> list[str]:
    """One sentence per kind of personal data found in each turn, with the fix."""
    warnings = []
    for m in content.messages:
        if re.search(EMAIL_REGEX, m.content):
            warnings.append(f"The {m.role} turn contains an email address; replace it with a placeholder like [email].")
        if re.search(PHONE_REGEX, m.content):
            warnings.append(f"The {m.role} turn contains a personal phone number; replace it with a placeholder like [phone].")
        card = card_number(m.content)
        if card:
            warnings.append(f"The {m.role} turn contains a payment card number ({card}); replace it with [card number].")
    return list(dict.fromkeys(warnings))
