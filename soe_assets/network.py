"""How supply flows down the network: the location tiers, and the transfers that replenish a later tier."""

# The location types in the order supply flows down the network: a transfer to a later type is replenishment.
NETWORK_TIERS = ("plant", "dc", "store")


def _tier(location_type: str) -> str:
    """SQL: the position of a location type in ``NETWORK_TIERS`` (NULL for another)."""
    return f"list_position({list(NETWORK_TIERS)}, {location_type})"


def replenishment_shipments_sql(condition: str = "") -> str:
    """SQL: the shipments from a location to one of a later tier (plant to DC or store, DC to store), with
    ``sku_id``, ``location_id`` (where they leave from), ``ship_date`` and ``qty``. The plan at a location covers
    the replenishment it ships on, so these are its demand too; a move between locations of one tier (a
    reallocation between DCs) is not. ``condition``: more SQL ANDed to the filter (alias ``shipments``)."""
    return f"""
    select shipments.sku_id, shipments.from_location_id as location_id, shipments.ship_date, shipments.qty
    from staging.stg_shipments as shipments
    inner join staging.stg_locations as origin on origin.location_id = shipments.from_location_id
    inner join staging.stg_locations as destination on destination.location_id = shipments.to_location_id
    where {_tier('destination.location_type')} > {_tier('origin.location_type')}{condition}"""
