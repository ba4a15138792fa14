"""Admin for people, events and bad events (data debugging)."""

from __future__ import annotations

from django.contrib import admin

from segments.models import AnonymousId, BadEvent, Event, Person


class AnonymousIdInline(admin.TabularInline):
    model = AnonymousId
    extra = 0
    fields = ["anonymous_id", "created_at"]
    readonly_fields = ["anonymous_id", "created_at"]
    can_delete = False


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["__str__", "app", "first_seen", "last_seen"]
    list_filter = ["app"]
    search_fields = ["user_id", "anonymous_ids__anonymous_id"]
    readonly_fields = ["app", "first_seen", "last_seen"]
    inlines = [AnonymousIdInline]
    list_select_related = ["app"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "person", "app", "source", "timestamp", "received_at"]
    list_filter = ["app", "source", "name"]
    search_fields = ["name", "person__user_id", "dedup_id"]
    date_hierarchy = "received_at"
    list_select_related = ["person", "app"]
    readonly_fields = [f.name for f in Event._meta.fields]
    show_full_result_count = False


class ReasonFilter(admin.SimpleListFilter):
    """Bad events grouped by the field their reason names (`ue_px`, `aid`, `name`…)."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        fields = set()
        for reason in BadEvent.objects.values_list("reason", flat=True).distinct()[:500]:
            fields.add(reason.split(":", 1)[0])
        return sorted((f, f) for f in fields)

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value():
            return queryset.filter(reason__startswith=self.value())
        return queryset


@admin.register(BadEvent)
class BadEventAdmin(admin.ModelAdmin):
    list_display = ["reason", "app", "source", "received_at"]
    list_filter = ["app", "source", ReasonFilter]
    search_fields = ["reason"]
    date_hierarchy = "received_at"
    readonly_fields = ["app", "source", "received_at", "reason", "raw"]
    list_select_related = ["app"]
