"""The planner's view of the recommendations (``soe recommendations``)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd


# The action types of marts.md's ``recommendations``.
ACTION_TYPES = ("reallocate_stock", "expedite_purchase_order", "expedite_transfer", "pull_in_production",
                "reprioritise_production", "adjust_order_promise", "alternate_source", "escalate_to_sop")


def whole_money(amounts: object) -> np.ndarray:
    """Whole money, halves rounded away from zero as people do ($112.50 reads '$113'; Python's format rounds
    half to even): the explanations and the listing say the same amount."""
    amounts = np.asarray(amounts, dtype=float)
    return np.sign(amounts) * np.floor(np.abs(amounts) + 0.5) + 0.0


def format_recommendations(frame: pd.DataFrame, *, top: int = 20, action_type: str | None = None,
                           width: int = 160) -> str:
    """The recommendations in rank order (money at stake: see ``docs/responses.md``)."""
    rows = frame[frame["action_type"].eq(action_type)] if action_type else frame
    rows = rows.sort_values("rank") if "rank" in rows.columns else rows
    if not len(rows):
        return "no recommendations: nothing inside the time fence needs a response"
    acting = rows[~rows["action_type"].isin(["escalate_to_sop", "adjust_order_promise"])]
    lines = [f"{len(rows)} recommendation(s): {len(acting)} action(s) protecting "
             f"{whole_money(acting['impact_resolved_value'].sum()):,.0f} for {whole_money(acting['cost'].sum()):,.0f} of cost, "
             f"{int(rows['action_type'].eq('adjust_order_promise').sum())} re-promise(s), "
             f"{int(rows['action_type'].eq('escalate_to_sop').sum())} escalation(s) to S&OP"]
    shown = rows.head(top) if top else rows
    for i, row in enumerate(shown.itertuples(), start=1):
        route = " -> ".join(str(x) for x in (row.from_location_id, row.to_location_id) if isinstance(x, str) and x)
        lines.append("")
        lines.append(f"{i:>3}. {row.action_type:<24} {row.sku_id:<12} {route:<24} qty {row.qty:>9,.0f}  "
                     f"protects {whole_money(row.impact_resolved_value):>11,.0f}  cost {whole_money(row.cost):>9,.0f}")
        link = (f"resolves {row.resolves_exception_ids}" if isinstance(row.resolves_exception_ids, str)
                else f"serves {row.exception_id} without resolving it")
        lines.append(f"     {link}  [{row.recommendation_id}]")
        lines += textwrap.wrap(str(row.explanation), width=width - 5, initial_indent="     ", subsequent_indent="     ")
    if top and len(rows) > top:
        lines.append("")
        lines.append(f"... {len(rows) - top} more (--top 0 shows all)")
    return "\n".join(lines)
