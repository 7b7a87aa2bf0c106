"""Which column names identify a person (kept out of drift comparisons and out of the HTML report).

>>> [c for c in ["user_id", "CustomerID", "email", "customer_name", "n_orders", "refund_rate"] if is_identifier(c)]
['user_id', 'CustomerID', 'email', 'customer_name']
"""

from __future__ import annotations

import re

#: Names taken for identifiers or personal data: ids, account numbers, e-mail, phone, names, addresses, IPs.
IDENTIFIER = re.compile(
    r"^(id|.*_id|(customer|user|order|account|client|member|invoice)_?(id|no|number)|e_?mail.*|phone.*|"
    r"(first|last|full|user|customer|client|given|family)_?name|name|address.*|ip(_?address)?)$",
    re.IGNORECASE)


def is_identifier(name: object) -> bool:
    """Whether a column called ``name`` identifies a person (by its name only)."""
    return bool(IDENTIFIER.match(str(name)))
