"""`manage.py engage_app create|list|rotate-secret`: manage Apps from the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from engage.models import App
from engage.services import app_create, app_secret_key_rotate


class Command(BaseCommand):
    help = "Create, list Apps, or rotate an App's secret key."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create an App and print its keys once.")
        create.add_argument("name")
        create.add_argument("--origin", action="append", default=[], help="Allowed origin (repeat)")
        create.add_argument("--aid", action="append", default=[], help="Snowplow app id (repeat)")
        create.add_argument("--identity-verification", action="store_true")
        create.add_argument("--locale", default="en", help="Default locale")
        create.add_argument("--json", action="store_true", help="Print JSON")
        listing = sub.add_parser("list", help="List Apps (secret keys are never shown).")
        listing.add_argument("--json", action="store_true")
        rotate = sub.add_parser("rotate-secret", help="Give an App a new secret key.")
        rotate.add_argument("app_id", type=int)
        rotate.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list(options)
        else:
            self._rotate(options)

    def _print(self, options: dict[str, Any], data: Any, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2) if options["json"] else text)

    def _create(self, options: dict[str, Any]) -> None:
        created = app_create(
            name=options["name"],
            origins=options["origin"],
            snowplow_app_ids=options["aid"],
            identity_verification=options["identity_verification"],
            default_locale=options["locale"],
        )
        app = created.app
        data = {
            "id": app.pk,
            "name": app.name,
            "public_key": app.public_key,
            "secret_key": created.secret_key,
            "identity_secret": app.identity_secret,
        }
        text = "\n".join(f"{k}: {v}" for k, v in data.items())
        self._print(options, data, text + "\nThe secret key is shown only now; keep it safe.")

    def _list(self, options: dict[str, Any]) -> None:
        rows = [
            {
                "id": app.pk,
                "name": app.name,
                "public_key": app.public_key,
                "secret_key_prefix": app.secret_key_prefix,
                "identity_verification": app.identity_verification,
                "allowed_origins": app.allowed_origins,
                "aids": [a.aid for a in app.snowplow_app_ids.all()],
            }
            for app in App.objects.prefetch_related("snowplow_app_ids")
        ]
        text = "\n".join(f"{r['id']}\t{r['name']}\t{r['public_key']}" for r in rows)
        self._print(options, rows, text or "No Apps yet.")

    def _rotate(self, options: dict[str, Any]) -> None:
        app = App.objects.filter(pk=options["app_id"]).first()
        if app is None:
            raise CommandError(f"No App with id {options['app_id']}")
        secret = app_secret_key_rotate(app=app)
        self._print(options, {"id": app.pk, "secret_key": secret}, f"New secret key: {secret}")
