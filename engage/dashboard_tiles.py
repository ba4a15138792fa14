"""Custom dashboards: tile types (a registry), the dashboards' writes, and computing every tile.

A tile type knows how to check its `config` and how to build its data in the App overview's
card format (`{"type": "line"|"bar"|"numbers"|"table", …}`, drawn by the admin's
overview.js). engage registers the types it can compute (saved trend and funnel insights,
campaign results); `surveys` registers survey NPS and sentiment in its `AppConfig.ready()`,
so engage never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from engage import errors
from engage.campaigns import campaign_get_for_app, campaign_kind_get
from engage.experiments import campaign_results
from engage.insights import insight_get_for_app, insight_run
from engage.kpis import campaign_kpi_results
from engage.models import App
from engage.models_insights import Dashboard, DashboardTile, Insight, InsightKind

MAX_TILES = 30

ConfigCheck = Callable[[App, Mapping[str, Any], str], dict[str, Any]]
TileBuild = Callable[[App, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TileType:
    """`check(app, config, path)` returns the config to store or raises InvalidInput naming
    `path.key`; `build(app, config)` returns the tile's data (read-only)."""

    kind: str
    title: str
    check: ConfigCheck
    build: TileBuild
    description: str = ""
    # The default title of a tile of this type (e.g. the insight's name); `title` otherwise.
    title_of: Callable[[App, Mapping[str, Any]], str | None] | None = None


_types: dict[str, TileType] = {}


def dashboard_tile_register(tile_type: TileType) -> None:
    _types[tile_type.kind] = tile_type


def dashboard_tile_types() -> list[TileType]:
    return sorted(_types.values(), key=lambda t: t.kind)


def dashboard_tile_type(kind: str, path: str = "kind") -> TileType:
    try:
        return _types[kind]
    except KeyError:
        raise errors.InvalidInput(
            f"{path}: unknown tile kind {kind!r}; one of {', '.join(sorted(_types))}",
            code="unknown_tile_kind",
        ) from None


