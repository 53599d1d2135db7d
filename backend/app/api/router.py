"""The `/api` router: one sub-router per resource."""

from fastapi import APIRouter

from app.api import (
    admin,
    admin_users,
    agents,
    exports,
    me,
    messages,
    search,
    tasks,
    threads,
    turns,
)

api_router = APIRouter()
api_router.include_router(threads.router)
api_router.include_router(messages.router)
api_router.include_router(turns.router)
api_router.include_router(tasks.router)
api_router.include_router(agents.router)
api_router.include_router(admin.router)
api_router.include_router(search.router)
api_router.include_router(exports.router)
api_router.include_router(me.router)
api_router.include_router(admin_users.router)
