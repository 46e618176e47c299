"""Identity and access: who acts (people and machine clients with roles) and what they may do.

The interface the rest of the product calls:

- ``Authenticator.authenticate(authorization_header, client_address) -> Principal`` (API keys, OIDC access tokens,
  the legacy per-role tokens when allowed), then ``allowed(principal, Permission.X)``;
- ``IdentityStore``: principals, roles, API keys, the identity audit outbox (``unpublished_audit``);
- ``AuthorizationCodeFlow`` for the browser's single sign-on, ``TokenVerifier`` for bearer tokens;
- ``FailureLimiter`` for failed logins, ``active_secrets``/``check_any`` for rotating source HMAC secrets;
- ``Principal`` (``pipeline.models.identity``): the value the audit and the rights tracker record.
"""

from pipeline.identity.authenticator import Authenticator
from pipeline.identity.oidc import AuthorizationCodeFlow, LoginResult, LoginStart, OidcConfig, TokenError, TokenVerifier
from pipeline.identity.permissions import ROLE_PERMISSIONS, Permission, allowed
from pipeline.identity.ratelimit import FailureLimiter
from pipeline.identity.source_secrets import active_secrets, check_any
from pipeline.identity.store import AuthenticationFailed, IdentityError, IdentityStore
from pipeline.models.identity import Principal, PrincipalKind, Role

__all__ = [
    "ROLE_PERMISSIONS",
    "AuthenticationFailed",
    "Authenticator",
    "AuthorizationCodeFlow",
    "FailureLimiter",
    "IdentityError",
    "IdentityStore",
    "LoginResult",
    "LoginStart",
    "OidcConfig",
    "Permission",
    "Principal",
    "PrincipalKind",
    "Role",
    "TokenError",
    "TokenVerifier",
    "active_secrets",
    "allowed",
    "check_any",
]
