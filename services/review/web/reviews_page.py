"""The list of reviews: the API's filters, newest first, paged, with the count; due and overdue at a glance."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from schemas import ReviewStatus, Severity
from services.review.domain.workflow import is_overdue
from services.review.ports import ReviewFilter
from services.review.service import ReviewService
from services.review.web.listing import PAGE_SIZE, choices, page_link, page_number, text
from services.review.web.pages import Pages
from services.review.web.signed_in import SignedIn


class ReviewsPage:
    def __init__(
        self, pages: Pages, signed_in: SignedIn, service: ReviewService, clock: Callable[[], datetime]
    ) -> None:
        self.pages, self.signed_in, self.service, self.clock = pages, signed_in, service, clock

    def routes(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("/", self.show, methods=["GET"])
        return router

    async def show(self, request: Request) -> Response:
        user = self.signed_in.reader(request)
        params = request.query_params
        ignored: list[str] = []
        overdue = {"true": True, "false": False}.get(params.get("overdue") or "")
        mine = params.get("mine") == "1"
        where = ReviewFilter(
            statuses=choices(params, "status", ReviewStatus, ignored),
            severities=choices(params, "severity", Severity, ignored),
            service=text(params, "service"),
            team=text(params, "team"),
            overdue=overdue,
            title_contains=text(params, "q"),
            assigned_to=user.name if mine else None,
        )
        page = page_number(params)
        found = await self.service.find_page(where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        reviews, total = found.reviews, found.total
        now = self.clock()
        pages = max(1, -(-total // PAGE_SIZE))
        # A lower bound (``total_is_exact`` false) counts only the newest stretch: there may be more pages.
        more = not found.total_is_exact and len(reviews) == PAGE_SIZE
        return self.pages.render(
            request,
            "reviews.html",
            user=user,
            reviews=reviews,
            overdue_ids={r.id for r in reviews if is_overdue(r, now)},
            total=total,
            total_is_exact=found.total_is_exact,
            page=page,
            pages=pages,
            previous_link=page_link(params, page - 1) if page > 1 else None,
            next_link=page_link(params, page + 1) if page < pages or more else None,
            where=where,
            mine=mine,
            overdue=params.get("overdue") or "",
            statuses=list(ReviewStatus),
            severities=list(Severity),
            ignored=ignored,
        )
