from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs import selectors
from runs.activity import activity_items
from runs.api.auth import space_of


class ActivityView(APIView):
    def get(self, request: Request, run_id: str) -> Response:
        run = selectors.run_of(space_of(request), run_id)
        return Response({"data": activity_items(run)})
