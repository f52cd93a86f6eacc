-- raw.run_context must hold exactly one row: every model reads the run parameters from it.
{{ config(meta={'description': "The run's parameters (as_of, horizon, time fence) are one row: every model reads them."}) }}

select count(*) as n_rows
from {{ ref('stg_run_context') }}
having count(*) <> 1
