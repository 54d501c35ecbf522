"""Targets the workers registered (hardware fingerprint, calibration, health)."""

from __future__ import annotations

from fastapi import APIRouter

from service import crud
from service.api.deps import CurrentOwner
from service.api.deps import SessionDep
from service.models import TargetPublic
from service.models import TargetsPublic

router = APIRouter(prefix="/targets", tags=["targets"])


@router.get("", response_model=TargetsPublic)
def list_targets(session: SessionDep, owner: CurrentOwner) -> TargetsPublic:
    del owner  # any authenticated caller may see where jobs can run
    targets = crud.list_targets(session=session)
    return TargetsPublic(
        data=[TargetPublic.model_validate(t, from_attributes=True) for t in targets],
        count=len(targets),
    )
