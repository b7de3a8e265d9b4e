"""The address of the person making a request: the one helper that lockout, rate limits, the audit and
the metrics allow-list all use.

Behind a reverse proxy every request comes from the proxy's address. The proxies named in
TRUSTED_PROXIES (addresses or CIDR networks) append the address they received the request from to
X-Forwarded-For; the client is the right-most address in that chain that is not itself a trusted
proxy. A header sent by anyone else is ignored: a client cannot choose the address it is counted under.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for item in spec:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"TRUSTED_PROXIES: {item!r} is not an address or a CIDR network") from None
    return tuple(networks)


def parse_networks(spec) -> tuple[Network, ...]:
    """Addresses / CIDRs from a setting (a list, or a comma-separated string); refuses a bad entry."""
    if isinstance(spec, str):
        spec = [part for part in spec.split(",") if part.strip()]
    return _networks(tuple(item.strip() for item in spec if item and item.strip()))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def address_in(address: str | None, networks: tuple[Network, ...]) -> bool:
    parsed = _address(address or "")
    return parsed is not None and any(parsed in network for network in networks)


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or, when that is a trusted proxy, the right-most address of
    X-Forwarded-For that is not a trusted proxy (left-most when every hop is trusted)."""
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return None
    trusted = parse_networks(settings.TRUSTED_PROXIES)
    if not trusted or not any(remote in network for network in trusted):
        return str(remote)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client = remote
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            break  # a malformed entry: what lies left of it cannot be trusted
        client = parsed
        if not any(parsed in network for network in trusted):
            break
    return str(client)
