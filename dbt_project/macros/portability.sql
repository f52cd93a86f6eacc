{#-
    Adapter-dispatched helpers for the few things that differ between
    warehouses. Models call these (and dbt's cross-database macros) only.
-#}

{#- The ISO week start (Monday) of a date, as a date. -#}
{% macro iso_week_start(date_expr) -%}
    {{ return(adapter.dispatch('iso_week_start', 'soe')(date_expr)) }}
{%- endmacro %}

{% macro default__iso_week_start(date_expr) -%}
    {#- Postgres / Redshift truncate to the ISO Monday. -#}
    cast({{ dbt.date_trunc('week', date_expr) }} as date)
{%- endmacro %}

{% macro duckdb__iso_week_start(date_expr) -%}
    {#- DuckDB: date_trunc('week') is the ISO Monday; it returns a timestamp for dates in some versions. -#}
    cast(date_trunc('week', {{ date_expr }}) as date)
{%- endmacro %}

{% macro snowflake__iso_week_start(date_expr) -%}
    {#- Snowflake's week start depends on WEEK_START; ISO weeks are explicit. -#}
    cast(dateadd(day, 1 - dayofweekiso({{ date_expr }}), {{ date_expr }}) as date)
{%- endmacro %}


{#- A double-precision floating type (dbt's type_float() is 4-byte FLOAT on DuckDB). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'soe')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    {{ dbt.type_float() }}
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro postgres__type_double() -%}
    double precision
{%- endmacro %}


{#- Add a number of days to a date and keep the result a date. -#}
{% macro add_days(date_expr, days_expr) -%}
    cast({{ dbt.dateadd('day', days_expr, date_expr) }} as date)
{%- endmacro %}


{#-
    Integers 0..999 as column `n`, built from a cross join of digits so it
    works on every warehouse (no generate_series / range).
-#}
{% macro integer_series_0_999() -%}
    {{ return(adapter.dispatch('integer_series_0_999', 'soe')()) }}
{%- endmacro %}

{% macro default__integer_series_0_999() -%}
    select ones.d + 10 * tens.d + 100 * hundreds.d as n
    from (
        select 0 as d union all select 1 union all select 2 union all select 3 union all select 4
        union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
    ) as ones
    cross join (
        select 0 as d union all select 1 union all select 2 union all select 3 union all select 4
        union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
    ) as tens
    cross join (
        select 0 as d union all select 1 union all select 2 union all select 3 union all select 4
        union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
    ) as hundreds
{%- endmacro %}


{#-
    Index of the horizon week a due date falls in (0 = the week of as_of).
    Anything due on or before as_of is late and counts in week 0.
-#}
{% macro horizon_week_index(due_date_expr, as_of_expr, week0_start_expr) -%}
    case
        when {{ due_date_expr }} <= {{ as_of_expr }} then 0
        else cast(
            {{ dbt.datediff(week0_start_expr, soe.iso_week_start(due_date_expr), 'day') }} / 7
            as {{ dbt.type_int() }}
        )
    end
{%- endmacro %}


{#-
    A quantity as text for a sentence a planner reads: whole numbers as such,
    fractions with up to two decimals ('40', '12.5', '1,250'), the rule of the
    exceptions' explanations (soe_assets/detect/rules.py).
-#}
{% macro quantity_text(number_expr) -%}
    {{ return(adapter.dispatch('quantity_text', 'soe')(number_expr)) }}
{%- endmacro %}

{% macro default__quantity_text(number_expr) -%}
    {#- Postgres, Redshift, Snowflake: to_char groups the digits by a literal comma (not the locale's), with two
        decimals; then trailing zeros and a bare point are trimmed. -#}
    rtrim(rtrim(to_char({{ dbt.cast(number_expr, 'numeric(38, 2)') }}, 'FM999,999,999,999,999,999,990.00'), '0'), '.')
{%- endmacro %}

{% macro duckdb__quantity_text(number_expr) -%}
    regexp_replace(printf('%,.2f', cast({{ number_expr }} as double)), '\.?0+$', '')
{%- endmacro %}
