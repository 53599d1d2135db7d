"""The `/api` router: one sub-router per resource."""

from fastapi import APIRouter

from app.api import admin, agents, messages, tasks, threads, turns

api_router = APIRouter()
api_router.include_router(threads.router)
api_router.include_router(messages.router)
api_router.include_router(turns.router)
api_router.include_router(tasks.router)
api_router.include_router(agents.router)
api_router.include_router(admin.router)
