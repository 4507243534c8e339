"""The review read-only, as the postmortem people share and print, and its Markdown export one click away."""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from services.review.ports import ReviewNotFoundError
from services.review.service import ReviewService
from services.review.web.pages import Pages
from services.review.web.signed_in import SignedIn


class PostmortemPage:
    def __init__(self, pages: Pages, signed_in: SignedIn, service: ReviewService) -> None:
        self.pages, self.signed_in, self.service = pages, signed_in, service

    def routes(self) -> APIRouter:
        router = APIRouter(prefix="/review/{review_id}", include_in_schema=False)
        router.add_api_route("/postmortem", self.show, methods=["GET"])
        router.add_api_route("/export.md", self.export, methods=["GET"])
        return router

    async def show(self, request: Request, review_id: str) -> Response:
        user = self.signed_in.reader(request)
        try:
            review = await self.service.get(review_id)
        except ReviewNotFoundError:
            return self.pages.render(
                request, "refused.html", user=user, status=404, title="No such review", detail=f"No review {review_id}."
            )
        return self.pages.render(request, "postmortem.html", user=user, review=review)

    async def export(self, request: Request, review_id: str) -> Response:
        """The same Markdown as the API's export (values neutralised there), as a download."""
        self.signed_in.reader(request)
        try:
            review, document = await self.service.export_markdown(review_id)
        except ReviewNotFoundError:
            return Response(f"no review {review_id}\n", status_code=404, media_type="text/plain; charset=utf-8")
        return Response(
            document,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="postmortem-{review.id}.md"'},
        )
