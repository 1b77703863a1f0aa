"""A faithful simulated Copper account: seeded data, search semantics, a real HTTP server."""

from .account import Change, Clock, InvalidInput, NotFound, SandboxAccount
from .app import ADMIN_HEADER, API_PREFIX, Sandbox
from .chaos import SandboxConfig
from .server import RunningSandbox, serve_in_subprocess, serve_in_thread

__all__ = [
    "ADMIN_HEADER",
    "API_PREFIX",
    "Change",
    "Clock",
    "InvalidInput",
    "NotFound",
    "RunningSandbox",
    "Sandbox",
    "SandboxAccount",
    "SandboxConfig",
    "serve_in_subprocess",
    "serve_in_thread",
]
