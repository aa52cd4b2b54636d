import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from runs.models import ApiKey, Membership, Space


class Command(BaseCommand):
    help = (
        "First-run set-up: an admin user, a space and an API key, printed once. "
        "Does nothing when an admin user exists already."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        admin = User.objects.filter(is_superuser=True).order_by("date_joined", "pk").first()
        if admin is not None:
            name = admin.get_username()
            self.stdout.write(
                f"bctrl is set up already: sign in at {settings.SITE_URL}/ as {name} "
                f"(a new password: .venv/bin/python manage.py changepassword {name})."
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_superuser(username="admin", email="", password=password)
            space, _ = Space.objects.get_or_create(slug="default", defaults={"name": "Default"})
            Membership.objects.get_or_create(
                user=user, space=space, defaults={"role": Membership.Role.OWNER}
            )
            _, raw_key = ApiKey.objects.issue(space=space, name="first key")
        line = "=" * 64
        self.stdout.write(
            f"\n{line}\n"
            "bctrl first run: these are shown once, keep them.\n\n"
            f"  dashboard   {settings.SITE_URL}/   user admin   password {password}\n"
            f"  space       {space.name} ({space.id})\n"
            f"  API key     {raw_key}\n\n"
            "  More keys:  .venv/bin/python manage.py create_api_key --space default\n"
            "  Lost the password?  .venv/bin/python manage.py changepassword admin\n"
            f"{line}\n"
        )
