"""A delivery that did not happen, and whether trying again can change that."""


class DeliveryError(Exception):
    """``permanent``: the destination refused this message for good (bad address, 4xx): no retry, dead-letter now.

    The reason never carries a credential (a webhook URL, a password): it is logged and put in DLQ headers.
    """

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
