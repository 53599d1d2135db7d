"""Every table model, re-exported so `SQLModel.metadata` is complete for Alembic."""

from app.models.maintenance import (
    MaintenanceRun,
    MaintenanceRunPublic,
    MaintenanceRunsPublic,
    RunStatus,
)
from app.models.message import Message, MessagePublic, MessageRole, MessagesPublic
from app.models.search import SearchConfig
from app.models.task import Task, TaskCreate, TaskPublic, TasksPublic, TaskUpdate
from app.models.thread import (
    MemoryState,
    Thread,
    ThreadCreate,
    ThreadPublic,
    ThreadsPublic,
    ThreadUpdate,
)
from app.models.user import User

__all__ = [
    "Thread",
    "MaintenanceRun",
    "MaintenanceRunPublic",
    "MaintenanceRunsPublic",
    "MemoryState",
    "Message",
    "MessagePublic",
    "MessageRole",
    "MessagesPublic",
    "RunStatus",
    "SearchConfig",
    "Task",
    "TaskCreate",
    "TaskPublic",
    "TaskUpdate",
    "TasksPublic",
    "ThreadCreate",
    "ThreadPublic",
    "ThreadUpdate",
    "ThreadsPublic",
    "User",
]