def config_id(config: Mapping[str, Any], key: str, path: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.InvalidInput(f"{path}.{key}: give the id (a positive whole number)")
    return value


# --- engage's tile types -----------------------------------------------------------------------


def _insight_check(kind: str) -> ConfigCheck:
    def check(app: App, config: Mapping[str, Any], path: str) -> dict[str, Any]:
        insight_id = config_id(config, "insight", path)
        insight = Insight.objects.filter(app=app, pk=insight_id).first()
        if insight is None or insight.kind != kind:
            raise errors.InvalidInput(f"{path}.insight: no saved {kind} {insight_id} in this App")
        return {"insight": insight_id}

    return check


def _insight_name(app: App, config: Mapping[str, Any]) -> str | None:
    insight_id = config.get("insight")
    if not isinstance(insight_id, int):
        return None
    return Insight.objects.filter(app=app, pk=insight_id).values_list("name", flat=True).first()


def _campaign_name(app: App, config: Mapping[str, Any]) -> str | None:
    try:
        kind = campaign_kind_get(str(config.get("kind")))
        campaign = campaign_get_for_app(app=app, kind=kind.name, campaign_id=config.get("id"))
    except errors.EngageError:
        return None
    return f"{campaign.name}: results"


def trend_tile(app: App, config: Mapping[str, Any]) -> dict[str, Any]:
    insight = insight_get_for_app(app=app, insight_id=config["insight"])
    result = insight_run(app=app, kind=InsightKind.TREND, definition=insight.definition)
    series = result["series"]
    labels = [b["start"] for b in series[0]["buckets"]] if series else []
    total = sum(s["count"] for s in series)
    return {
        "type": "line" if len(labels) > 1 else "bar",
        "labels": labels,
        "series": [
            {
                "label": s["label"] if len(series) > 1 else result["event"],
                "data": [b["count"] for b in s["buckets"]],
            }
            for s in series
        ],
        "note": f"{total:,} {result['event']} events, {result['date_from']} – {result['date_to']}",
    }


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def funnel_tile(app: App, config: Mapping[str, Any]) -> dict[str, Any]:
    insight = insight_get_for_app(app=app, insight_id=config["insight"])
    result = insight_run(app=app, kind=InsightKind.FUNNEL, definition=insight.definition)
    steps = result["steps"]
    groups = [("Everyone", steps)] + [(g["label"], g["steps"]) for g in result.get("breakdown", [])]
    last = steps[-1] if steps else None
    return {
        "type": "bar",
        "categorical": True,
        "labels": [s["label"] for s in steps],
        "series": [
            {"label": label, "data": [s["people"] for s in group]} for label, group in groups
        ],
        "note": (
            f"{_percent(last['conversion_rate'])} of {steps[0]['people']:,} people completed it "
            f"within {_duration(result['window_seconds'])}"
            if last
            else "No steps"
        ),
    }


def _campaign_check(app: App, config: Mapping[str, Any], path: str) -> dict[str, Any]:
    kind = config.get("kind")
    if not isinstance(kind, str):
        raise errors.InvalidInput(f'{path}.kind: give "message" or "survey"')
    try:
        campaign_kind_get(kind)
    except errors.InvalidInput:
        raise errors.InvalidInput(f"{path}.kind: unknown campaign kind {kind!r}") from None
    campaign_id = config_id(config, "id", path)
    try:
        campaign_get_for_app(app=app, kind=kind, campaign_id=campaign_id)
    except errors.NotFound:
        raise errors.InvalidInput(f"{path}.id: no {kind} {campaign_id} in this App") from None
    return {"kind": kind, "id": campaign_id}


def campaign_results_tile(app: App, config: Mapping[str, Any]) -> dict[str, Any]:
    kind = campaign_kind_get(config["kind"])
    campaign = campaign_get_for_app(app=app, kind=kind.name, campaign_id=config["id"])
    variants = [name for name, _ in kind.variants(campaign)] or [""]
    experiment = campaign_kpi_results(campaign=campaign, kind=kind.name, variants=variants)
    columns = ["Group", "People", "Rate", "Lift", "p-value"]
    rows: list[list[Any]] = []
    note = ""
    if experiment["kpis"]:
        block = experiment["kpis"][0]
        holdout = block["holdout"]
        rows.append(["Holdout", holdout["people"], _percent(holdout["rate"]), "", ""])
        for label, group in [("Exposed", block["exposed"])] + [
            (f"Variant {v['variant']}", v) for v in block["variants"]
        ]:
            rows.append(
                [
                    label,
                    group["people"],
                    _percent(group["rate"]),
                    _percent(group["lift"]) if group["lift"] is not None else "–",
                    f"{group['p_value']:.3g}" if group["p_value"] is not None else "–",
                ]
            )
        note = f"KPI {block['kpi']['name']}: {block['exposed']['verdict']}"
        if block["warning"]:
            note += f" {block['warning']}"
    else:
        results = campaign_results(kind=kind.name, campaign_id=campaign.pk, variants=variants)
        holdout = results["holdout"]
        rows.append(["Holdout", holdout["eligible"], _percent(holdout["conversion_rate"]), "", ""])
        for v in results["variants"]:
            rows.append(
                [
                    v["variant"] or "Shown",
                    v["shown"],
                    _percent(v["conversion_rate"]),
                    _percent(v["lift"]) if v["lift"] is not None else "–",
                    f"{v['p_value']:.3g}" if v["p_value"] is not None else "–",
                ]
            )
        note = "Goal event conversions (define a KPI to measure more)."
    return {"type": "table", "columns": columns, "rows": rows, "note": f"{campaign.name}. {note}"}


def _register_engage_tiles() -> None:
    dashboard_tile_register(
        TileType(
            "trend",
            "Trend",
            _insight_check(InsightKind.TREND),
            trend_tile,
            "A saved trend insight: events per day or week.",
            _insight_name,
        )
    )
    dashboard_tile_register(
        TileType(
            "funnel",
            "Funnel",
            _insight_check(InsightKind.FUNNEL),
            funnel_tile,
            "A saved funnel insight: people per step.",
            _insight_name,
        )
    )
    dashboard_tile_register(
        TileType(
            "campaign_results",
            "Campaign results",
            _campaign_check,
            campaign_results_tile,
            "A message's or survey's effect on the App's first KPI.",
            _campaign_name,
        )
    )


_register_engage_tiles()


# --- dashboards: writes and data ---------------------------------------------------------------


def _tiles_checked(app: App, tiles: Any) -> list[dict[str, Any]]:
    if not isinstance(tiles, Sequence) or isinstance(tiles, str | bytes):
        raise errors.InvalidInput("tiles: must be a list")
    if len(tiles) > MAX_TILES:
        raise errors.InvalidInput(f"tiles: at most {MAX_TILES} tiles per dashboard")
    checked = []
    for i, tile in enumerate(tiles):
        path = f"tiles[{i}]"
        if not isinstance(tile, Mapping):
            raise errors.InvalidInput(f"{path}: must be an object")
        kind = tile.get("kind")
        tile_type = dashboard_tile_type(str(kind), f"{path}.kind")
        config = tile.get("config") or {}
        if not isinstance(config, Mapping):
            raise errors.InvalidInput(f"{path}.config: must be an object")
        width = tile.get("width", 1)
        if width not in (1, 2):
            raise errors.InvalidInput(f"{path}.width: 1 (half) or 2 (full width)")
        title = tile.get("title") or ""
        if not isinstance(title, str) or len(title) > 200:
            raise errors.InvalidInput(f"{path}.title: a text of at most 200 characters")
        checked.append(
            {
                "kind": tile_type.kind,
                "title": title,
                "config": tile_type.check(app, config, f"{path}.config"),
                "width": width,
                "position": i,
            }
        )
    return checked


def _tiles_replace(dashboard: Dashboard, tiles: list[dict[str, Any]]) -> None:
    dashboard.tiles.all().delete()
    DashboardTile.objects.bulk_create([DashboardTile(dashboard=dashboard, **t) for t in tiles])


@transaction.atomic
def dashboard_create(*, app: App, name: str, description: str = "", tiles: Any = ()) -> Dashboard:
    """A new dashboard with its tiles in order. Before: every tile's kind is registered and
    its config points at things of this App (400 naming `tiles[i]…` otherwise)."""
    checked = _tiles_checked(app, list(tiles))
    dashboard = Dashboard(app=app, name=name, description=description)
    dashboard.full_clean()
    dashboard.save()
    _tiles_replace(dashboard, checked)
    return dashboard


@transaction.atomic
def dashboard_update(*, dashboard: Dashboard, data: Mapping[str, Any]) -> Dashboard:
    """Change name and description; `tiles`, when given, replaces all tiles (in order)."""
    for field in ("name", "description"):
        if field in data:
            setattr(dashboard, field, data[field])
    dashboard.full_clean()
    dashboard.save()
    if "tiles" in data:
        _tiles_replace(dashboard, _tiles_checked(dashboard.app, data["tiles"]))
    return dashboard


@transaction.atomic
def dashboard_delete(*, dashboard: Dashboard) -> None:
    dashboard.delete()


def dashboard_get_for_app(*, app: App, dashboard_id: Any) -> Dashboard:
    dashboard = (
        Dashboard.objects.filter(app=app, pk=dashboard_id).first()
        if str(dashboard_id).isdigit()
        else None
    )
    if dashboard is None:
        raise errors.NotFound("No such dashboard in this App.")
    return dashboard


def tile_data(app: App, tile: DashboardTile) -> dict[str, Any]:
    """One tile's data, or `{"error": {"code", "message"}}` when it cannot be computed now
    (an insight over its time budget, a campaign since deleted): one tile never breaks the
    rest of the dashboard."""
    try:
        tile_type = dashboard_tile_type(tile.kind)
        return {"data": tile_type.build(app, tile.config)}
    except errors.EngageError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}


def dashboard_data(*, dashboard: Dashboard) -> dict[str, Any]:
    """Every tile of the dashboard computed, in order. Read-only."""
    app = dashboard.app
    tiles = []
    for tile in dashboard.tiles.all():
        tile_type = _types.get(tile.kind)
        title = tile.title
        if not title and tile_type is not None:
            title = (tile_type.title_of and tile_type.title_of(app, tile.config)) or tile_type.title
        tiles.append(
            {
                "id": tile.pk,
                "kind": tile.kind,
                "title": title or tile.kind,
                "width": tile.width,
                "position": tile.position,
                **tile_data(app, tile),
            }
        )
    return {
        "id": dashboard.pk,
        "name": dashboard.name,
        "description": dashboard.description,
        "tiles": tiles,
    }
