from django.db import models


class Greeting(models.Model):
    when = models.DateTimeField(auto_now_add=True)


class Note(models.Model):
    body = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)
