"""`manage.py engage_app create|list|rotate-secret|rotate-identity-secret`: manage Apps from
the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from engage.errors import EngageError
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
        rotate = sub.add_parser(
            "rotate-secret",
            help="Give an App a new secret key; the old one works for --grace-hours more.",
        )
        rotate.add_argument("app_id", type=int)
        rotate.add_argument(
            "--grace-hours",
            type=float,
            default=24.0,
            help="Hours the current key keeps working (default 24; 0 revokes it at once).",
        )
        rotate.add_argument("--json", action="store_true")
        identity = sub.add_parser(
            "rotate-identity-secret",
            help="Give an App a new identity secret; hashes and tokens made with the old one "
            "work for --grace-hours more.",
        )
        identity.add_argument("app_id", type=int)
        identity.add_argument(
            "--grace-hours",
            type=float,
            default=168.0,
            help="Hours the current secret keeps working (default 168; 0 stops it at once).",
        )
        identity.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list(options)
        elif action == "rotate-identity-secret":
            self._rotate_identity(options)
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
        try:
            rotated = app_secret_key_rotate(app=app, grace_hours=options["grace_hours"])
        except EngageError as exc:
            raise CommandError(exc.message) from exc
        until = rotated.previous_until
        data = {
            "id": app.pk,
            "secret_key": rotated.secret_key,
            "previous_key_valid_until": until.isoformat() if until else None,
        }
        text = f"New secret key: {rotated.secret_key}\n" + (
            f"The previous key works until {until.isoformat()}."
            if until
            else "The previous key no longer works."
        )
        self._print(options, data, text)

    def _rotate_identity(self, options: dict[str, Any]) -> None:
        from datetime import timedelta

        from engage.identity import identity_secret_rotate

        app = App.objects.filter(pk=options["app_id"]).first()
        if app is None:
            raise CommandError(f"No App with id {options['app_id']}")
        if options["grace_hours"] < 0:
            raise CommandError("--grace-hours: must be 0 or more")
        app = identity_secret_rotate(app=app, grace=timedelta(hours=options["grace_hours"]))
        until = app.identity_secret_previous_until
        data = {
            "id": app.pk,
            "identity_secret": app.identity_secret,
            "previous_secret_valid_until": until.isoformat() if until else None,
        }
        text = (
            f"New identity secret: {app.identity_secret}\n"
            f"Hashes and tokens made with the previous one work until {until.isoformat()}."
            if until
            else f"New identity secret: {app.identity_secret}"
        )
        self._print(options, data, text)
