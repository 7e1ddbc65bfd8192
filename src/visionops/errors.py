"""The one exception type a stage turns into a clean, actionable message (no traceback)."""


class VisionOpsError(Exception):
    """A problem the user can fix: the message names the cause and the fix."""

    def __init__(self, cause: str, fix: str | None = None):
        self.cause = cause
        self.fix = fix
        super().__init__(cause if fix is None else f"{cause}\n  fix: {fix}")

    def __reduce__(self):  # keeps cause and fix apart across a process pool
        return type(self), (self.cause, self.fix)


def first_invalid_field(exc) -> str:
    """A pydantic ValidationError's first problem as 'field.path: message' (for a record read
    back from a file: meta.json, a journal entry)."""
    problem = exc.errors()[0]
    return f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception in one short line for a message: its first line, or its type's name when
    it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
