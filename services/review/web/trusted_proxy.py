"""Trusted auth-proxy mode: single sign-on through a proxy in front of review (oauth2-proxy, Pomerium...).

The proxy authenticates people and passes who they are in headers. Those headers are believed only on requests whose
peer address is one of ``REVIEW_WEB_PROXY_ADDRESSES``: from anywhere else anybody could send them, so they are ignored
there. The role is the highest one the person's groups map to in ``REVIEW_WEB_PROXY_GROUP_ROLES``; a person none of
whose groups has a role is refused. Off by default.

The peer address is the one the HTTP server reports: uvicorn replaces it with ``X-Forwarded-For`` when the peer is in
``FORWARDED_ALLOW_IPS`` (default 127.0.0.1), so a proxy on the same host must not be listed there (docs/web-ui.md).
"""

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.requests import Request

from services.review.auth import ApiClient, Role


class NoRoleError(Exception):
    """The proxy vouched for the person, but none of their groups is given a role here."""


class TrustedProxy:
    def __init__(
        self,
        addresses: Sequence[IPv4Network | IPv6Network],
        *,
        user_header: str,
        groups_header: str,
        group_roles: Mapping[str, str],
    ) -> None:
        self._addresses = tuple(addresses)
        self._user_header = user_header
        self._groups_header = groups_header
        self._group_roles = {group: Role(role) for group, role in group_roles.items()}

    def from_proxy(self, request: Request) -> bool:
        if request.client is None:
            return False
        try:
            peer = ip_address(request.client.host)
        except ValueError:
            return False
        return any(peer in network for network in self._addresses)

    def identify(self, request: Request) -> ApiClient | None:
        """The person the proxy vouches for, or None when the request did not come through a trusted proxy."""
        user = (request.headers.get(self._user_header) or "").strip()
        if not user or not self.from_proxy(request):
            return None
        groups = {group.strip() for group in request.headers.get(self._groups_header, "").split(",") if group.strip()}
        roles = [self._group_roles[group] for group in groups if group in self._group_roles]
        if not roles:
            raise NoRoleError(f"{user[:100]} is signed in through the proxy, but none of their groups has a role here")
        return ApiClient(name=user[:100], role=max(roles, key=lambda role: role.rank))
