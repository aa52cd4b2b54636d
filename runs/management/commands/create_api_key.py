from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from runs.models import ApiKey, Space


class Command(BaseCommand):
    help = "Issues an API key for a space and prints it once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--space", required=True, help="Space id (spc_…) or slug")
        parser.add_argument("--name", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        space = Space.objects.filter(Q(pk=options["space"]) | Q(slug=options["space"])).first()
        if space is None:
            raise CommandError(f"No space {options['space']!r}.")
        _, raw_key = ApiKey.objects.issue(space=space, name=options["name"])
        self.stdout.write(raw_key)
