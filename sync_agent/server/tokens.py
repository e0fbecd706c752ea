"""Who may do what on the catalog server: the admin token, per-catalog tokens, and the routes that manage them.

    admin            the server's own token (--token-file): everything, and the only one that creates or deletes
                     catalogs and tokens and reads the audit trail
    read   <catalog>  GET the catalog, detect against it
    upload <catalog>  read, plus upload field references to its review queue and read their review state (a
                      device's token: it cannot change products, publish, or see the queue; server.references)
    write  <catalog>  upload, plus put/delete its products, review field references and publish it

A catalog token is `shelfid_` + 32 random bytes (urlsafe base64), shown once when created; the database keeps its
sha256 only, looked up by that hash. A slow password hash (bcrypt, argon2) protects guessable passwords; a 256-bit
random token cannot be guessed, and sha256 lets the lookup be one indexed query instead of a slow hash per request.
The audit trail names a token by its id and name (`token:<id>:<name>`), never by the token itself. Deleting a
catalog deletes its tokens, so a catalog created again under the same id starts with none.

`needed(method, path)` is the one table of what a request needs; RequestGuard applies it before a body is read, and
each route's `requires(...)` dependency applies it again (and shows the header in the OpenAPI docs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, field_validator

from edge.core.ids import CATALOG_ID_PATTERN
from sync_agent.server.db import now
from sync_agent.server.store import CatalogStore

API_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
SCOPES = ("read", "upload", "write")  # each may do what the ones before it may


@dataclass(frozen=True)
class Principal:
    actor: str  # what the audit trail records
    admin: bool = False
    catalog_id: Optional[str] = None
    scope: Optional[str] = None

    def may(self, need: str, catalog_id: Optional[str]) -> bool:
        if self.admin or need == "any":
            return True
        if need == "admin":
            return False
        return catalog_id == self.catalog_id and SCOPES.index(self.scope or "read") >= SCOPES.index(need)


def needed(method: str, path: str) -> Optional[tuple[str, Optional[str]]]:
    """(need, catalog id) for a request, or None when it is public (health, docs, the published tree)."""
    if not path.startswith("/api/") or method not in API_METHODS:  # other methods: the router's JSON 405, body unread
        return None
    if path.rstrip("/") == "/api/v1/catalogs":
        return ("any" if method == "GET" else "admin"), None
    match = re.fullmatch(r"/api/v1/catalogs/([^/]+)(/.*)?", path, re.DOTALL)
    if match is None:
        return "admin", None  # tokens, audit, and anything unknown
    catalog_id, rest = match.groups()
    if rest is not None and rest.startswith("/references"):  # uploads by a device (and their review state); the queue
        device = (method == "POST" and rest.rstrip("/") == "/references") or (  # for its managers
            method in ("GET", "HEAD") and re.fullmatch(r"/references/[^/]+/state", rest) is not None)
        return ("upload" if device else "write"), catalog_id
    if method in ("GET", "HEAD") or rest == "/detect":
        return "read", catalog_id
    return ("admin" if rest is None else "write"), catalog_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Tokens:
    def __init__(self, store: CatalogStore, admin_token: Optional[str]):
        self.store, self.admin_token = store, admin_token

    def principal(self, authorization: Optional[str]) -> Principal:
        """Who sent the request; 401 without a bearer token, 403 for one this server does not know."""
        if self.admin_token is None:
            return Principal("no-auth", admin=True)
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "this endpoint needs 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        token = authorization[7:]
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.admin_token.encode()):
            return Principal("admin", admin=True)
        with self.store.connected() as db:
            rows = list(db["tokens"].rows_where("sha256 = ?", [hash_token(token)]))
        if not rows:
            raise HTTPException(403, "wrong token")
        row = rows[0]
        return Principal(f"token:{row['token_id']}:{row['name']}", catalog_id=row["catalog_id"], scope=row["scope"])

    def check(self, authorization: Optional[str], need: str, catalog_id: Optional[str]) -> Principal:
        principal = self.principal(authorization)
        if not principal.may(need, catalog_id):
            what = "the admin token" if need == "admin" else f"a {need} token for catalog {catalog_id!r}"
            raise HTTPException(403, f"this needs {what}; the token given ({principal.actor}) is not one")
        return principal

    def create(self, catalog_id: str, scope: str, name: str, actor: str) -> dict:
        token = "shelfid_" + secrets.token_urlsafe(32)
        row = {"token_id": uuid.uuid4().hex[:12], "name": name, "sha256": hash_token(token), "catalog_id": catalog_id,
               "scope": scope, "created_at": now(), "created_by": actor}
        with self.store.writing() as change:
            self.store.catalog(change.db, catalog_id)
            change.db["tokens"].insert(row)
            change.audit(actor, "create_token", catalog_id, f"{row['token_id']} ({name}, {scope})")
        return {k: v for k, v in row.items() if k != "sha256"} | {"token": token}

    def delete(self, token_id: str, actor: str) -> None:
        with self.store.writing() as change:
            rows = list(change.db["tokens"].rows_where("token_id = ?", [token_id]))
            if not rows:
                raise HTTPException(404, f"no token {token_id!r}")
            change.db["tokens"].delete(token_id)
            change.audit(actor, "delete_token", rows[0]["catalog_id"], f"{token_id} ({rows[0]['name']}, {rows[0]['scope']})")


def requires(tokens: Tokens, need: str) -> Callable[..., Principal]:
    """A route dependency: the request's principal, which must have `need` for the path's catalog (403 otherwise)."""

    def authorised(request: Request, authorization: Annotated[Optional[str], Header()] = None) -> Principal:
        return tokens.check(authorization, need, request.path_params.get("catalog_id"))

    return authorised


class NewToken(BaseModel):
    catalog_id: str = Field(pattern=CATALOG_ID_PATTERN, description="The catalog the token is for.")
    scope: Literal["read", "upload", "write"] = Field(description="read: get the catalog and detect; upload: also upload field "
                                                                "references (a device); write: also change, review and publish it.")
    name: str = Field(default="", max_length=100, description="Who or what holds it (shown in the audit trail); printable text.")

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        # the name is in every audit line its token causes: a newline would forge lines, a control or bidi character
        # change how they read
        if not name.isprintable():
            bad = next(c for c in name if not c.isprintable())
            raise ValueError(f"{ascii(bad)[1:-1]} is not printable; a token's name is one line of plain text")
        return name


def token_routes(tokens: Tokens, admin: Callable[..., Principal]) -> APIRouter:
    from fastapi import Depends

    router = APIRouter()

    @router.post("/api/v1/tokens", status_code=201)
    def create_token(body: NewToken, principal: Principal = Depends(admin)) -> dict:
        """A token for one catalog, read, upload or write; the token is in this answer only."""
        return tokens.create(body.catalog_id, body.scope, body.name or body.scope, principal.actor)

    @router.get("/api/v1/tokens")
    def list_tokens(principal: Principal = Depends(admin)) -> list[dict]:
        with tokens.store.connected() as db:
            return list(db["tokens"].rows_where(select="token_id, name, catalog_id, scope, created_at, created_by",
                                                order_by="catalog_id, created_at"))

    @router.delete("/api/v1/tokens/{token_id}", status_code=204)
    def delete_token(token_id: str, principal: Principal = Depends(admin)) -> Response:
        tokens.delete(token_id, principal.actor)
        return Response(status_code=204)

    @router.get("/api/v1/audit")
    def audit(catalog_id: Optional[str] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              principal: Principal = Depends(admin)) -> list[dict]:
        """The latest changes, newest first."""
        where, args = ("catalog_id = ?", [catalog_id]) if catalog_id else (None, [])
        with tokens.store.connected() as db:
            return list(db["audit"].rows_where(where, args, order_by="id desc", limit=limit))

    return router
