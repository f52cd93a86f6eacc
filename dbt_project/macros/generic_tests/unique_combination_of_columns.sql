{#- Fails for every combination of the given columns that occurs more than once. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {{ return(adapter.dispatch('test_unique_combination_of_columns', 'soe')(model, combination_of_columns)) }}
{% endtest %}

{% macro default__test_unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    select {{ columns_csv }}, count(*) as n_rows
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1
{% endmacro %}

{% macro duckdb__test_unique_combination_of_columns(model, combination_of_columns) %}
    {#- Grouping by one hash of the key is about twice as fast on millions of rows;
        only the rows whose hash repeats are grouped by the columns themselves. -#}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    with repeated_hashes as (
        select hash({{ columns_csv }}) as key_hash
        from {{ model }}
        group by 1
        having count(*) > 1
    )
    select {{ columns_csv }}, count(*) as n_rows
    from {{ model }}
    where hash({{ columns_csv }}) in (select key_hash from repeated_hashes)
    group by {{ columns_csv }}
    having count(*) > 1
{% endmacro %}
