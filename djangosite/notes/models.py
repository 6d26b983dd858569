from django.db import models


class Note(models.Model):
    author = models.CharField(max_length=80)
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text}"
