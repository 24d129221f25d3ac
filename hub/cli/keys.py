"""``agent-hub keys create|list|revoke``: API keys, managed directly on the hub's log and
database (an operator's command; over HTTP an admin key uses ``/v1/keys``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["register"]

ROLES = ("reader", "writer", "admin")


async def cmd_keys(settings: HubSettings, args: argparse.Namespace) -> int:
    """Create (the token is printed once, on stdout), list or revoke keys."""
    from hub.client import Hub

    async with Hub(settings) as hub:
        if args.action == "create":
            tenant = args.tenant or settings.tenant
            new = await hub.keys.create(tenant=tenant, role=args.role, name=args.name)
            print(new.token)
            print(
                f"agent-hub: key {new.key.key_id} of tenant {tenant!r}, role {args.role}: "
                "keep the token above now, it is not shown again",
                file=sys.stderr,
            )
        elif args.action == "list":
            keys = await hub.keys.list(tenant=args.tenant, include_revoked=args.all)
            print("key_id\ttenant\trole\tname\tcreated\tlast used\trevoked")
            for k in keys:
                used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "-"
                revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-"
                print(
                    f"{k.key_id}\t{k.tenant_id}\t{k.role}\t{k.name or '-'}\t"
                    f"{k.created_at.isoformat(timespec='seconds')}\t{used}\t{revoked}"
                )
        else:
            key = await hub.keys.revoke(args.key_id, reason=args.reason)
            print(f"agent-hub: key {key.key_id} of tenant {key.tenant_id!r} is revoked")
    return 0


def register(sub: Any) -> None:
    """Add ``keys`` to the ``agent-hub`` parser."""
    p = sub.add_parser("keys", help="API keys: create, list, revoke")
    actions = p.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; its token is printed once")
    create.add_argument("--tenant", help="the key's tenant (default: HUB_TENANT)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", help="what the key is for")
    listing = actions.add_parser("list", help="keys, with when each was last used")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason")
    p.set_defaults(fn=cmd_keys)
