-- raw.run_context must hold exactly one row: every model reads the run parameters from it.
select count(*) as n_rows
from {{ ref('stg_run_context') }}
having count(*) <> 1
