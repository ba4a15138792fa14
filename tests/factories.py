"""factory_boy factories for the models tests build on."""

from __future__ import annotations

import factory
from django.utils import timezone

from engage import keys
from engage.models import App
from segments.models import AnonymousId, Event, EventSource, Person


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    name = factory.Sequence(lambda n: f"App {n}")
    public_key = factory.LazyFunction(keys.public_key_generate)
    secret_key_hash = factory.LazyFunction(lambda: keys.secret_key_hash(keys.secret_key_generate()))
    secret_key_prefix = "sk_test"
    identity_secret = factory.LazyFunction(keys.identity_secret_generate)
    allowed_origins = factory.LazyFunction(lambda: ["https://host.example"])


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    app = factory.SubFactory(AppFactory)
    user_id = factory.Sequence(lambda n: f"user-{n}")
    attributes = factory.LazyFunction(dict)
    first_seen = factory.LazyFunction(timezone.now)
    last_seen = factory.LazyFunction(timezone.now)


class AnonymousIdFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AnonymousId

    person = factory.SubFactory(PersonFactory)
    app = factory.SelfAttribute("person.app")
    anonymous_id = factory.Sequence(lambda n: f"anon-{n}")


class EventFactory(factory.django.DjangoModelFactory):
    """An Event row only: tests of behaviour should ingest through segments.services."""

    class Meta:
        model = Event

    person = factory.SubFactory(PersonFactory)
    app = factory.SelfAttribute("person.app")
    name = "page_view"
    properties = factory.LazyFunction(dict)
    timestamp = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
    source = EventSource.API
