from django.shortcuts import redirect, render

from .forms import NoteForm
from .models import Note


def index(request):
    """GET: the form and the latest notes; POST: store a note, then redirect (POST/redirect/GET)."""
    if request.method == "POST":
        form = NoteForm(request.POST)
        if form.is_valid():
            form.save()
            return redirect("index")
    else:
        form = NoteForm()
    notes = Note.objects.all()[:20]
    return render(request, "notes/index.html", {"form": form, "notes": notes})
