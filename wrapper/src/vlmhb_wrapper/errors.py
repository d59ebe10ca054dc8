"""OpenAI-style API errors: ``{"error": {"message", "type", "param", "code"}}``.

Every failure the wrapper reports goes through :class:`APIError`, so clients (the official
``openai`` package included) get the status code and body shape they expect:

====  =========================  ==============================================================
400   ``invalid_request_error``  malformed request, bad image, unsupported option
401   ``invalid_request_error``  missing or wrong API key (code ``invalid_api_key``)
404   ``invalid_request_error``  unknown model (code ``model_not_found``) or route
413   ``invalid_request_error``  request body, image bytes or image pixels over the limits
422   ``invalid_request_error``  the body does not match the schema (type/range errors)
503   ``service_unavailable``    model loading, load failed, engine process died
====  =========================  ==============================================================
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "PayloadTooLargeError",
    "ServiceUnavailableError",
    "error_body",
]


class APIError(Exception):
    """An error that is reported to the client with an HTTP status and OpenAI error body."""

    status_code: int = 500
    error_type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.param = param
        self.code = code

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


class InvalidRequestError(APIError):
    """The request is malformed or cannot be served as asked (HTTP 400)."""

    status_code = 400
    error_type = "invalid_request_error"


class PayloadTooLargeError(APIError):
    """The request body, an image's bytes or an image's pixel count is over a limit (413)."""

    status_code = 413
    error_type = "invalid_request_error"


class AuthenticationError(APIError):
    status_code = 401
    error_type = "invalid_request_error"  # what OpenAI itself answers


class ModelNotFoundError(APIError):
    status_code = 404
    error_type = "invalid_request_error"


class ServiceUnavailableError(APIError):
    status_code = 503
    error_type = "service_unavailable"


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
