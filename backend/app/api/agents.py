"""The agents a thread can be created with (`AGENTS`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api.deps import AgentsDep, get_current_user
from app.errors import ERROR_RESPONSES

# Signed-in callers only, like every /api route.
router = APIRouter(
    prefix="/agents",
    tags=["agents"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(get_current_user, scope="function")],
)


class AgentPublic(BaseModel):
    name: str  # what `POST /api/threads {"agent": ...}` takes
    display_name: str  # the SDK agent's own name
    default: bool  # threads created without an agent get this one


class AgentsPublic(BaseModel):
    data: list[AgentPublic]


@router.get("", response_model=AgentsPublic)
async def list_agents(*, agents: AgentsDep) -> AgentsPublic:
    """The agents this server serves, in AGENTS order (the first is the default)."""
    return AgentsPublic(
        data=[
            AgentPublic(name=name, display_name=agent.name, default=name == agents.default)
            for name, agent in agents.agents.items()
        ]
    )
