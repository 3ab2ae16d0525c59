"""``/api/profiles``: list, create, show, delete and clear profiles (changes: admin+)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from profiles import ProfileSettings
from runtime.api.auth import Authenticated
from runtime.api.schemas import ProfileCreate, ProfileInfo

__all__ = ["router"]

router = APIRouter(prefix="/profiles", tags=["profiles"])


@router.get("", response_model=list[ProfileInfo])
async def list_profiles(call: Authenticated) -> list[ProfileInfo]:
    """Every profile with the run holding it, if any (no saved state)."""
    entries = await call.rt.services.profiles.list(call.actor)
    return [ProfileInfo.of(record, lease) for record, lease in entries]


@router.post("", status_code=201, response_model=ProfileInfo)
async def create_profile(body: ProfileCreate, call: Authenticated) -> ProfileInfo:
    """Create a profile with these settings (admin+)."""
    settings = ProfileSettings.model_validate(body.model_dump(exclude={"name"}))
    record = await call.rt.services.profiles.create(call.actor, body.name, settings)
    return ProfileInfo.of(record)


@router.get("/{name}", response_model=ProfileInfo)
async def show_profile(name: str, call: Authenticated) -> ProfileInfo:
    """One profile's settings, whether it has saved state, and who holds it."""
    record, lease = await call.rt.services.profiles.show(call.actor, name)
    return ProfileInfo.of(record, lease)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_profile(name: str, call: Authenticated) -> Response:
    """Delete a profile, its saved state and its user-data archive (admin+)."""
    await call.rt.services.profiles.delete(call.actor, name)
    return Response(status_code=204)


@router.post("/{name}/clear", response_model=ProfileInfo)
async def clear_profile(name: str, call: Authenticated) -> ProfileInfo:
    """Forget a profile's saved state: its next run starts logged out (admin+)."""
    await call.rt.services.profiles.clear(call.actor, name)
    record, lease = await call.rt.services.profiles.show(call.actor, name)
    return ProfileInfo.of(record, lease)
