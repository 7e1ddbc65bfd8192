"""The one exception type a stage turns into a clean, actionable message (no traceback)."""


class VisionOpsError(Exception):
    """A problem the user can fix: the message names the cause and the fix."""

    def __init__(self, cause: str, fix: str | None = None):
        self.cause = cause
        self.fix = fix
        super().__init__(cause if fix is None else f"{cause}\n  fix: {fix}")

    def __reduce__(self):  # keeps cause and fix apart across a process pool
        return type(self), (self.cause, self.fix)
