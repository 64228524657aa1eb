"""Typed errors of the Graph client and the Office 365 operations.

Every error carries a stable `error_code` (for the JSON API and the audit log) and a message that says what
happened and what to do next. Errors raised from a Graph answer also carry Graph's status, code, message and
`request-id`, so a failure can be matched with Microsoft's logs.
"""

from __future__ import annotations

ALREADY_MEMBER_MESSAGE = (
    "One or more added object references already exist for the following modified properties: 'members'."
)
NOT_A_MEMBER_MESSAGE = (
    "One or more removed object references do not exist for the following modified properties: 'members'."
)
INVALID_USAGE_LOCATION_MESSAGE = "License assignment cannot be done for user with invalid usage location."
NO_LICENCES_FRAGMENT = "does not have any available licenses"
NICKNAME_TAKEN_FRAGMENT = "same value for property mailNickname already exists"


class Office365Error(Exception):
    """Base of every error raised by `office365`; `str(error)` is the message to show."""

    error_code = "office365_error"

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (Graph request-id {self.request_id})"
        return self.message


class GraphError(Office365Error):
    """Graph answered with an error not covered by a more specific class."""

    error_code = "graph_error"
    hint = "Check the input; if it looks right, retry later or report the request-id to an administrator."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        graph_message: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.graph_message = graph_message
        self.client_request_id = client_request_id
        if message is None:
            what = f"Microsoft Graph answered {status or 'an error'}"
            if code:
                what += f" {code}"
            if graph_message:
                what += f": {graph_message}"
            message = f"{what.rstrip('.')}. {self.hint}"
        super().__init__(message, request_id=request_id)


class InvalidRequest(GraphError):
    """400: Graph refused the input."""

    error_code = "invalid_request"
    hint = "Correct the input and try again."


class NotFound(GraphError):
    error_code = "not_found"
    hint = "Check the id; the object may have been deleted. Refresh the list and try again."


class AlreadyMember(GraphError):
    error_code = "already_member"
    hint = "Nothing to do: the user is already a member of the group."


class NotAMember(GraphError):
    error_code = "not_a_member"
    hint = "Nothing to do: the user is not a member of the group."


class PermissionDenied(GraphError):
    """403, usually Authorization_RequestDenied: the grant or the admin's directory role is insufficient."""

    error_code = "permission_denied"
    hint = (
        "The datasource's grant or the authorizing admin's directory role does not allow this. Re-Authorize "
        "the data source with an admin holding the needed role (e.g. Groups, User or License Administrator)."
    )


class Throttled(GraphError):
    """429 answers kept coming after every retry allowed within the deadline."""

    error_code = "throttled"
    hint = "Microsoft Graph is throttling this tenant. Wait a minute and try again."


class GraphUnavailable(GraphError):
    """5xx answers, timeouts or dropped connections after the allowed retries."""

    error_code = "graph_unavailable"
    hint = "Microsoft Graph did not answer properly. Try again in a few minutes."


class ReauthorizationRequired(Office365Error):
    """No valid access token can be had without an admin signing in again."""

    error_code = "reauthorization_required"

    def __init__(self, message: str | None = None, *, request_id: str | None = None) -> None:
        super().__init__(
            message
            or "The datasource's authorization is no longer valid (refresh refused or token rejected). "
            "An administrator must Re-Authorize the data source.",
            request_id=request_id,
        )


class WriteNotAllowed(Office365Error):
    """A write refused before anything was sent to Graph."""

    error_code = "write_not_allowed"


class FieldError(Office365Error):
    """An input field is invalid; `field` names it and `suggestion` offers a valid value when there is one."""

    error_code = "invalid_field"

    def __init__(
        self, field: str, message: str, *, suggestion: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.field = field
        self.suggestion = suggestion


class MailNicknameTaken(FieldError):
    error_code = "mail_nickname_taken"


class UsageLocationRequired(Office365Error):
    error_code = "usage_location_required"


class NoSeatsLeft(Office365Error):
    error_code = "no_seats_left"


def error_from_response(
    status: int,
    body: object,
    *,
    request_id: str | None = None,
    client_request_id: str | None = None,
) -> GraphError:
    """Map a Graph error answer (status + parsed JSON body) to the most specific error class."""
    code = message = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        message = body["error"].get("message")
        inner = body["error"].get("innerError") or {}
        if isinstance(inner, dict):
            request_id = request_id or inner.get("request-id")
    cls: type[GraphError] = GraphError
    if status == 400 and message == ALREADY_MEMBER_MESSAGE:
        cls = AlreadyMember
    elif status == 400 and message == NOT_A_MEMBER_MESSAGE:
        cls = NotAMember
    elif status == 400:
        cls = InvalidRequest
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 429:
        cls = Throttled
    elif status >= 500:
        cls = GraphUnavailable
    return cls(
        status=status,
        code=code,
        graph_message=message,
        request_id=request_id,
        client_request_id=client_request_id,
    )
