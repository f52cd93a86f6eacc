{#-
    Post-hook of every mart: note which ingest (raw.run_context's run_id) the
    table was just built from, in ops.built_on_ingest. Publishing refuses a set
    whose tables come from different ingests (a mart left from an earlier run
    beside one rebuilt on a newer ingest); soe_assets/warehouse.py writes the
    same records for the tables the Python stages build.
-#}
{% macro record_built() -%}
    create schema if not exists ops;
    create table if not exists ops.built_on_ingest (
        table_name {{ dbt.type_string() }},
        run_id {{ dbt.type_string() }}
    );
    delete from ops.built_on_ingest where table_name = '{{ this.schema }}.{{ this.identifier }}';
    insert into ops.built_on_ingest (table_name, run_id)
    select '{{ this.schema }}.{{ this.identifier }}', run_id from {{ source('raw', 'run_context') }}
{%- endmacro %}
