"""Request dependencies: the services built by the app's lifespan, and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conversation.auth import match_key
from conversation.services import Services
from spinbot.errors import Problem


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]

bearer = HTTPBearer(auto_error=False, description="an API key from SPINBOT_API_KEYS (none needed when unset)")


def unauthorized() -> Problem:
    return Problem("unauthorized", "a valid API key is required",
                   hint="send `Authorization: Bearer <key>` with a key from the server's SPINBOT_API_KEYS")


def current_owner(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    owner = match_key(services.settings, credentials.credentials if credentials else None)
    if owner is None:
        raise unauthorized()
    return owner


OwnerDep = Annotated[str, Depends(current_owner)]
