from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from runs.models import Space


class Command(BaseCommand):
    help = "Creates a space (a tenant) and prints its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug", help="URL-safe name; derived from the name if omitted")
        parser.add_argument("--retention-days", type=int, default=7)
        parser.add_argument(
            "--embed-origin",
            action="append",
            default=[],
            help="An origin allowed to frame viewer embeds; repeat for several",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"] or slugify(options["name"])
        if not slug:
            raise CommandError("Give the space a name with letters or digits, or a --slug.")
        if Space.objects.filter(slug=slug).exists():
            raise CommandError(f"A space with slug {slug!r} exists already.")
        space = Space.objects.create(
            name=options["name"],
            slug=slug,
            recording_retention_days=options["retention_days"],
            allowed_embed_origins=options["embed_origin"],
        )
        self.stdout.write(space.id)
