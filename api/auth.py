"""API keys scoped to a tenant.

A key reads `trk_<prefix>_<secret>`. Only the SHA-256 of the whole key is stored; the
prefix (not secret) finds the row, and the digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.store.tables import ApiKey, Tenant, utcnow

KEY_SCHEME = "trk"


@dataclass(frozen=True)
class IssuedKey:
    """A key as handed to its owner, once: only `prefix` can be shown again later."""

    key: str
    prefix: str
    tenant: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _prefix_of(key_or_prefix: str) -> str:
    parts = key_or_prefix.strip().split("_")
    if len(parts) >= 3 and parts[0] == KEY_SCHEME:
        return parts[1]
    return key_or_prefix.strip()


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(*, session: Session, tenant_name: str) -> IssuedKey:
    """A new key for `tenant_name` (the tenant is created if it does not exist)."""
    tenant = get_or_create_tenant(session=session, name=tenant_name)
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(tenant_id=tenant.id, prefix=prefix, secret_hash=_digest(key)))
    session.flush()
    return IssuedKey(key=key, prefix=prefix, tenant=tenant.name)


def revoke_key(*, session: Session, key_or_prefix: str) -> bool:
    """Revoke the key with this prefix (or this whole key); False when there is none active."""
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == _prefix_of(key_or_prefix),
                                              ApiKey.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def active_key_count(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiKey)
                          .where(ApiKey.revoked_at.is_(None))) or 0


def tenant_for_key(*, session: Session, key: str) -> Tenant | None:
    """The tenant a presented key belongs to, or None for an unknown or revoked key."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != KEY_SCHEME:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _digest(key)):
        return None
    return session.get(Tenant, row.tenant_id)
