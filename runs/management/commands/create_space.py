from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from bctrl_site.origins import InvalidEmbedOrigins, embed_origins_checked
from runs.models import Space, any_embed_origin


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
            help=(
                "An origin allowed to embed viewer links (frame them, open live views); "
                "repeat for several. Without it, any site may."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"] or slugify(options["name"])
        if not slug:
            raise CommandError("Give the space a name with letters or digits, or a --slug.")
        if Space.objects.filter(slug=slug).exists():
            raise CommandError(f"A space with slug {slug!r} exists already.")
        try:
            origins = embed_origins_checked(options["embed_origin"] or any_embed_origin())
        except InvalidEmbedOrigins as exc:
            raise CommandError(f"--embed-origin: {exc}") from exc
        space = Space.objects.create(
            name=options["name"],
            slug=slug,
            recording_retention_days=options["retention_days"],
            allowed_embed_origins=origins,
        )
        self.stdout.write(space.id)
