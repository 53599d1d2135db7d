"""What a browser gets from the app itself: the chat page at `/` and the API docs.

Both work with no network beyond this server: every script, stylesheet and icon is served
from here (the page's own files, vendored libraries, and the docs' Swagger UI and ReDoc
files from the `fastapi-offline` package), and a Content-Security-Policy says so.
"""
