"""Open and overdue action items across every review, filterable by owner, team, category and priority."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from schemas import ActionItemCategory, ActionItemPriority
from services.review.ports import ActionItemFilter
from services.review.service import ReviewService
from services.review.web.listing import PAGE_SIZE, choices, page_link, page_number, text
from services.review.web.pages import Pages
from services.review.web.signed_in import SignedIn


class ActionItemsPage:
    def __init__(
        self, pages: Pages, signed_in: SignedIn, service: ReviewService, clock: Callable[[], datetime]
    ) -> None:
        self.pages, self.signed_in, self.service, self.clock = pages, signed_in, service, clock

    def routes(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/action-items", self.show, methods=["GET"])
        return router

    async def show(self, request: Request) -> Response:
        user = self.signed_in.reader(request)
        params = request.query_params
        ignored: list[str] = []
        mine = params.get("mine") == "1"
        owner = user.name if mine else text(params, "owner")
        where = ActionItemFilter(
            owner=owner,
            team=text(params, "team"),
            categories=choices(params, "category", ActionItemCategory, ignored),
            priorities=choices(params, "priority", ActionItemPriority, ignored),
            overdue_only=params.get("overdue") == "1",
        )
        page = page_number(params)
        rows, total = await self.service.unfinished_action_items(where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return self.pages.render(
            request,
            "action_items.html",
            user=user,
            rows=rows,
            now=self.clock(),
            total=total,
            page=page,
            pages=pages,
            previous_link=page_link(params, page - 1) if page > 1 else None,
            next_link=page_link(params, page + 1) if page < pages else None,
            where=where,
            mine=mine,
            categories=list(ActionItemCategory),
            priorities=list(ActionItemPriority),
            ignored=ignored,
        )
