"""Websocket routes of every app; later issues add the live view and the CDP proxy."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
