"""Whose usage a report caller may read: the admin token reads every key (or the one named in
`key_id=`), any other caller only its own key's rows. Pure lookups, like the auth guard.
"""

from __future__ import annotations

from gateway.errors import Forbidden
from gateway.keys.hashing import bearer_token, same_secret
from gateway.keys.keyring import Keyring
from gateway.reports.query import ALL_KEYS

OWN_ONLY = "a key reads only its own usage; the admin token reads every key's"


def report_scope(
    keys: Keyring, authorization: str | None, key_id: str | None, required: bool | None = None
) -> str | None:
    """The one key id whose rows the caller reads, or `ALL_KEYS` (admin without `key_id`).

    A user key (or the anonymous caller, with auth off) asking for another key's rows gets 403;
    a bad key gets the auth policy's 401. `required`: the request's own policy (`gateway.edge`:
    a gateway bound to every address requires keys from the others); None: the settings'.
    """
    token = bearer_token(authorization)
    if keys.admin_token and token is not None and same_secret(token, keys.admin_token):
        return key_id if key_id else ALL_KEYS
    caller = keys.authenticate(authorization, required)
    if key_id and key_id != caller.id:
        raise Forbidden(OWN_ONLY, metadata={"parameter": "key_id"})
    return caller.id
