"""The refusals of the customer service; each answers at the edge with the status of its base class."""

from __future__ import annotations

from guanxi_shared.errors import Conflict, Forbidden, Gone, Invalid, NotFound


class InvalidInput(Invalid):
    """A value a person typed is wrong; the message says which and why (never echoing personal data).

    With ``field`` and ``code`` the problem+json answer also carries ``errors: [{location: "body.<field>",
    message, code}]`` like a request-validation 422, so a form can show the problem beside the field, in
    its own words for the code (``phone_format``, ``phone_invalid``, ``email_invalid``,
    ``birthday_format``, ``birthday_range``, ``id_number_format``, ``timezone_unknown``,
    ``cannot_remove``, ``invalid``)."""

    def __init__(self, detail: str, *, field: str | None = None, code: str = "invalid") -> None:
        if field is None:
            super().__init__(detail)
        else:
            super().__init__(detail, errors=[{"location": f"body.{field}", "message": detail, "code": code}])
        self.field = field
        self.code = code


class CustomerNotFound(NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no customer {customer_id}")


class CustomerErased(Gone):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} was erased; only a tombstone remains")


class CustomerExists(Conflict):
    def __init__(self, customer_id: str, *, erased: bool) -> None:
        super().__init__(f"customer {customer_id} already exists" + (" (erased; ids are never reused)" if erased else ""))


class RegistrationRaced(Conflict):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} changed concurrently; retry")


class ClearReadRefused(Forbidden):
    """The caller's role may not see clear personal values (or an agent stated no purpose)."""


class NoConsent(Forbidden):
    title = "No consent"
    type = "https://guanxi.dev/problems/no-consent"

    def __init__(self, customer_id: str, purpose: str) -> None:
        super().__init__(f"customer {customer_id} has not consented to {purpose} contact")


class UnknownPurpose(NotFound):
    def __init__(self, purpose: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown purpose {purpose}; known: {', '.join(known)}")


class VisitNotFound(NotFound):
    def __init__(self, visit_id: str) -> None:
        super().__init__(f"no visit {visit_id}")


class CommitmentNotFound(NotFound):
    def __init__(self, visit_id: str, commitment_id: str) -> None:
        super().__init__(f"visit {visit_id} has no commitment {commitment_id}")


class ReportAlreadyFiled(Conflict):
    def __init__(self) -> None:
        super().__init__("this visit already has its report")
