-- open_line_over_delivered: an open sales-order or PO line that has shipped or received more than
-- was ordered, or an open production order that has completed more than was planned: the status
-- says more is to come while the quantities say it is done; its remainder is taken as nothing, not
-- negative.

with

order_lines as (

    select * from {{ ref('stg_sales_orders') }}

),

po_lines as (

    select * from {{ ref('stg_purchase_orders') }}

),

open_production as (

    select * from {{ ref('stg_production_orders') }}

),

open_quantities as (

    select
        'sales_orders' as source,
        order_lines.sku_id,
        order_lines.location_id,
        {{ line_reference('order_lines.order_id', 'order_lines.line_no') }} as reference_id,
        order_lines.requested_date as event_date,
        'Order line ' as subject,
        order_lines.status,
        'shipped' as delivered_as,
        order_lines.shipped_qty as delivered_qty,
        order_lines.ordered_qty as due_qty,
        'ordered' as due_as
    from order_lines
    where order_lines.status = 'open'

    union all

    select
        'purchase_orders' as source,
        po_lines.sku_id,
        po_lines.location_id,
        {{ line_reference('po_lines.po_id', 'po_lines.line_no') }} as reference_id,
        po_lines.confirmed_date as event_date,
        'PO line ' as subject,
        po_lines.status,
        'received' as delivered_as,
        po_lines.received_qty as delivered_qty,
        po_lines.ordered_qty as due_qty,
        'ordered' as due_as
    from po_lines
    where po_lines.status = 'open'

    union all

    select
        'production_orders' as source,
        open_production.sku_id,
        open_production.location_id,
        open_production.production_order_id as reference_id,
        open_production.planned_finish_date as event_date,
        'Production order ' as subject,
        open_production.status,
        'completed' as delivered_as,
        open_production.completed_qty as delivered_qty,
        open_production.planned_qty as due_qty,
        'planned' as due_as
    from open_production
    where open_production.status in ('planned', 'released', 'in_progress')

),

open_lines_over_delivered as (

    select
        'open_line_over_delivered' as finding_type,
        open_quantities.source,
        open_quantities.sku_id,
        open_quantities.location_id,
        open_quantities.reference_id,
        open_quantities.event_date,
        open_quantities.delivered_qty - open_quantities.due_qty as qty,
        {{ dbt.concat([
            'open_quantities.subject', 'open_quantities.reference_id',
            "' is '", 'open_quantities.status',
            "' but has '", 'open_quantities.delivered_as',
            "' '", soe.quantity_text('open_quantities.delivered_qty'),
            "' of '", soe.quantity_text('open_quantities.due_qty'),
            "' units '", 'open_quantities.due_as',
            "': nothing more is taken as due.'",
        ]) }} as detail
    from open_quantities
    where open_quantities.delivered_qty > open_quantities.due_qty

)

select * from open_lines_over_delivered
