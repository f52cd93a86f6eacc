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
    {#- One hash of the key per row, sorted: a hash equal to its predecessor may be a
        repeated key (sorting 24M hashes takes ~1 s, grouping them 2-3 s, since a table of
        24M groups outgrows the caches); only the rows whose hash repeats are grouped by
        the columns themselves. -#}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    with key_hashes as (
        select hash({{ columns_csv }}) as key_hash
        from {{ model }}
    ),
    sorted_hashes as (
        select key_hash, lag(key_hash) over (order by key_hash) as previous_hash
        from key_hashes
    ),
    repeated_hashes as (
        select key_hash from sorted_hashes where key_hash = previous_hash
    )
    select {{ columns_csv }}, count(*) as n_rows
    from {{ model }}
    where hash({{ columns_csv }}) in (select key_hash from repeated_hashes)
    group by {{ columns_csv }}
    having count(*) > 1
{% endmacro %}
