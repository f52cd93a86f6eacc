"""The compiled SQL contract rejects exactly what pandera's own validation rejects, for the same reasons."""

import pandas as pd
from support import AS_OF, minimal_network, write_landing_zone, write_source
from test_contracts import BAD_ROWS, _order

from data_contracts.sources import SOURCES_BY_NAME
from data_contracts.validation import MasterData, validate_extract
from soe_assets.ingest.landing import list_extracts, read_extract_text
from soe_assets.ingest.pipeline import ingest_landing_zone


def test_sql_engine_and_pandera_agree_on_every_kind_of_bad_row(tmp_path):
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    rows = [_order("OK-0")] + [_order(f"BAD-{i}", **change) for i, (_, change, _, _) in enumerate(BAD_ROWS)]
    rows += [_order("DUP"), _order("DUP", ordered_qty=3), _order("OK-1", line_no="2.5")]
    write_source(landing, "sales_orders", rows, suffix="_mixed")

    sql = ingest_landing_zone(landing, AS_OF).quarantine
    sql = sql[sql["file"] == f"{AS_OF.isoformat()}_mixed.csv"][["row_number", "column", "reason"]]

    extract = next(e for e in list_extracts(landing, "sales_orders") if e.file.endswith("_mixed.csv"))
    text = read_extract_text(extract).to_pandas()
    master = MasterData(sku_ids={"SKU-A", "SKU-B"}, location_ids={"PLANT-1", "DC-1", "DC-2"})
    reference = validate_extract(SOURCES_BY_NAME["sales_orders"], text, extract_date=AS_OF, master=master).rejections

    def normalised(frame: pd.DataFrame) -> list[tuple]:
        return sorted((int(r), c, reason) for r, c, reason in frame[["row_number", "column", "reason"]].itertuples(index=False))

    assert len(sql) >= len(BAD_ROWS) + 3
    assert normalised(sql) == normalised(reference)
