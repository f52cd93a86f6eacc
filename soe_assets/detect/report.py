"""The planner's view of the ``exceptions`` mart on a terminal (``soe exceptions``)."""

from __future__ import annotations

import textwrap

import pandas as pd

from soe_assets.detect.impact import held_back_impact, linked_impact


def _filtered(rows: pd.DataFrame, exception_type: str | None, location: str | None) -> pd.DataFrame:
    if exception_type:
        rows = rows[rows["exception_type"].eq(exception_type)]
    if location:
        rows = rows[rows["location_id"].eq(location)]
    return rows


def format_exceptions(frame: pd.DataFrame, *, top: int = 20, exception_type: str | None = None,
                      location: str | None = None, width: int = 160, held_back: pd.DataFrame | None = None) -> str:
    """The ranked open exceptions as a readable table, plus a line on what was resolved; ``held_back``: the open
    exceptions of the same run the alert budget kept out of the mart (said in one line: a planner should know
    the list is cut)."""
    rows = _filtered(frame, exception_type, location)
    open_rows = rows[rows["status"].eq("open")].sort_values("priority")
    top = top or len(open_rows)  # 0: all, as for the recommendations
    resolved = rows[rows["status"].eq("resolved")]
    as_of = str(frame["as_of"].iloc[0])[:10] if len(frame) else ""
    heading = f"exceptions as of {as_of}" if as_of else "exceptions of the latest run"
    lines = [f"{heading}: {len(open_rows)} open"
             + (f" (showing the top {top})" if len(open_rows) > top else "")
             + f", {len(resolved)} resolved since the last run; open impact {linked_impact(open_rows):,.0f} "
             "(linked exceptions counted once)"]
    held = _filtered(held_back, exception_type, location) if held_back is not None else frame.iloc[0:0]
    if len(held):
        lines.append(f"{len(held)} more open exception(s) worth {held_back_impact(open_rows, held):,.0f} held "
                     "back by the alert budget (--max-open-exceptions; linked exceptions counted once): see "
                     "exception_history, in_alert_budget = false")
    if open_rows.empty:
        lines.append("nothing needs attention.")
    else:
        shown = open_rows.head(top).copy()
        shown["where"] = shown["sku_id"].fillna("").astype(str).where(shown["sku_id"].notna(), "-") + " @ " + \
            shown["location_id"].fillna("-").astype(str)
        shown["when"] = shown["week_start"].astype(str).str[:10].replace({"NaT": "-", "None": "-", "nan": "-"})
        shown["new"] = (shown["first_detected_on"].astype(str).str[:10] == as_of).map({True: "new", False: ""})
        shown["sop"] = shown["escalate_to_sop"].map({True: "S&OP", False: ""})
        header = f"{'#':>3}  {'type':<20} {'where':<22} {'when':<10} {'impact':>12}  {'':<4} {'':<3}  explanation"
        lines += [header, "-" * min(width, len(header) + 60)]
        indent = 3 + 2 + 21 + 23 + 11 + 13 + 2 + 5 + 4 + 2
        wrap = max(40, width - indent)
        for row in shown.itertuples():
            text = textwrap.wrap(str(row.explanation), wrap) or [""]
            lines.append(f"{int(row.priority):>3}  {row.exception_type:<20} {row.where[:22]:<22} {row.when:<10} "
                         f"{row.impact_value:>12,.0f}  {row.sop:<4} {row.new:<3}  {text[0]}")
            lines += [" " * indent + more for more in text[1:]]
    if len(resolved):
        lines.append("resolved since the last run: " + ", ".join(_resolved_labels(resolved.head(10)))
                     + (" ..." if len(resolved) > 10 else ""))
    return "\n".join(lines)


def _resolved_labels(resolved: pd.DataFrame) -> pd.Series:
    """Each resolved exception as a planner tells it apart: type, SKU @ location where it has them, and the
    reference (the PO line, shipment, order, resource or data-quality item; a resource with its week), since
    one SKU-location can hold several late PO lines and one resource several overloaded weeks."""
    sku = resolved["sku_id"].fillna("").astype(str)
    location = resolved["location_id"].fillna("").astype(str)
    where = (sku + " @ " + location).where(sku.ne(""), location)
    reference = resolved["reference_id"].fillna("").astype(str)
    week = resolved["week_start"].astype(str).str[:10].where(resolved["week_start"].notna(), "")
    reference = (reference + " week " + week).where(resolved["exception_type"].eq("capacity_overload") & week.ne(""),
                                                   reference)
    return (resolved["exception_type"] + (" " + where).where(where.ne(""), "")
            + (" (" + reference + ")").where(reference.ne(""), ""))
