-- delivered_without_date: a sales-order line shipped, a PO line received or a production order
-- completed by its status, with units delivered but without the date that says when: the KPIs that
-- judge it on time (OTIF, fill rate, supplier on-time, schedule adherence) count it as late, so
-- does the S&OP feedback's supplier delay, and its cost of goods sold has no week.

with

closed_order_lines as (

    select * from {{ ref('stg_sales_orders') }}

),

closed_po_lines as (

    select * from {{ ref('stg_purchase_orders') }}

),

closed_production as (

    select * from {{ ref('stg_production_orders') }}

),

closed_quantities as (

    select
        'sales_orders' as source,
        closed_order_lines.sku_id,
        closed_order_lines.location_id,
        {{ line_reference('closed_order_lines.order_id', 'closed_order_lines.line_no') }} as reference_id,
        closed_order_lines.promised_date as event_date,
        'Order line ' as subject,
        closed_order_lines.status,
        closed_order_lines.shipped_qty as delivered_qty,
        'ship_date' as missing_date,
        'OTIF and fill rate count it as late and its cost of goods sold falls in no week' as consequence
    from closed_order_lines
    where closed_order_lines.status = 'shipped'
      and closed_order_lines.ship_date is null
      and closed_order_lines.shipped_qty > 0

    union all

    select
        'purchase_orders' as source,
        closed_po_lines.sku_id,
        closed_po_lines.location_id,
        {{ line_reference('closed_po_lines.po_id', 'closed_po_lines.line_no') }} as reference_id,
        closed_po_lines.promised_date as event_date,
        'PO line ' as subject,
        closed_po_lines.status,
        closed_po_lines.received_qty as delivered_qty,
        'received_date' as missing_date,
        'the supplier on-time rate counts it as late' as consequence
    from closed_po_lines
    where closed_po_lines.status = 'received'
      and closed_po_lines.received_date is null
      and closed_po_lines.received_qty > 0

    union all

    select
        'production_orders' as source,
        closed_production.sku_id,
        closed_production.location_id,
        closed_production.production_order_id as reference_id,
        closed_production.planned_finish_date as event_date,
        'Production order ' as subject,
        closed_production.status,
        closed_production.completed_qty as delivered_qty,
        'actual_finish_date' as missing_date,
        'schedule adherence counts it as not finished' as consequence
    from closed_production
    where closed_production.status = 'completed'
      and closed_production.actual_finish_date is null
      and closed_production.completed_qty > 0

),

delivered_without_date as (

    select
        'delivered_without_date' as finding_type,
        closed_quantities.source,
        closed_quantities.sku_id,
        closed_quantities.location_id,
        closed_quantities.reference_id,
        closed_quantities.event_date,
        closed_quantities.delivered_qty as qty,
        {{ dbt.concat([
            'closed_quantities.subject', 'closed_quantities.reference_id',
            "' is '", 'closed_quantities.status',
            "' ('", soe.quantity_text('closed_quantities.delivered_qty'),
            "' units) but has no '", 'closed_quantities.missing_date',
            "': '", 'closed_quantities.consequence', "'.'",
        ]) }} as detail
    from closed_quantities

)

select * from delivered_without_date
