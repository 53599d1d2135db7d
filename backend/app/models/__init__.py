"""Every table model, re-exported so `SQLModel.metadata` is complete for Alembic."""

from app.models.agent_memory import agent_session_messages, agent_sessions
from app.models.chatkit_item import ChatKitItem
from app.models.limits import (
    LimitsPublic,
    OpenStream,
    UsagePublic,
    UserLimit,
    UserLimitsUpdate,
)
from app.models.maintenance import (
    MaintenanceRun,
    MaintenanceRunPublic,
    MaintenanceRunsPublic,
    RunStatus,
)
from app.models.message import (
    Message,
    MessagePublic,
    MessageRole,
    MessagesPublic,
    message_public,
)
from app.models.node import NodeIncarnation, TurnEventBatch
from app.models.search import SearchConfig
from app.models.task import Task, TaskCreate, TaskPublic, TasksPublic, TaskUpdate
from app.models.thread import (
    MemoryState,
    Thread,
    ThreadCreate,
    ThreadPublic,
    ThreadsPublic,
    ThreadStatus,
    ThreadUpdate,
)
from app.models.turn import Turn, TurnStatus
from app.models.user import User

__all__ = [
    "UsagePublic",
    "UserLimit",
    "UserLimitsUpdate",
    "agent_session_messages",
    "agent_sessions",
    "ChatKitItem",
    "LimitsPublic",
    "MaintenanceRun",
    "MaintenanceRunPublic",
    "MaintenanceRunsPublic",
    "MemoryState",
    "Message",
    "MessagePublic",
    "MessageRole",
    "MessagesPublic",
    "NodeIncarnation",
    "OpenStream",
    "RunStatus",
    "SearchConfig",
    "Task",
    "TaskCreate",
    "TaskPublic",
    "TaskUpdate",
    "TasksPublic",
    "Thread",
    "ThreadCreate",
    "ThreadPublic",
    "ThreadStatus",
    "ThreadUpdate",
    "ThreadsPublic",
    "Turn",
    "TurnEventBatch",
    "TurnStatus",
    "User",
    "message_public",
]
