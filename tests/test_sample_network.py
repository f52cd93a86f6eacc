"""The sample-network generator writes a landing zone that honours the contract."""

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from support import run_soe

from soe_assets.sample_network import (
    PLANTED_PROBLEM_KINDS,
    PRIMARY_KEYS,
    SCHEMAS,
    NetworkSize,
    existing_extracts,
    generate_landing_zone,
)

SIZE = NetworkSize(skus=40, dcs=3, plants=2, stores=2)
AS_OF = date(2026, 11, 20)


def read_extract(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_parquet(path)


def read_source(landing: Path, source: str) -> pd.DataFrame:
    """Union of a source's extracts, the latest extract winning per primary key."""
    frames = [read_extract(path).astype(str).assign(_file=path.name) for path in sorted((landing / source).iterdir())]
    union = pd.concat(frames, ignore_index=True)
    return union.drop_duplicates(PRIMARY_KEYS[source], keep="last")


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("landing")
    generate_landing_zone(out_dir, seed=7, size=SIZE, as_of=AS_OF)
    return out_dir


def test_every_source_folder_holds_files_with_every_contract_column(landing: Path) -> None:
    for source, schema in SCHEMAS.items():
        files = sorted((landing / source).iterdir())
        assert files, source
        for path in files:
            assert path.name[:10] <= AS_OF.isoformat()
            assert path.suffix in {".csv", ".parquet"}
            assert list(read_extract(path).columns) == schema.names, path


def test_dates_are_iso_and_empty_only_where_allowed(landing: Path) -> None:
    optional = {"ship_date", "received_date", "actual_finish_date", "actual_arrival_date"}
    for source, schema in SCHEMAS.items():
        for path in sorted((landing / source).iterdir()):
            frame = read_extract(path)
            for column in schema.names:
                if schema.field(column).type != pa.date32():
                    continue
                values = frame[column].astype(str)
                filled = values[~values.isin(["", "None", "NaT"])]
                if column not in optional:
                    assert len(filled) == len(values), (path, column)
                pd.to_datetime(filled, format="%Y-%m-%d")
    week_starts = pd.to_datetime(read_source(landing, "sop_plan")["week_start"])
    assert (week_starts.dt.weekday == 0).all()


def test_primary_keys_are_unique_within_each_file(landing: Path) -> None:
    for source in SCHEMAS:
        for path in sorted((landing / source).iterdir()):
            frame = read_extract(path).astype(str)
            assert not frame.duplicated(PRIMARY_KEYS[source]).any(), path


def test_every_sku_and_location_exists_in_master_data(landing: Path) -> None:
    skus = set(read_source(landing, "skus")["sku_id"])
    locations = read_source(landing, "locations")
    assert len(skus) == SIZE.skus
    assert locations["location_type"].value_counts().to_dict() == {"dc": 3, "plant": 2, "store": 2}
    known = set(locations["location_id"])
    for source, schema in SCHEMAS.items():
        frame = read_source(landing, source)
        if "sku_id" in schema.names:
            assert set(frame["sku_id"]) - {""} <= skus, source
        for column in ("location_id", "from_location_id", "to_location_id"):
            if column in schema.names:
                assert set(frame[column]) <= known, (source, column)


def test_stock_and_quantities_are_never_negative(landing: Path) -> None:
    snapshots = read_source(landing, "inventory_snapshots")
    on_hand = snapshots["on_hand_qty"].astype(float)
    assert (on_hand >= 0).all()
    assert (snapshots["quality_hold_qty"].astype(float) <= on_hand).all()
    assert (read_source(landing, "sales_orders")["ordered_qty"].astype(float) > 0).all()


def test_the_plan_has_an_older_a_committed_and_a_future_version(landing: Path) -> None:
    plan = read_source(landing, "sop_plan")
    committed = pd.to_datetime(plan["committed_at"], format="ISO8601").groupby(plan["plan_version"]).first()
    assert len(committed) == 3
    end_of_as_of = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
    assert (committed < end_of_as_of).sum() == 2
    assert (committed >= end_of_as_of).sum() == 1
    latest = plan[plan["plan_version"] == committed[committed < end_of_as_of].idxmax()]
    weeks = pd.to_datetime(latest["week_start"])
    assert weeks.min() < pd.Timestamp(AS_OF) - pd.Timedelta(weeks=11)
    assert weeks.max() > pd.Timestamp(AS_OF) + pd.Timedelta(weeks=11)


def test_a_later_extract_upserts_an_order_line_that_was_open_earlier(landing: Path) -> None:
    files = sorted((landing / "sales_orders").iterdir())
    first, last = read_extract(files[0]).astype(str), read_extract(files[-1]).astype(str)
    both = first.merge(last, on=["order_id", "line_no"], suffixes=("_then", "_now"))
    shipped_later = both[(both["status_then"] == "open") & (both["status_now"] == "shipped")]
    assert len(shipped_later) > 0
    assert (shipped_later["ship_date_now"] > files[0].name[:10]).all()


def test_the_order_book_fills_over_time(landing: Path) -> None:
    orders = read_source(landing, "sales_orders")
    orders = orders[orders["status"] != "cancelled"]
    requested = pd.to_datetime(orders["requested_date"])
    qty = orders["ordered_qty"].astype(float)
    near = qty[(requested > pd.Timestamp(AS_OF)) & (requested <= pd.Timestamp(AS_OF) + pd.Timedelta(days=7))].sum()
    far = qty[requested > pd.Timestamp(AS_OF) + pd.Timedelta(days=63)].sum()
    assert near > 3 * far > 0
    past = orders[requested <= pd.Timestamp(AS_OF) - pd.Timedelta(days=7)]
    assert (past["status"] == "shipped").mean() > 0.95


def test_planted_problems_file_lists_each_kind_at_distinct_places(landing: Path) -> None:
    planted = json.loads((landing / "_planted_problems.json").read_text())
    assert sorted(p["problem"] for p in planted) == sorted(PLANTED_PROBLEM_KINDS)
    places = [(p["sku_id"], p["location_id"]) for p in planted]
    assert len(set(places)) == len(places)
    slip = next(p for p in planted if p["problem"] == "supplier_slip")
    po_id, line_no = slip["reference_id"].split(":")
    lines = read_source(landing, "purchase_orders")
    line = lines[(lines["po_id"] == po_id) & (lines["line_no"] == line_no)].iloc[0]
    assert line["status"] == "open"
    assert pd.Timestamp(line["confirmed_date"]) - pd.Timestamp(line["promised_date"]) >= pd.Timedelta(days=21)


def test_capacity_is_above_load_except_the_planted_overload(landing: Path) -> None:
    orders = read_source(landing, "production_orders")
    orders = orders[orders["status"] != "cancelled"]
    week = pd.to_datetime(orders["planned_start_date"]).dt.strftime("%Y-%m-%d")
    load = orders["planned_qty"].astype(float).groupby([orders["resource_id"], week]).sum()
    capacity = read_source(landing, "resource_capacity")
    capacity = capacity.set_index(["resource_id", "week_start"])["capacity_qty"].astype(float)
    overloaded = load[load > capacity.reindex(load.index)]
    planted = next(p for p in json.loads((landing / "_planted_problems.json").read_text())
                   if p["problem"] == "capacity_overload")
    assert list(overloaded.index) == [(planted["reference_id"], planted["week_start"])]


def test_output_is_deterministic_for_a_seed_and_differs_between_seeds(landing: Path, tmp_path: Path) -> None:
    generate_landing_zone(tmp_path / "same", seed=7, size=SIZE, as_of=AS_OF)
    generate_landing_zone(tmp_path / "other", seed=8, size=SIZE, as_of=AS_OF)
    for path in sorted(landing.rglob("*.csv")):
        relative = path.relative_to(landing)
        assert (tmp_path / "same" / relative).read_bytes() == path.read_bytes(), relative
    same_orders = read_source(tmp_path / "same", "sales_orders")
    assert same_orders.equals(read_source(landing, "sales_orders"))
    assert not read_source(tmp_path / "other", "sales_orders").equals(same_orders)


def test_stores_are_optional(tmp_path: Path) -> None:
    summary = generate_landing_zone(tmp_path, seed=1, size=NetworkSize(skus=12, dcs=2, plants=1), as_of=AS_OF)
    assert not (tmp_path / "pos_sales").exists()
    assert "pos_sales" not in summary.rows_per_source
    assert summary.rows_per_source["sales_orders"] > 0


def test_generating_into_a_landing_zone_is_refused_unless_replaced(tmp_path: Path, capsys) -> None:
    """Another network's extracts (here of an earlier as_of) left beside the new ones would mix two networks."""
    from orchestration.cli import main

    out = tmp_path / "landing"
    small = ["--skus", "3", "--dcs", "1", "--plants", "1"]
    assert main(["generate", "--out", str(out), "--as-of", "2026-11-13", *small]) == 0
    (out / "notes.txt").write_text("kept")
    before = existing_extracts(out)

    assert main(["generate", "--out", str(out), *small]) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and "--replace" in err and "Traceback" not in err
    assert existing_extracts(out) == before  # nothing written

    assert main(["generate", "--out", str(out), "--replace", *small]) == 0
    fresh = tmp_path / "fresh"
    generate_landing_zone(fresh, seed=7, size=NetworkSize(skus=3, dcs=1, plants=1))
    assert [p.relative_to(out) for p in existing_extracts(out)] == [p.relative_to(fresh) for p in existing_extracts(fresh)]
    assert (out / "notes.txt").read_text() == "kept"  # only extracts are replaced

    assert main(["generate", "--out", str(out / "notes.txt"), *small]) == 2  # a file is no folder
    err = capsys.readouterr().err
    assert "cannot write the landing zone to" in err and "Traceback" not in err


@pytest.mark.parametrize(("arguments", "message"), [
    (["--seed", "-5"], "argument --seed: '-5' must be at least 0"),
    (["--as-of", "1850-01-01"], "pick a day from 1901-01-01 to 2198-12-31"),
    (["--as-of", "2199-12-31"], "pick a day from 1901-01-01 to 2198-12-31"),
])
def test_a_sample_the_pipeline_would_reject_is_refused_up_front(tmp_path: Path, capsys, arguments, message) -> None:
    """A negative seed, or an as_of whose sample would carry dates no extract may hold, is a usage error, not a
    traceback or a landing zone whose every plan row is quarantined."""
    from orchestration.cli import main

    try:
        code = main(["generate", "--out", str(tmp_path / "landing"), *arguments])
    except SystemExit as exit_:  # argparse refuses the option itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "landing").exists()


def test_a_late_transfer_leaves_the_plant_shipping_it_short_of_nothing(tmp_path: Path) -> None:
    """Seed 2 plants its late transfer on a SKU its plant ships mostly to that DC: the plant keeps producing the
    DC's share while the DC waits (its S&OP plan still counts it), so the pipeline finds a stockout or buffer gap
    only where a problem was planted, or one caused by it (once, the plant ran short: an unplanted exception)."""
    landing = tmp_path / "landing"
    generate_landing_zone(landing, seed=2, size=NetworkSize(skus=40, dcs=3, plants=2, stores=2))
    planted = {(p["sku_id"], p["location_id"]) for p in json.loads((landing / "_planted_problems.json").read_text())}
    run = run_soe(tmp_path, landing, as_of=None)
    shortages = run.query("SELECT sku_id, location_id, caused_by_exception_id FROM marts.exceptions WHERE status = "
                          "'open' AND exception_type IN ('projected_stockout', 'below_safety_stock')")
    unexplained = shortages[shortages["caused_by_exception_id"].isna()
                            & ~pd.Series(list(zip(shortages["sku_id"], shortages["location_id"]))).isin(planted)]
    assert unexplained.empty, unexplained
