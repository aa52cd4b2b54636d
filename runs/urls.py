from django.urls import path

from runs import views

app_name = "dashboard"

urlpatterns = [
    path("", views.runs_list, name="runs"),
]
