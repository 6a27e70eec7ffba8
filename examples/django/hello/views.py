import os

from django.db import connection
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from hello.models import Note


def index(request):
    return render(request, "hello/index.html", {"dyno": os.environ.get("DYNO", "?")})


@csrf_exempt  # an API for curl and tests: no forms, no cookies
def notes(request):
    """POST /notes/ (form field body) stores a note; GET /notes/ lists them, oldest first."""
    if request.method == "POST":
        body = request.POST.get("body", "").strip()
        if not body:
            return JsonResponse({"error": "give a body"}, status=400)
        note = Note.objects.create(body=body[:200])
        return JsonResponse({"id": note.id, "body": note.body}, status=201)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    return JsonResponse({"notes": [n.body for n in Note.objects.order_by("id")], "dyno": os.environ.get("DYNO", "?"),
                         "database": connection.vendor})  # fmt: skip
