"""Export one trial's design as native JSON, DeciLM `config.json` or ModelOpt BlockConfig."""

from __future__ import annotations

from typing import Annotated
from typing import Literal

from fastapi import APIRouter
from fastapi import HTTPException
from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from search_space.design import FFNDesign
from service import crud
from service.api.deps import CurrentJob
from service.api.deps import SessionDep
from service.models import ExportPublic
from service.models import LossyItemPublic

router = APIRouter(prefix="/jobs/{job_id}/trials/{number}", tags=["exports"])

ExportFormat = Literal["native", "decilm", "puzzletron"]


@router.get("/export", response_model=ExportPublic)
def export_trial(
    session: SessionDep,
    job: CurrentJob,
    number: int,
    fmt: Annotated[ExportFormat, Query(alias="format")] = "native",
) -> ExportPublic:
    """The file another stack loads, plus every knob the format could not express."""
    from search_space.export import export_design

    trial = crud.get_trial(session=session, job_id=job.id, number=number)
    if trial is None:
        raise HTTPException(status_code=404, detail=f"trial {number} of job {job.id} not found")
    try:
        design = FFNDesign.model_validate(trial.design)
    except ValidationError as exc:
        raise HTTPException(
            status_code=409,
            detail=f"trial {number} holds no valid design: {exc.errors()[0]['msg']}",
        ) from None
    try:
        result = export_design(design, fmt)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "format"), "msg": str(exc), "type": "value_error", "input": fmt}]
        ) from None
    return ExportPublic(
        filename=result.filename,
        content=result.content,
        lossy=[
            LossyItemPublic.model_validate(item, from_attributes=True) for item in result.lossy
        ],
    )
