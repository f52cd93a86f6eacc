{#- The reference of an order line as the marts contract spells it: `<order id>:<line no>`. -#}
{% macro line_reference(order_id, line_no) -%}
    {{ dbt.concat([order_id, "':'", dbt.cast(line_no, dbt.type_string())]) }}
{%- endmacro %}
